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
# A GCC build: warning options Clang does not know, -Werror, and -f options
# of GCC's only. The file is still checked (its findings, status 1), each
# option left out is named once on stderr however many files use it, and a
# real error in the source still fails the run.
mkdir -p "$work/gcc" || exit 1
broken="$work/gcc/broken.c"
printf 'int broken(void) { return undeclared; }\n' > "$broken"
gcc_flags="-std=gnu11 -I$src/include -Wall -Wextra -Werror -Wlogical-op -Wduplicated-cond \
 -Werror=format-truncation -fanalyzer -fconserve-stack -fno-allow-store-data-races \
 -fzero-call-used-regs=used -fharden-compares"
cat > "$work/gcc/compile_commands.json" <<JSON
[{"directory": "$src", "file": "$file", "command": "gcc $gcc_flags -c $file -o x.o"},
 {"directory": "$src", "file": "$quiet", "command": "gcc $gcc_flags -c $quiet -o y.o"},
 {"directory": "$src", "file": "$broken", "command": "gcc $gcc_flags -c $broken -o z.o"}]
JSON
out=$("$vet" -p "$work/gcc" "$file" "$quiet" 2>"$work/gcc/err")
rc=$?
n=$(printf '%s\n' "$out" | grep -c 'warning: .*\[cctx-vet:lostrelease\]')
[ "$rc" -eq 1 ] && [ "$n" -eq 2 ] || { cat "$work/gcc/err"; echo "FAIL: a GCC build: status $rc, $n findings"; exit 1; }
[ "$(grep -c "fanalyzer" "$work/gcc/err")" -eq 1 ] && ! grep -q 'logical-op' "$work/gcc/err" ||
    { cat "$work/gcc/err"; echo "FAIL: a GCC build: what stderr says"; exit 1; }
"$vet" -p "$work/gcc" "$broken" >/dev/null 2>&1
[ "$?" -eq 2 ] || { echo "FAIL: an error in the source of a GCC build: not status 2"; exit 1; }
# The same warnings made errors by flags given after --: no parse failure.
"$vet" "$file" -- -std=gnu11 -I"$src/include" -Werror -Wall -Wextra -Wlogical-op >/dev/null 2>&1
[ "$?" -eq 1 ] || { echo "FAIL: -Werror after --: not status 1"; exit 1; }
sarif=$("$vet" -p "$work" --sarif "$file")
[ "$?" -eq 1 ] || { echo "FAIL: --sarif exit status"; exit 1; }
printf '%s\n' "$sarif" | grep -q '"version": "2.1.0"' || { echo "FAIL: no SARIF version"; exit 1; }
# The tool's version in the log is the project's, as the headers say it.
version=$(sed -n 's/^#define CCTX_VERSION_STRING "\(.*\)"$/\1/p' "$src/include/cctx.h")
printf '%s\n' "$sarif" | grep -q "\"name\": \"cctx-vet\", \"version\": \"$version\"" ||
    { echo "FAIL: the SARIF log does not give the tool's version as $version"; exit 1; }
[ "$(printf '%s\n' "$sarif" | grep -c '"ruleId": "lostrelease"')" -eq 2 ] ||
    { echo "FAIL: SARIF results"; exit 1; }
if command -v python3 >/dev/null 2>&1; then
    printf '%s\n' "$sarif" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["runs"][0]["results"]' ||
        { echo "FAIL: the SARIF log is not valid JSON"; exit 1; }
fi
# A name too long to be kept whole is cut at a character, not inside one:
# the SARIF log stays UTF-8 (62 letters, then a 2-byte 'é' astride the cut).
long=$(printf 'a%.0s' $(seq 62))$(printf '\303\251')x
printf '#include <cctx.h>\nint work(cctx_t *);\nint f(cctx_t *p)\n{\n    cctx_t *%s = cctx_with_cancel(p, NULL);\n    return work(%s);\n}\n' \
    "$long" "$long" > "$work/long_name.c"
sarif=$("$vet" --sarif "$work/long_name.c" -- -std=gnu11 -I"$src/include")
[ "$?" -eq 1 ] || { echo "FAIL: --sarif of a long name: exit status"; exit 1; }
if command -v python3 >/dev/null 2>&1; then
    printf '%s\n' "$sarif" |
        python3 -c 'import json,sys; json.loads(sys.stdin.buffer.read().decode("utf-8"))' ||
        { echo "FAIL: the SARIF log of a long name is not UTF-8 JSON"; exit 1; }
