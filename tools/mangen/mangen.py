#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""mangen: the reference of cctx, made from its public headers.

The headers are the one source. Every public function is declared with
CCTX_API, with a comment above it that is its contract; this script reads
them and writes

  - mdoc(7) pages: one per group of calls that share a comment (the page is
    named after the group's first user-facing name, and every other name of
    the group gets a copy of it), one per header (cctx.3, cctx_io.3, ...:
    the header's top comment and its calls), and cctx.7 (concepts and the
    environment switches of <cctx.h>);
  - docs/reference.md: the same text as one Markdown file, by header.

Usage:
  mangen.py --include DIR --man DIR [--header NAME ...]
  mangen.py --include DIR --markdown FILE
  mangen.py --include DIR --check-markdown FILE   (exit 1 and a diff if stale)
  mangen.py --include DIR --list                  (header<TAB>page, one a line)

This file is the command line; the work is done by the modules of
headerdoc/ next to it (its __init__.py lists them), and the rules a header
follows to be documented are in headerdoc/headers.py. Only the standard
library is used.
"""

import argparse
import difflib
import os
import sys
import time

# headerdoc/ is found next to this file whatever the working directory, and
# also where Python leaves the script's directory off its path (-P, -I,
# PYTHONSAFEPATH). No bytecode is written: the build must leave the source
# tree as it was checked out.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from headerdoc import MangenError  # noqa: E402 (needs the path above)
from headerdoc.headers import Ctx, load, version_of  # noqa: E402
from headerdoc.markdown import markdown  # noqa: E402
from headerdoc.mdoc import man_pages, page_list  # noqa: E402


def main(argv):
    ap = argparse.ArgumentParser(description='Man pages and docs/reference.md from the cctx headers.')
    ap.add_argument('--include', required=True, help='the include directory (holds cctx.h)')
    ap.add_argument('--man', help='write the pages under this directory (man3/, man7/)')
    ap.add_argument('--header', action='append', help='only the pages of this header (cctx.h, cctx/io.h)')
    ap.add_argument('--markdown', help='write the Markdown reference to this file')
    ap.add_argument('--check-markdown', help='fail if this Markdown reference is not current')
    ap.add_argument('--list', action='store_true', help='print header<TAB>page for every page')
    ap.add_argument('--stamp', help='touch this file after writing the pages')
    a = ap.parse_args(argv)
    try:
        headers = load(a.include, a.header)
    except MangenError as e:
        print('mangen: error: %s' % e, file=sys.stderr)
        return 2
    epoch = os.environ.get('SOURCE_DATE_EPOCH')
    t = time.gmtime(int(epoch)) if epoch else time.gmtime()
    date = '%s %d, %d' % (time.strftime('%B', t), t.tm_mday, t.tm_year)
    ctx = Ctx(headers, version_of(headers), date)
    if a.list:
        for inc, page in page_list(ctx):
            print('%s\t%s' % (inc, page))
    if a.man:
        pages = man_pages(ctx, a.header)
        for rel, text in sorted(pages.items()):
            path = os.path.join(a.man, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            old = None
            if os.path.exists(path):
                with open(path, encoding='utf-8') as f:
                    old = f.read()
            if old != text:
                with open(path, 'w', encoding='utf-8') as f:
                    f.write(text)
    if a.stamp:
        with open(a.stamp, 'w') as f:
            f.write('')
    if a.markdown:
        with open(a.markdown, 'w', encoding='utf-8') as f:
            f.write(markdown(ctx))
    if a.check_markdown:
        want = markdown(ctx)
        try:
            with open(a.check_markdown, encoding='utf-8') as f:
                have = f.read()
        except OSError as e:
            print('mangen: %s' % e, file=sys.stderr)
            return 1
        if have != want:
            sys.stdout.writelines(difflib.unified_diff(
                have.splitlines(True), want.splitlines(True),
                a.check_markdown + ' (committed)', 'from the headers'))
            print('mangen: %s is not current: run tools/mangen/mangen.py --include include '
                  '--markdown %s' % (a.check_markdown, a.check_markdown), file=sys.stderr)
            return 1
        print('%s is current' % a.check_markdown)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
