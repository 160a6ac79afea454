#!/bin/sh
# SPDX-License-Identifier: MIT
# cctx-vet -p: the flags of a corpus file come from a compile_commands.json
# (written here, with a relative -I resolved against its "directory", in
# CMake's "command" form and in Bear's "arguments" form; the options that
# write a dependency file left out), and --sarif writes a SARIF 2.1.0 log of
# the same findings. An option without its argument is named as such.
# usage: compdb.sh CCTX_VET SOURCE_DIR WORK_DIR
vet=$1 src=$2 work=$3
mkdir -p "$work" || exit 1
file=$src/tests/vet/bad_lostrelease_return.c
quiet=$src/tests/vet/good_silenced.c
cat > "$work/compile_commands.json" <<JSON
[{"directory": "$src", "file": "$file",
  "command": "cc -std=gnu11 -Iinclude -c $file -o x.o"},
 {"directory": "$src", "file": "$quiet",
  "command": "cc -std=gnu11 -Iinclude -c $quiet -o y.o"}]
JSON
out=$("$vet" -p "$work" "$file")
rc=$?
printf '%s\n' "$out"
n=$(printf '%s\n' "$out" | grep -c 'warning: .*\[cctx-vet:lostrelease\]')
[ "$rc" -eq 1 ] && [ "$n" -eq 2 ] || { echo "FAIL: -p gave status $rc, $n findings"; exit 1; }
# Relative paths, several files: the entry's directory must not change what
# they mean (the suppressions of the second file are read too).
out=$(cd "$src" && "$vet" -p "$work" tests/vet/bad_lostrelease_return.c tests/vet/good_silenced.c)
rc=$?
n=$(printf '%s\n' "$out" | grep -c 'warning:')
[ "$rc" -eq 1 ] && [ "$n" -eq 2 ] || { echo "FAIL: relative paths: status $rc, $n findings"; exit 1; }
# The same from the build directory itself (no -p: its parents are searched).
out=$(cd "$work" && "$vet" "$file")
[ "$?" -eq 1 ] || { echo "FAIL: the search of the current directory"; exit 1; }
# As Bear writes it: "file" absolute, the source relative in "arguments";
# the source must reach the parser once.
mkdir -p "$work/bear" || exit 1
cat > "$work/bear/compile_commands.json" <<JSON
[{"directory": "$src/tests/vet", "file": "$file",
  "arguments": ["/usr/bin/cc", "-std=gnu11", "-I../../include", "-c", "-o", "x.o",
                "bad_lostrelease_return.c"],
  "output": "$src/tests/vet/x.o"}]
JSON
out=$("$vet" -p "$work/bear" "$file")
rc=$?
n=$(printf '%s\n' "$out" | grep -c 'warning: .*\[cctx-vet:lostrelease\]')
[ "$rc" -eq 1 ] && [ "$n" -eq 2 ] || { echo "FAIL: Bear's form: status $rc, $n findings"; exit 1; }
# A build that writes dependency files (make's -MMD -MF, Ninja's -MD -MF,
# the kernel's -Wp,-MD,FILE): the parser must write none of them into the
# build's tree, nor fail where their directory is not made yet.
mkdir -p "$work/deps/made" || exit 1
rm -f "$work/deps/made/"*
cat > "$work/deps/compile_commands.json" <<JSON
[{"directory": "$src/tests/vet", "file": "$file",
  "arguments": ["cc", "-std=gnu11", "-I../../include", "-MMD", "-MF", "$work/deps/made/x.d",
                "-MT", "x.o", "-MQ", "y.o", "-MP", "-MF$work/deps/made/y.d",
                "-Wp,-MD,$work/deps/made/z.d", "-MJ", "$work/deps/made/j.json",
                "-c", "-o", "x.o", "bad_lostrelease_return.c"]}]
JSON
out=$("$vet" -p "$work/deps" "$file")
rc=$?
n=$(printf '%s\n' "$out" | grep -c 'warning: .*\[cctx-vet:lostrelease\]')
[ "$rc" -eq 1 ] && [ "$n" -eq 2 ] || { echo "FAIL: dependency options: status $rc, $n findings"; exit 1; }
[ -z "$(ls "$work/deps/made")" ] || { echo "FAIL: a dependency file was written"; exit 1; }
sed "s|$work/deps/made/|$work/deps/missing/|g" "$work/deps/compile_commands.json" > "$work/deps/c.json" &&
    mv "$work/deps/c.json" "$work/deps/compile_commands.json" || exit 1
"$vet" -p "$work/deps" "$file" >/dev/null
rc=$?
[ "$rc" -eq 1 ] || { echo "FAIL: dependency options into a directory not made: status $rc"; exit 1; }
sarif=$("$vet" -p "$work" --sarif "$file")
[ "$?" -eq 1 ] || { echo "FAIL: --sarif exit status"; exit 1; }
printf '%s\n' "$sarif" | grep -q '"version": "2.1.0"' || { echo "FAIL: no SARIF version"; exit 1; }
[ "$(printf '%s\n' "$sarif" | grep -c '"ruleId": "lostrelease"')" -eq 2 ] ||
    { echo "FAIL: SARIF results"; exit 1; }
if command -v python3 >/dev/null 2>&1; then
    printf '%s\n' "$sarif" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["runs"][0]["results"]' ||
        { echo "FAIL: the SARIF log is not valid JSON"; exit 1; }
fi
# A file name with a space, '#' and '%' in it: SARIF's artifact URI must be a
# URI (a raw '#' starts a fragment), percent-encoded.
odd="$work/odd dir"
mkdir -p "$odd" && cp "$file" "$odd/a b#c%d.c" || exit 1
sarif=$(cd "$odd" && "$vet" --sarif "a b#c%d.c" -- -std=gnu11 -I"$src/include")
[ "$?" -eq 1 ] || { echo "FAIL: --sarif of an odd name: exit status"; exit 1; }
[ "$(printf '%s\n' "$sarif" | grep -c '"uri": "a%20b%23c%25d.c"')" -eq 2 ] ||
    { echo "FAIL: the artifact URI of an odd name is not percent-encoded"; exit 1; }
# An option whose argument is missing says so, rather than that it is unknown.
for opt in -p --enable --disable; do
    err=$("$vet" "$file" "$opt" 2>&1 >/dev/null)
    rc=$?
    [ "$rc" -eq 2 ] && printf '%s\n' "$err" | grep -q "option $opt needs an argument" ||
        { echo "FAIL: $opt without its argument: status $rc, said: $err"; exit 1; }
done
echo ok