fi
# A file name with a space, '#' and '%' in it: SARIF's artifact URI must be a
# URI (a raw '#' starts a fragment), percent-encoded.
odd="$work/odd dir"
mkdir -p "$odd" && cp "$file" "$odd/a b#c%d.c" || exit 1
sarif=$(cd "$odd" && "$vet" --sarif "a b#c%d.c" -- -std=gnu11 -I"$src/include")
[ "$?" -eq 1 ] || { echo "FAIL: --sarif of an odd name: exit status"; exit 1; }
[ "$(printf '%s\n' "$sarif" | grep -c '"uri": "a%20b%23c%25d.c"')" -eq 2 ] ||
    { echo "FAIL: the artifact URI of an odd name is not percent-encoded"; exit 1; }
# SARIF counts columns in UTF-16 code units (its default columnKind, which
# the log names): before the call, 'é' and '✓' are one unit each and the
# emoji two, where the text output counts bytes (column 56, 51 units).
printf '#include <cctx.h>\n#include <unistd.h>\nvoid f(cctx_t *ctx) { (void)ctx; /* h\303\251llo \342\234\223 \360\237\230\200 */ usleep(1); }\n' \
    > "$work/utf8_col.c"
text=$("$vet" "$work/utf8_col.c" -- -std=gnu11 -I"$src/include")
printf '%s\n' "$text" | grep -q 'utf8_col.c:3:56: warning' ||
    { echo "FAIL: the text column of a UTF-8 line: $text"; exit 1; }
sarif=$("$vet" --sarif "$work/utf8_col.c" -- -std=gnu11 -I"$src/include")
printf '%s\n' "$sarif" | grep -q '"startLine": 3, "startColumn": 51}' ||
    { echo "FAIL: the SARIF column of a UTF-8 line is not in UTF-16 code units"; exit 1; }
printf '%s\n' "$sarif" | grep -q '"columnKind": "utf16CodeUnits"' ||
    { echo "FAIL: the SARIF run names no columnKind"; exit 1; }
# A compile database that cannot be read: given with -p, a usage error (status
# 2, nothing checked); found in the search, the files are checked without
# flags and the status is 2. The file needs no flags, so that only the
# database's failure can fail the run. libclang's own complaints are not
# passed on with its "LIBCLANG TOOLING ERROR" prefix.
mkdir -p "$work/broken/db" "$work/broken/dir/compile_commands.json" "$work/broken/none" || exit 1
plain="$work/broken/db/plain.c"
cat > "$plain" <<'C'
typedef struct cctx cctx_t;
cctx_t *cctx_with_cancel_at(cctx_t *parent, void **cancel, const char *file, int line, const char *func);
int work(cctx_t *c);
int f(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel_at(p, 0, "", 0, "");
    return work(c);
}
C
printf '[{"directory": "%s",' "$work/broken/db" > "$work/broken/db/compile_commands.json"
for dir in "$work/broken/missing" "$work/broken/none" "$work/broken/dir" "$work/broken/db" "$plain"; do
    out=$("$vet" -p "$dir" "$plain" 2>"$work/broken/err")
    rc=$?
    [ "$rc" -eq 2 ] && [ -z "$out" ] && grep -q "cannot read" "$work/broken/err" &&
        ! grep -q "LIBCLANG TOOLING ERROR" "$work/broken/err" ||
        { cat "$work/broken/err"; echo "FAIL: -p $dir: status $rc, output: $out"; exit 1; }
done
out=$(cd "$work/broken/db" && "$vet" plain.c 2>"$work/broken/err")
rc=$?
n=$(printf '%s\n' "$out" | grep -c 'warning: .*\[cctx-vet:lostrelease\]')
[ "$rc" -eq 2 ] && [ "$n" -eq 2 ] && grep -q "cannot read" "$work/broken/err" ||
    { cat "$work/broken/err"; echo "FAIL: a database found that cannot be read: status $rc, $n findings"; exit 1; }
# The same -p beside flags after --: the flags are used, but a database
# that cannot be read is still a usage error.
out=$("$vet" -p "$work/broken/missing" "$plain" -- -std=gnu11 -I"$src/include" 2>"$work/broken/err")
rc=$?
[ "$rc" -eq 2 ] && [ -z "$out" ] && grep -q "cannot read" "$work/broken/err" ||
    { cat "$work/broken/err"; echo "FAIL: -p beside --: status $rc, output: $out"; exit 1; }
# A compile_commands.json found in the search that is a dangling link
# cannot be read either: said, not passed over for a parent's.
mkdir -p "$work/dangling" || exit 1
cp "$plain" "$work/dangling/plain.c"
ln -sf "$work/nowhere/compile_commands.json" "$work/dangling/compile_commands.json"
out=$(cd "$work/dangling" && "$vet" plain.c 2>"$work/broken/err")
rc=$?
[ "$rc" -eq 2 ] && grep -q "cannot read.*is a link to a missing file" "$work/broken/err" ||
    { cat "$work/broken/err"; echo "FAIL: a dangling compile_commands.json: status $rc"; exit 1; }
