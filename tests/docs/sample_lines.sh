#!/bin/sh
# SPDX-License-Identifier: MIT
# The sample output in the docs names where contexts were made, as
# "examples/echo.c:215 in start_conn". Checks that each such place in the
# repository's examples still holds a call that makes a context, inside the
# function named: a change to an example that moves those lines fails here.
#
#   sample_lines.sh SOURCE_DIR
set -u
top=$1
status=0 found=0
for doc in "$top"/README.md "$top"/docs/*.md; do
    for place in $(grep -oE 'examples/[a-z_]+\.c:[0-9]+ in [a-z_]+' "$doc" |
                   sed 's/ in /:/' | sort -u); do
        found=$((found + 1))
        file=${place%%:*} rest=${place#*:}
        line=${rest%%:*} fn=${rest#*:}
        # The function a line is in: the last definition, at column 0, above it.
        at=$(awk -v n="$line" 'NR > n { exit }
                NR == n && /cctx_(with_[a-z_]+|background)\(/ { call = 1 }
                /^[a-z].*[ *][a-z_]+\(/ && !/;$/ {
                    s = $0; sub(/\(.*/, "", s); sub(/.*[ *]/, "", s); name = s }
                END { print (call ? name : "-") }' "$top/$file" 2>/dev/null)
        if [ "$at" != "$fn" ]; then
            echo "${doc#"$top"/}: $file:$line is not a context made in $fn" \
                 "(line $line: $(sed -n "${line}p" "$top/$file" 2>/dev/null | sed 's/^ *//'))"
            status=1
        fi
    done
done
[ "$found" -ge 3 ] || { echo "found only $found sample places in the docs"; status=1; }
exit $status
