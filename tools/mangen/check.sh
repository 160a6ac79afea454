#!/bin/sh
# SPDX-License-Identifier: MIT
# The CTest checks of the man pages and docs/reference.md (tools/mangen/).
#   check.sh CHECK PYTHON SOURCE_DIR WORK_DIR
# CHECK: reference_is_current, pages_lint (the pages made from the headers
# and those of tools/mangen/pages/) or every_call_has_a_page.
# Exits 77 (not run) when python3, or mandoc for the lint, is missing; under
# CI=true, where both are installed, a missing one fails instead.
set -u
check=$1 py=$2 src=$3 work=$4

skip() {
    if [ "${CI:-}" = true ]; then
        echo "FAILED (a skip under CI=true): $*"
        exit 1
    fi
    echo "skipped: $*"
    exit 77
}

command -v "$py" >/dev/null 2>&1 || skip "python3 not found"
gen="$src/tools/mangen/mangen.py"
rm -rf "$work" && mkdir -p "$work" || exit 1

case $check in
reference_is_current)
    # docs/reference.md is made from the headers and committed: it must be
    # what the headers say now.
    exec "$py" "$gen" --include "$src/include" --check-markdown "$src/docs/reference.md"
    ;;
pages_lint)
    command -v mandoc >/dev/null 2>&1 || skip "mandoc not found"
    "$py" "$gen" --include "$src/include" --man "$work" || exit 1
    # The programs' pages (section 1), written by hand: all of them, built
    # or not, as they are in the sources (the build puts in the version).
    mkdir -p "$work/man1" && cp "$src"/tools/mangen/pages/*.1 "$work/man1/" || exit 1
    n=0
    for page in "$work"/man1/*.1 "$work"/man3/*.3 "$work"/man7/*.7; do
        n=$((n + 1))
    done
    # Every page of every header, the integrations' included.
    out=$(cd "$work" && mandoc -T lint -W warning man1/*.1 man3/*.3 man7/*.7 2>&1)
    rc=$?
    if [ -n "$out" ] || [ $rc -ne 0 ]; then
        printf '%s\n' "$out"
        echo "mandoc -T lint -W warning: status $rc on $n pages"
        exit 1
    fi
    echo "$n pages, mandoc -T lint -W warning clean"
    ;;
every_call_has_a_page)
    # Found without the generator's parser: every name declared with
    # CCTX_API, and every lower-case function-like macro, in every header;
    # and no page for an internal name (cctx__*).
    "$py" "$gen" --include "$src/include" --man "$work" --list >"$work/list" || exit 1
    "$py" - "$src/include" >"$work/names" <<'PY' || exit 1
import os, re, sys
inc = sys.argv[1]
headers = [('cctx.h', os.path.join(inc, 'cctx.h'))]
headers += [('cctx/' + n, os.path.join(inc, 'cctx', n))
            for n in sorted(os.listdir(os.path.join(inc, 'cctx'))) if n.endswith('.h')]
for name, path in headers:
    text = re.sub(r'/\*.*?\*/', ' ', open(path, encoding='utf-8').read(), flags=re.S)
    code = '\n'.join(l for l in text.split('\n') if not l.lstrip().startswith('#'))
    names = re.findall(r'\bCCTX_API\b[^;{]*?\b([a-z_][a-z0-9_]*)\s*\(', code)
    names += re.findall(r'^\s*#\s*define\s+(cctx_[a-z0-9][a-z0-9_]*)\(', text, re.M)
    # cctx__*: internal names (an inline fast path's fallback, an ABI entry
    # the macros call), not the API: neither documented nor looked for.
    names = [n for n in names if not n.startswith('cctx__')]
    for n in sorted(set(names)):
        print('%s\t%s' % (name, n))
PY
    missing=0 count=0
    while IFS='	' read -r inc name; do
        count=$((count + 1))
        if ! grep -q "^$inc	man3/$name\\.3\$" "$work/list"; then
            echo "no page for $name ($inc) in the install list"
            missing=$((missing + 1))
        elif ! grep -q "^\\.Nm $name\\( ,\\)*\$" "$work/man3/$name.3" 2>/dev/null; then
            echo "man3/$name.3 is missing or does not name $name"
            missing=$((missing + 1))
        fi
    done <"$work/names"
    [ $count -gt 0 ] || { echo "no declarations found"; exit 1; }
    if grep "	man3/cctx__" "$work/list"; then
        echo "internal names (cctx__*) have pages"
        missing=$((missing + 1))
    fi
    [ $missing -eq 0 ] || exit 1
    echo "$count public names, each with its page"
    ;;
*)
    echo "unknown check: $check"
    exit 2
    ;;
esac