# A compile-and-link command that names two sources (`cc -o prog a.c b.c`):
# the other source is left out, and the file is checked.
mkdir -p "$work/two" || exit 1
printf 'int other;\n' > "$work/two/other.c"
cat > "$work/two/compile_commands.json" <<JSON
[{"directory": "$work/two", "file": "$file",
  "command": "cc -std=gnu11 -I$src/include -o prog $file other.c -lm"}]
JSON
out=$("$vet" -p "$work/two" "$file")
rc=$?
n=$(printf '%s\n' "$out" | grep -c 'warning: .*\[cctx-vet:lostrelease\]')
[ "$rc" -eq 1 ] && [ "$n" -eq 2 ] || { echo "FAIL: two sources in a command: status $rc, $n findings"; exit 1; }
# An option's value given as the next argument is no other source, though it
# ends as one does (`-D SRC=main.c`, `-I dir.c`): left out, the option would
# take the argument after it for its value.
mkdir -p "$work/valued/inc.c" || exit 1
valued="$work/valued/valued.c"
printf '#include <cctx.h>\n#include "inc.h"\n#ifndef SRC\n#error SRC is not defined\n#endif\nint work(cctx_t *);\nint f(cctx_t *p)\n{\n    cctx_t *c = cctx_with_cancel(p, NULL);\n    return work(c);\n}\n' > "$valued"
printf 'int in_inc;\n' > "$work/valued/inc.c/inc.h"
cat > "$work/valued/compile_commands.json" <<JSON
[{"directory": "$work/valued", "file": "$valued",
  "arguments": ["cc", "-std=gnu11", "-D", "SRC=main.c", "-I", "inc.c", "-isystem", "$src/include",
                "-c", "-o", "valued.o", "valued.c"]}]
JSON
out=$("$vet" -p "$work/valued" "$valued")
rc=$?
n=$(printf '%s\n' "$out" | grep -c 'warning: .*\[cctx-vet:lostrelease\]')
[ "$rc" -eq 1 ] && [ "$n" -eq 2 ] || { echo "FAIL: option values that end as a source does: status $rc, $n findings"; exit 1; }
# A directory is no file to parse, and is named as such.
err=$("$vet" "$work" -- -std=gnu11 2>&1 >/dev/null)
rc=$?
[ "$rc" -eq 2 ] && printf '%s\n' "$err" | grep -q 'not a regular file (a directory)' ||
    { echo "FAIL: a directory: status $rc, said: $err"; exit 1; }
# A file with old Mac line ends (a lone CR each): a suppression comment
# silences the finding on the line after it, as clang counts lines.
printf '#include <cctx.h>\rint f(cctx_t *p)\r{\r    // cctx-vet:ignore=unchecked\r    cctx_with_cancel(p, NULL);\r    return 0;\r}\r' > "$work/cr.c"
out=$("$vet" "$work/cr.c" -- -std=gnu11 -I"$src/include")
rc=$?
[ "$rc" -eq 0 ] && [ -z "$out" ] || { printf '%s\n' "$out"; echo "FAIL: CR line ends: status $rc"; exit 1; }
# A usage error beside --list-rules or --help is still one.
for opt in --list-rules --help; do
    "$vet" "$opt" >/dev/null 2>&1 || { echo "FAIL: $opt alone: not status 0"; exit 1; }
    "$vet" --frob "$opt" >/dev/null 2>&1
    rc=$?
    [ "$rc" -eq 2 ] || { echo "FAIL: an unknown option with $opt: status $rc"; exit 1; }
    "$vet" --enable=bogus "$opt" >/dev/null 2>&1
    rc=$?
    [ "$rc" -eq 2 ] || { echo "FAIL: an unknown rule with $opt: status $rc"; exit 1; }
done
# An option whose argument is missing says so, rather than that it is unknown.
for opt in -p --enable --disable; do
    err=$("$vet" "$file" "$opt" 2>&1 >/dev/null)
    rc=$?
    [ "$rc" -eq 2 ] && printf '%s\n' "$err" | grep -q "option $opt needs an argument" ||
        { echo "FAIL: $opt without its argument: status $rc, said: $err"; exit 1; }
done
# A file in an encoding Clang does not read (UTF-16, known by its byte order
# mark) has no tree at all: the run fails, rather than passing with nothing
# checked, and the parser's complaint is no option left out.
printf '\377\376i\000n\000t\000 \000x\000;\000\n\000' > "$work/utf16.c"
err=$("$vet" "$work/utf16.c" -- -std=gnu11 -I"$src/include" 2>&1 >/dev/null)
rc=$?
[ "$rc" -eq 2 ] && printf '%s\n' "$err" | grep -q 'byte order mark' &&
    ! printf '%s\n' "$err" | grep -q 'left out' ||
    { echo "FAIL: a UTF-16 file: status $rc, said: $err"; exit 1; }
echo ok
