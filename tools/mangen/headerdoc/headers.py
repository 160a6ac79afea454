# SPDX-License-Identifier: MIT
"""A header as the reference sees it: its top comment, then sections of
groups of calls, each group documented by the comment above it; and every
header of an include directory, loaded and checked together (Ctx).

How the headers are read (the rules a header follows to be documented):
  - The file's first comment is the header's top comment; its first line is
    "name — one-line description".
  - A banner comment `/* ---- N. Title ---- */` starts a section.
  - A comment followed, without a blank line, by declarations documents them
    all (a group). A comment followed by a blank line is a note that applies
    to every later call of its section; so is a group comment that starts
    with "Each" (it documents every later call of its section too).
  - A lower-case function-like macro that expands to a CCTX_API function
    (`#define cctx_with_timeout(...) cctx_with_timeout_cause_at(...)`) is a
    name of that function's page; one that expands to an inline fast path
    `cctx__NAME_inline` is a name of cctx_NAME_at's page (or cctx_NAME's),
    and macros named cctx__* or named as a function are not documented.
  - Names that start with cctx__ are internal: ABI entries that the macros
    call (cctx__cancel_at_site), not for direct use. Such a CCTX_API
    function is not documented, and a comment that documents nothing else
    goes with it.
  - A CCTX_API function with no comment of its own takes the nearest earlier
    comment of its section that names it; with none, mangen fails.
"""

import os
import re

from . import MangenError
from .declarations import parse_decl, parse_pp
from .prose import ITEM, indent_of, sentences
from .tokens import comment_lines, tokenize


class Group:
    def __init__(self, comment, line):
        self.comment = comment  # list of lines, or None
        self.line = line
        self.decls = []
        self.macros = []  # call-site wrappers of this group's functions
        self.notes = []  # comments of the section that apply to it
        self.before = None  # an adjacent earlier group of types or constants
        self.page = None
        self.borrowed = False  # comment taken from an earlier group

    def funcs(self):
        return [d for d in self.decls if d.kind == 'func']

    def names(self):
        out = []
        for f in self.funcs():
            for m in self.macros:
                if m.target == f.name and m.name not in out:
                    out.append(m.name)
            if f.name not in out:
                out.append(f.name)
        return out


class Note:
    def __init__(self, comment, line):
        self.comment = comment
        self.line = line


class Section:
    def __init__(self, title):
        self.title = title
        self.items = []  # Group and Note, in header order


class Header:
    def __init__(self, path, include_name):
        self.path = path
        self.include = include_name  # cctx.h, cctx/io.h
        base = os.path.splitext(include_name)[0]
        self.page = base.replace('/', '_')  # cctx, cctx_io
        self.sections = []
        self.top = []
        self.title = ''
        self.env = None  # the environment switches comment (cctx.h)
        self.library = ('libcctx', 'cctx', 'cctx::cctx')
        self.site = None  # what CCTX__SITE stands for

    def groups(self):
        for s in self.sections:
            for it in s.items:
                if isinstance(it, Group):
                    yield s, it

    def func_groups(self):
        return [(s, g) for s, g in self.groups() if g.funcs()]


BANNER = re.compile(r'^/\*\s*-{2,}\s*(?:\d+\.\s*)?(.*?)\s*-{2,}\s*\*/$')


def parse_header(path, include_name):
    with open(path, encoding='utf-8') as f:
        text = f.read()
    toks = tokenize(text, path)
    # A licence line (/* SPDX-License-Identifier: ... */) comes before the
    # header's own top comment and documents nothing.
    if toks and toks[0].kind == 'comment' and 'SPDX-License-Identifier' in toks[0].text:
        toks = toks[1:]
    h = Header(path, include_name)
    if not toks or toks[0].kind != 'comment':
        raise MangenError('%s: the header has no top comment' % path)
    # "name — title sentence. More of the first paragraph..." then the rest.
    lines = comment_lines(toks[0].text)
    k = 0
    while k < len(lines) and lines[k].strip() and not ITEM.match(lines[k]) and \
            (k == 0 or indent_of(lines[k]) < 2):
        k += 1
    first = ' '.join(l.strip() for l in lines[:k])
    m = re.match(r'<?([\w/.]+)>?\s*\u2014\s*(.*)$', first)
    if not m:
        raise MangenError('%s: the top comment does not start with "name \u2014 what it is"' % path)
    sents = sentences(m.group(2))
    h.title = re.sub(r'\s*\(library [^)]*\)', '', sents[0]).strip()
    rest = ' '.join(sents[1:])
    h.top = ([rest] if rest else []) + lines[k:]
    while h.top and not h.top[0].strip():
        h.top.pop(0)
    lib = re.search(r'\(library (\S+), pkg-config module (\S+), CMake component ([\w:]+)\)',
                    ' '.join(comment_lines(toks[0].text)))
    if lib:
        h.library = ('lib' + lib.group(1), lib.group(2), lib.group(3))
    sec = Section(None)
    h.sections.append(sec)
    pending = None  # (lines, line)
    group = None
    last_closed = None  # the group just ended by a comment (adjacent)
    guard = None
    for t in toks[1:]:
        if t.kind == 'comment':
            bm = BANNER.match(t.text.strip())
            if bm:
                if pending:
                    sec.items.append(Note(pending[0], pending[1]))
                pending, group, last_closed = None, None, None
                sec = Section(bm.group(1))
                h.sections.append(sec)
                continue
            if pending:  # two comments in a row: the first stands alone
                sec.items.append(Note(pending[0], pending[1]))
            last_closed = group
            group = None
            pending = (comment_lines(t.text), t.line)
            continue
        if t.kind == 'blank':
            if pending and group is None:
                sec.items.append(Note(pending[0], pending[1]))
                pending = None
            group, last_closed = None, None
            continue
        if t.kind == 'pp':
            s = t.text.strip()
            mg = re.match(r'#\s*ifndef\s+(\w+_H)\b', s)
            if mg and guard is None:
                guard = mg.group(1)
                continue
            if not re.match(r'#\s*define\b', s):
                continue
            d = parse_pp(t.text, t.line)
            ms = re.match(r'#\s*define\s+CCTX__SITE\s+(.*)$', s)
            if ms:
                h.site = ms.group(1).strip()
        else:
            d = parse_decl(t.text, t.line, path)
        if d is None:
            continue
        if group is None:
            group = Group(pending[0] if pending else None, pending[1] if pending else t.line)
            pending = None
            if last_closed is not None and not last_closed.funcs():
                group.before = last_closed
            last_closed = None
            sec.items.append(group)
        group.decls.append(d)
    if pending:
        sec.items.append(Note(pending[0], pending[1]))
    resolve(h)
    return h


