#!/bin/sh
# SPDX-License-Identifier: MIT
# Each public header compiles alone, as the only include of a file, in strict
# ISO C11 and in C++17, with every warning an error (in C++ also
# -Wold-style-cast, which C++ projects often turn on): a user includes what it
# needs, in the dialect of its own project. The initializer macros, the time
# macros and the inline cctx_err are used too (CCTX_PROC_OPTS_INIT,
# CCTX_MHD_OPTIONS_INIT, CCTX_SEC...). <cctx/curl.h> needs
# libcurl's own header: it is left out for a compiler that cannot find that
# one (musl-gcc, or a machine without libcurl's development files). Exits 77
# (not run) where no C++ compiler is found, except under CI=true, where that
# fails.
#
#   check.sh CC INCLUDE_DIR WORK_DIR
set -u
cc=$1 inc=$2 work=$3
cxx=${CXX:-c++}
if ! command -v "$cxx" >/dev/null 2>&1; then
    echo "no C++ compiler ($cxx)"
    [ "${CI:-}" = true ] && exit 1
    exit 77
fi
mkdir -p "$work" || exit 1
status=0 n=0
for header in "$inc"/cctx.h "$inc"/cctx/*.h; do
    name=${header#"$inc"/}
    use=
    case $name in
    cctx.h) use='int64_t t = CCTX_SEC(1) + CCTX_MSEC(1) + CCTX_USEC(1) + CCTX_NSEC(1); (void)t;
    if (cctx_err(cctx_background()) != 0) return 1;' ;;
    cctx/proc.h) use='cctx_proc_opts_t o = CCTX_PROC_OPTS_INIT; (void)o;' ;;
    cctx/mhd.h) use='cctx_mhd_options_t o = CCTX_MHD_OPTIONS_INIT; (void)o;' ;;
    esac
    printf '#include <%s>\nint main(void)\n{\n    %s\n    return 0;\n}\n' "$name" "$use" >"$work/alone.c"
    cp "$work/alone.c" "$work/alone.cpp"
    for lang in c c++; do
        if [ "$name" = cctx/curl.h ]; then
            compiler=$cc
            [ $lang = c++ ] && compiler=$cxx
            if ! printf '#include <curl/curl.h>\n' | "$compiler" -x "$lang" -E - >/dev/null 2>&1; then
                echo "<$name> as $lang: left out, $compiler finds no <curl/curl.h>"
                continue
            fi
        fi
        if [ $lang = c ]; then
            out=$("$cc" -std=c11 -Wall -Wextra -pedantic -Werror -I "$inc" -c -o /dev/null \
                "$work/alone.c" 2>&1)
        else
            out=$("$cxx" -std=c++17 -Wall -Wextra -pedantic -Wold-style-cast -Werror -I "$inc" -c -o /dev/null \
                "$work/alone.cpp" 2>&1)
        fi
        if [ $? -ne 0 ]; then
            printf '<%s> alone, as %s:\n%s\n' "$name" "$lang" "$out"
            status=1
        fi
    done
    n=$((n + 1))
done
[ $n -ge 9 ] || { echo "found only $n headers in $inc"; exit 1; }
[ $status -eq 0 ] && echo "$n headers, each alone, compile as C11 and as C++17"
exit $status