def internal(name):
    """A name of the ABI, not of the API: not documented (cctx__*)."""
    return name.startswith('cctx__')


def resolve(h):
    # Internal functions leave the reference, and with them a group they
    # were all of (its comment is theirs).
    for s, g in h.groups():
        g.decls = [d for d in g.decls if not (d.kind == 'func' and internal(d.name))]
    for s in h.sections:
        s.items = [it for it in s.items if not isinstance(it, Group) or it.decls]
    funcs = {}
    for s, g in h.groups():
        for d in g.funcs():
            funcs[d.name] = g
    # Call-site wrappers join the page of the function they expand to.
    for s, g in h.groups():
        keep = []
        for d in g.decls:
            if d.kind != 'macro':
                keep.append(d)
                continue
            # An inline fast path: `#define cctx_err(ctx) cctx__err_inline(ctx)`
            # keeps the function's own name, and `#define cctx_wait(...)
            # cctx__wait_inline(...)` names cctx_wait_at's page as before;
            # the internal names themselves are never documented.
            fast = re.match(r'cctx__(\w+)_inline$', d.target)
            if internal(d.name) or (fast and d.name in funcs):
                continue
            if fast:
                d.target = next((n for n in ('cctx_%s_at' % fast.group(1), 'cctx_%s' % fast.group(1))
                                 if n in funcs), d.target)
            target = funcs.get(d.target)
            if target is None:
                raise MangenError('%s:%d: macro %s expands to %s, which is not a CCTX_API '
                                  'function of this header: cannot document it'
                                  % (h.path, d.line, d.name, d.target))
            target.macros.append(d)
        g.decls = keep
    for s in h.sections:
        s.items = [it for it in s.items if not isinstance(it, Group) or it.decls]
    # Notes and section-wide comments; the environment comment of <cctx.h>.
    for s in h.sections:
        notes = []
        for it in s.items:
            if isinstance(it, Note):
                if re.search(r'^\s*CCTX_DEBUG\b', '\n'.join(it.comment), re.M):
                    h.env = it
                else:
                    notes.append(it)
                continue
            if it.funcs():
                it.notes = list(notes)
                if it.comment and re.match(r'Each\b', it.comment[0]):
                    notes.append(Note(it.comment, it.line))
    # A function without a comment takes the nearest earlier comment of its
    # section that names it.
    for s in h.sections:
        seen = []
        for it in s.items:
            if isinstance(it, Group) and it.funcs() and it.comment is None:
                for prev in reversed(seen):
                    text = '\n'.join(prev.comment)
                    if any(re.search(r'\b%s\b' % re.escape(f.name), text) for f in it.funcs()):
                        it.comment, it.borrowed = prev.comment, True
                        break
                else:
                    f = it.funcs()[0]
                    raise MangenError('%s:%d: %s has no comment: its contract must be the '
                                      'comment above it' % (h.path, f.line, f.name))
            if it.comment:
                seen.append(it)
    for s, g in h.func_groups():
        g.page = g.names()[0]


def load(include_dir, only=None):
    paths = []
    if os.path.exists(os.path.join(include_dir, 'cctx.h')):
        paths.append(('cctx.h', os.path.join(include_dir, 'cctx.h')))
    sub = os.path.join(include_dir, 'cctx')
    if os.path.isdir(sub):
        for n in sorted(os.listdir(sub)):
            if n.endswith('.h'):
                paths.append(('cctx/' + n, os.path.join(sub, n)))
    headers = [parse_header(p, inc) for inc, p in paths]
    if only:
        unknown = set(only) - set(h.include for h in headers)
        if unknown:
            raise MangenError('no such header: %s' % ', '.join(sorted(unknown)))
    names = {}
    for h in headers:
        for s, g in h.func_groups():
            for n in g.names():
                if n in names:
                    raise MangenError('%s is declared in %s and %s' % (n, names[n], h.include))
                names[n] = h.include
        if h.page in names:
            raise MangenError('the page of %s would be named %s, as a call' % (h.include, h.page))
    return headers


def version_of(headers):
    for h in headers:
        if h.include == 'cctx.h':
            for s, g in h.groups():
                for d in g.decls:
                    if d.name == 'CCTX_VERSION_STRING':
                        m = re.search(r'"([^"]+)"', d.raw)
                        if m:
                            return m.group(1)
    return ''


class Ctx:
    """What every page is written with: the headers, the version and date the
    pages carry, and which header and page each call's name is on."""

    def __init__(self, headers, version, date):
        self.headers = headers
        self.version = version
        self.date = date
        self.pages = {}  # name -> (header, main page)
        for h in headers:
            for s, g in h.func_groups():
                for n in g.names():
                    self.pages[n] = (h, g.page)
        self.header_pages = {h.page: h for h in headers}
        self.site = next((h.site for h in headers if h.site), None)
