#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""mangen: the reference of cctx, made from its public headers.

The headers are the one source. Every public function is declared with
CCTX_API, with a comment above it that is its contract; this script reads
them and writes

  - mdoc(7) pages: one per group of calls that share a comment (the main page
    is named after the group's first user-facing name; every other name of
    the group gets a page of its own that is a `.so` of it), one per header
    (cctx.3, cctx_io.3, ...: the header's top comment and its calls), and
    cctx.7 (concepts and the environment switches of <cctx.h>);
  - docs/reference.md: the same text as one Markdown file, by header.

Usage:
  mangen.py --include DIR --man DIR [--header NAME ...]
  mangen.py --include DIR --markdown FILE
  mangen.py --include DIR --check-markdown FILE   (exit 1 and a diff if stale)
  mangen.py --include DIR --list                  (header<TAB>page, one a line)

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
    name of that function's page.
  - A CCTX_API function with no comment of its own takes the nearest earlier
    comment of its section that names it; with none, this script fails.
Only the standard library is used.
"""

import argparse
import difflib
import errno as errno_mod
import os
import re
import sys
import time

ERRNO_NAMES = set(errno_mod.errorcode.values())
IDENT = r'[A-Za-z_][A-Za-z0-9_]*'


class MangenError(Exception):
    pass


# ---------------------------------------------------------------------------
# Reading a header


class Token:
    def __init__(self, kind, text, line):
        self.kind = kind  # comment, pp, decl, blank
        self.text = text
        self.line = line


def strip_comments(code):
    return re.sub(r'/\*.*?\*/', ' ', code, flags=re.S)


def statement_done(code):
    """Whether accumulated declaration text is a complete statement."""
    code = strip_comments(code)
    code = re.sub(r'"(\\.|[^"\\])*"', '""', code)
    depth = 0
    for i, c in enumerate(code):
        if c in '({[':
            depth += 1
        elif c in ')}]':
            depth -= 1
            if depth == 0 and c == '}':
                head = code[:code.index('{')].rstrip()
                if head.endswith(')'):  # a function definition
                    return True
        elif c == ';' and depth == 0:
            return True
    return False


def tokenize(text, path):
    lines = text.split('\n')
    toks = []
    i = 0
    skip_depth = 0  # inside #ifdef __cplusplus
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        lineno = i + 1
        if skip_depth:
            if s.startswith('#if'):
                skip_depth += 1
            elif s.startswith('#endif'):
                skip_depth -= 1
            i += 1
            continue
        if not s:
            toks.append(Token('blank', '', lineno))
            i += 1
            continue
        if s.startswith('/*'):
            buf = [line]
            while '*/' not in buf[-1] and i + 1 < len(lines):
                i += 1
                buf.append(lines[i])
            if '*/' not in buf[-1]:
                raise MangenError('%s:%d: unterminated comment' % (path, lineno))
            rest = buf[-1].split('*/', 1)[1].strip()
            if rest:
                raise MangenError('%s:%d: code after a comment on its line' % (path, i + 1))
            toks.append(Token('comment', '\n'.join(buf), lineno))
            i += 1
            continue
        if s.startswith('//'):
            i += 1
            continue
        if s.startswith('#'):
            buf = [line]
            while buf[-1].rstrip().endswith('\\') and i + 1 < len(lines):
                i += 1
                buf.append(lines[i])
            if re.match(r'#\s*ifdef\s+__cplusplus\b', s):
                skip_depth = 1
            else:
                toks.append(Token('pp', '\n'.join(buf), lineno))
            i += 1
            continue
        buf = [line]
        while not statement_done('\n'.join(buf)):
            i += 1
            if i >= len(lines):
                raise MangenError('%s:%d: declaration never ends' % (path, lineno))
            buf.append(lines[i])
        toks.append(Token('decl', '\n'.join(buf), lineno))
        i += 1
    return toks


def comment_lines(raw):
    """The text lines of a /* */ comment, decoration removed, indentation kept."""
    body = raw.strip()
    assert body.startswith('/*') and body.endswith('*/')
    body = body[2:-2]
    out = []
    for n, ln in enumerate(body.split('\n')):
        if n == 0:
            ln = ln[1:] if ln.startswith(' ') else ln
        else:
            m = re.match(r'\s*\*(?!/)', ln)
            if m:
                ln = ln[m.end():]
                ln = ln[1:] if ln.startswith(' ') else ln
            else:
                ln = ln.strip()
        out.append(ln.rstrip())
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out


def collapse(code):
    return re.sub(r'\s+', ' ', strip_comments(code)).strip()


def split_params(s):
    parts, depth, cur = [], 0, ''
    for c in s:
        if c in '([{':
            depth += 1
        elif c in ')]}':
            depth -= 1
        if c == ',' and depth == 0:
            parts.append(cur.strip())
            cur = ''
        else:
            cur += c
    if cur.strip():
        parts.append(cur.strip())
    return parts


class Decl:
    """One declaration or #define the reference shows."""

    def __init__(self, kind, name, raw, line):
        self.kind = kind  # func, macro (call-site wrapper), type, const
        self.name = name
        self.raw = raw
        self.line = line
        self.ret = self.params = None
        self.target = None  # for a macro: the function it expands to
        self.margs = self.mbody = None

    def proto(self):
        """The C prototype, without CCTX_API and attributes, on one line."""
        return '%s%s(%s);' % (self.ret if self.ret.endswith('*') else self.ret + ' ',
                              self.name, ', '.join(self.params))


def parse_func(raw, line, path):
    code = collapse(raw)
    code = re.sub(r'\b(CCTX_API|CCTX__OWNED)\b', ' ', code)
    code = re.sub(r'__attribute__\s*\(\(.*?\)\)\s*(?=;|$)', '', code)
    code = re.sub(r'\s+', ' ', code).strip().rstrip(';').strip()
    m = re.match(r'(.*?)(' + IDENT + r')\s*\((.*)\)$', code)
    if not m:
        raise MangenError('%s:%d: cannot read the declaration: %s' % (path, line, code))
    d = Decl('func', m.group(2), raw, line)
    d.ret = m.group(1).strip().replace(' *', ' *')
    d.ret = re.sub(r'\s*\*\s*$', ' *', d.ret).strip()
    if d.ret.endswith('*') and not d.ret.endswith(' *'):
        d.ret = d.ret[:-1].rstrip() + ' *'
    d.params = split_params(m.group(3))
    return d


def parse_pp(raw, line):
    code = re.sub(r'\\\n', ' ', strip_comments(raw)).strip()
    m = re.match(r'#\s*define\s+(' + IDENT + r')(\(([^)]*)\))?\s*(.*)$', code, re.S)
    if not m:
        return None
    name, args, body = m.group(1), m.group(3), re.sub(r'\s+', ' ', m.group(4)).strip()
    if name.startswith(('CCTX__', 'cctx__')) or name == 'CCTX_API' or not body and name.endswith('_H'):
        return None
    if args is not None and re.match(r'cctx_', name):
        d = Decl('macro', name, raw, line)
        d.margs = [a.strip() for a in args.split(',') if a.strip()]
        d.mbody = body
        mt = re.match(r'(' + IDENT + r')\s*\(', body)
        d.target = mt.group(1) if mt else None
        return d
    return Decl('const', name, raw, line)


def parse_decl(raw, line, path):
    code = collapse(raw)
    if code.startswith('CCTX_API'):
        return parse_func(raw, line, path)
    if code.startswith('typedef'):
        body = re.sub(r'\{.*\}', '{}', code)
        m = re.match(r'typedef .*?\b(' + IDENT + r')\s*\(', body)  # function type
        if not m or '{}' in body:
            m = re.search(r'(' + IDENT + r')\s*;$', body)
        if not m:
            raise MangenError('%s:%d: cannot read the typedef: %s' % (path, line, code))
        return Decl('type', m.group(1), raw, line)
    if code.startswith('enum'):
        names = re.findall(r'(' + IDENT + r')\s*(?:=[^,}]*)?[,}]', code)
        return Decl('const', names[0] if names else 'enum', raw, line)
    return None  # static inline helpers, forward declarations


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


def resolve(h):
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


# ---------------------------------------------------------------------------
# Comment text as blocks: paragraphs, lists, literal code


def indent_of(s):
    return len(s) - len(s.lstrip(' '))


ITEM = re.compile(r'^(\s*)(-|\d+\.)\s+(.*)$')


def blocks_of(lines):
    """[('para', text) | ('code', lines) | ('list', kind, [blocks...])]"""
    nonblank = [l for l in lines if l.strip()]
    if not nonblank:
        return []
    base = min(indent_of(l) for l in nonblank)
    lines = [l[base:] if l.strip() else '' for l in lines]
    out = []
    i = 0
    n = len(lines)
    while i < n:
        l = lines[i]
        if not l.strip():
            i += 1
            continue
        m = ITEM.match(l)
        if m:
            kind = 'enum' if m.group(2)[0].isdigit() else 'bullet'
            items = []
            while i < n:
                m = ITEM.match(lines[i]) if lines[i].strip() else None
                if not m or (m.group(2)[0].isdigit()) != (kind == 'enum') or \
                        indent_of(lines[i]) != indent_of(l):
                    # a blank line inside a list: go on if the next line continues it
                    if not lines[i].strip() and i + 1 < n and lines[i + 1].strip() and \
                            indent_of(lines[i + 1]) > indent_of(l):
                        items[-1].append('')
                        i += 1
                        continue
                    break
                body = [' ' * (len(m.group(1)) + len(m.group(2)) + 1) + m.group(3)]
                cont = len(m.group(1)) + len(m.group(2)) + 1
                i += 1
                while i < n and lines[i].strip() and indent_of(lines[i]) >= cont and \
                        not (ITEM.match(lines[i]) and indent_of(lines[i]) == indent_of(l)):
                    body.append(lines[i])
                    i += 1
                items.append(body)
            out.append(('list', kind, [blocks_of(b) for b in items]))
            continue
        if indent_of(l) >= 2:  # literal code (or a table laid out with spaces)
            code = []
            while i < n and (not lines[i].strip() or indent_of(lines[i]) >= 2):
                code.append(lines[i])
                i += 1
            while code and not code[-1].strip():
                code.pop()
            cb = min(indent_of(c) for c in code if c.strip())
            out.append(('code', [c[cb:] for c in code]))
            continue
        para = []
        while i < n and lines[i].strip() and indent_of(lines[i]) < 2 and not ITEM.match(lines[i]):
            para.append(lines[i].strip())
            i += 1
        out.append(('para', ' '.join(para)))
    return out


SENTENCE_END = re.compile(r'(?<=[.!?])\s+(?=[A-Z0-9"(`*<\-]|-1\b)')
ABBREV = ('e.g.', 'i.e.', 'etc.', 'vs.')


def sentences(text):
    out = []
    depth = 0
    cur = ''
    parts = SENTENCE_END.split(text)
    for p in parts:
        cur = cur + ' ' + p if cur else p
        depth = cur.count('(') - cur.count(')')
        if depth > 0 or cur.endswith(ABBREV) or cur.endswith('...'):
            continue
        out.append(cur)
        cur = ''
    if cur:
        out.append(cur)
    return out


def paragraphs_text(blocks):
    """Plain text of the paragraphs and list items (for sentence search)."""
    for b in blocks:
        if b[0] == 'para':
            yield b[1]
        elif b[0] == 'list':
            for item in b[2]:
                yield from paragraphs_text(item)


RETURN_RE = re.compile(r'^(Returns?\b|0\b|-1\b|NULL\b|true\b|false\b|The lowest index)'
                       r'|\b(call|it|this|It|and|which|then) returns\b|\berrno\b|\bNULL with\b')


def is_return(s):
    return bool(RETURN_RE.search(s)) or any(w in ERRNO_NAMES for w in re.findall(r'\bE[A-Z0-9]+\b', s))


def return_blocks(blocks):
    """The sentences (and the code they introduce) that state what a call returns."""
    out = []
    for k, b in enumerate(blocks):
        if b[0] == 'list':
            for item in b[2]:
                out.extend(return_blocks(item))
            continue
        if b[0] != 'para':
            continue
        sents = [x for x in sentences(b[1]) if is_return(x)]
        if sents:
            out.append(('para', ' '.join(sents)))
            if sents[-1] == sentences(b[1])[-1] and sents[-1].endswith(':') and \
                    k + 1 < len(blocks) and blocks[k + 1][0] != 'para':
                out.append(blocks[k + 1])
    return out


# ---------------------------------------------------------------------------
# mdoc


def roff_escape(s):
    s = s.replace('\\', '\\e')
    out = []
    for c in s:
        if ord(c) > 126:
            out.append('\\[u%04X]' % ord(c))
        else:
            out.append(c)
    return ''.join(out)


def roff_line(s):
    s = roff_escape(s)
    if s.startswith(('.', "'")):
        s = '\\&' + s
    return s


def roff_text(text):
    """A paragraph as roff input: one sentence a line."""
    return [roff_line(s) for s in sentences(text) if s.strip()]


def roff_blocks(blocks, out):
    first = True
    for b in blocks:
        if b[0] == 'para':
            if not first:
                out.append('.Pp')
            out.extend(roff_text(b[1]))
        elif b[0] == 'code':
            out.append('.Bd -literal -offset indent')
            out.extend(roff_line(c) if c.strip() else '' for c in b[1])
            out.append('.Ed')
        elif b[0] == 'list':
            out.append('.Bl -bullet' if b[1] == 'bullet' else '.Bl -enum')
            for item in b[2]:
                out.append('.It')
                roff_blocks(item, out)
            out.append('.El')
        first = False


def literal(out, lines):
    out.append('.Bd -literal -offset indent')
    out.extend(roff_line(l) if l.strip() else '' for l in lines)
    out.append('.Ed')


def raw_lines(raw):
    lines = raw.split('\n')
    base = min(indent_of(l) for l in lines if l.strip())
    return [l[base:].rstrip() for l in lines]


def clean_raw(raw):
    """A declaration as written, without the export and analyzer markers."""
    out = []
    for l in raw_lines(raw):
        l = re.sub(r'\bCCTX_API\s+', '', l)
        l = re.sub(r'\bCCTX__OWNED\s+', '', l)
        out.append(l)
    return out


def macro_proto(m, f):
    """A typed prototype of a call-site macro, from its target's parameters."""
    args = split_params(m.mbody[m.mbody.index('(') + 1:m.mbody.rindex(')')])
    flat = []
    for a in args:
        flat.extend(['file', 'line', 'func'] if a == 'CCTX__SITE' else [a])
    if len(flat) != len(f.params):
        return None
    typed = {}
    for a, p in zip(flat, f.params):
        a = a.strip()
        while a.startswith('(') and a.endswith(')'):
            a = a[1:-1].strip()
        if a in m.margs:
            typed[a] = p
    if set(typed) != set(m.margs):
        return None
    return [typed[a] for a in m.margs]


def nd_of(g, sec):
    """The one-line description of a page: its comment's first sentence, cut short."""
    blocks = blocks_of(g.comment)
    text = ''
    for b in blocks:
        if b[0] == 'para':
            text = b[1]
            break
    s = sentences(text)[0] if text else ''
    s = re.split(r';|:\s| \(', s)[0].strip().rstrip('.').strip()
    if len(s) > 90 and ', ' in s[:90]:
        s = s[:s[:90].rindex(', ')]
    if g.borrowed or len(s) < 12 or len(s) > 90 or re.match(r'(Each|The key)\b', s):
        s = sec.title or s
    return s


class Ctx:
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


def mdoc_head(ctx, name, section, out):
    out.append('.\\" Generated by tools/mangen/mangen.py from the public headers; do not edit.')
    out.append('.Dd ' + ctx.date)
    out.append('.Dt %s %s' % (name.upper(), section))
    out.append('.Os cctx %s' % ctx.version)


def library_section(h, out):
    lib, pc, cm = h.library
    out.append('.Sh LIBRARY')
    out.append('%s (pkg-config module' % lib)
    out.append('.Ql %s ;' % pc)
    out.append('CMake')
    out.append('.Ql find_package(cctx%s) ,' % (' COMPONENTS ' + cm.split('::')[1] if cm != 'cctx::cctx' else ''))
    out.append('target')
    out.append('.Ql %s )' % cm)


def see_also(ctx, out, refs):
    out.append('.Sh SEE ALSO')
    refs = sorted(set(refs), key=lambda r: (r[1], r[0]))
    for i, (n, sec) in enumerate(refs):
        out.append('.Xr %s %s%s' % (n, sec, ' ,' if i + 1 < len(refs) else ''))


def mentioned(ctx, texts, exclude):
    names = set()
    for t in texts:
        for n in re.findall(r'\bcctx_[a-z0-9_]+\b', t):
            if n in ctx.pages and n not in exclude:
                names.add(ctx.pages[n][1])
    return names - set(exclude)


def types_used(h_all, g):
    """Type definitions (with a body or a comment) that the group's calls name."""
    types = {}
    for h in h_all:
        for s, tg in h.groups():
            for d in tg.decls:
                if d.kind == 'type':
                    types[d.name] = (tg, d)
    found = []
    text = ' '.join(f.proto() for f in g.funcs())
    for name in re.findall(IDENT, text):
        if name in types and name not in [n for n, _, _ in found]:
            tg, d = types[name]
            if '{' in d.raw or '(' in collapse(d.raw) or tg.comment:
                found.append((name, tg, d))
    return found


def func_page(ctx, h, sec, g):
    out = []
    mdoc_head(ctx, g.page, 3, out)
    out.append('.Sh NAME')
    names = g.names()
    for i, n in enumerate(names):
        out.append('.Nm %s%s' % (n, ' ,' if i + 1 < len(names) else ''))
    out.append('.Nd ' + roff_escape(nd_of(g, sec)))
    library_section(h, out)
    out.append('.Sh SYNOPSIS')
    out.append('.In ' + h.include)
    for f in g.funcs():
        for m in g.macros:
            if m.target != f.name or m.name in [x.name for x in g.funcs()]:
                continue
            typed = macro_proto(m, f)
            if typed is None:
                out.append('.Fd #define %s(%s)' % (m.name, ', '.join(m.margs)))
                continue
            out.append('.Ft ' + ('"%s"' % f.ret if ' ' in f.ret else f.ret))
            out.append('.Fo ' + m.name)
            out.extend('.Fa "%s"' % p for p in typed)
            out.append('.Fc')
        out.append('.Ft ' + ('"%s"' % f.ret if ' ' in f.ret else f.ret))
        out.append('.Fo ' + f.name)
        out.extend('.Fa "%s"' % p for p in f.params)
        out.append('.Fc')
    out.append('.Sh DESCRIPTION')
    blocks = blocks_of(g.comment)
    first = True
    for note in g.notes:
        if not first:
            out.append('.Pp')
        roff_blocks(blocks_of(note.comment), out)
        first = False
    if not first:
        out.append('.Pp')
    roff_blocks(blocks, out)
    if g.macros:
        out.append('.Pp')
        out.append('The lower-case macros record the call site; they are defined as')
        if ctx.site:
            out.append('(with')
            out.append('.Dv CCTX__SITE')
            out.append('standing for')
            out.append('.Ql %s ) :' % ctx.site)
        else:
            out[-1] += ':'
        lines = []
        for m in g.macros:
            lines.extend(raw_lines(m.raw))
        literal(out, lines)
    if g.before is not None:
        out.append('.Ss Definitions used by these calls')
        bg = g.before
        while bg is not None:
            if bg.comment:
                roff_blocks(blocks_of(bg.comment), out)
            literal(out, [l for d in bg.decls for l in clean_raw(d.raw)])
            bg = bg.before
    used = types_used(ctx.headers, g)
    if used:
        out.append('.Ss Types')
        for name, tg, d in used:
            if tg.comment and tg.comment is not g.comment:
                out.append('.Pp')
                out.append('.Vt %s :' % name)
                roff_blocks(blocks_of(tg.comment), out)
            literal(out, clean_raw(d.raw))
    texts = [' '.join(paragraphs_text(blocks))] + [' '.join(paragraphs_text(blocks_of(n.comment)))
                                                    for n in g.notes]
    rblocks = return_blocks(blocks) + [b for n in g.notes for b in return_blocks(blocks_of(n.comment))]
    if rblocks:
        out.append('.Sh RETURN VALUES')
        roff_blocks(rblocks, out)
    refs = [(h.page, 3), ('cctx', 7)]
    for s2, g2 in h.func_groups():
        if s2 is sec and g2 is not g:
            refs.append((g2.page, 3))
    for n in mentioned(ctx, texts, names):
        refs.append((n, 3))
    see_also(ctx, out, [r for r in refs if r[0] != g.page])
    return '\n'.join(out) + '\n'


def tidy(text):
    """Drops the paragraph macros mdoc does not want (after a heading, before a display)."""
    lines = text.split('\n')
    out = []
    for i, l in enumerate(lines):
        if l == '.Pp':
            prev = out[-1] if out else ''
            nxt = lines[i + 1] if i + 1 < len(lines) else ''
            if prev.startswith(('.Sh', '.Ss', '.Pp', '.It')) or nxt.startswith(('.Bd', '.Bl', '.Pp', '.Ss', '.Sh')):
                continue
        out.append(l)
    return '\n'.join(out)


def header_page(ctx, h):
    out = []
    mdoc_head(ctx, h.page, 3, out)
    out.append('.Sh NAME')
    out.append('.Nm %s' % h.page)
    out.append('.Nd ' + roff_escape(h.title.rstrip('.')))
    library_section(h, out)
    out.append('.Sh SYNOPSIS')
    out.append('.In ' + h.include)
    out.append('.Sh DESCRIPTION')
    roff_blocks(blocks_of(h.top), out)
    for sec in h.sections:
        items = [it for it in sec.items if isinstance(it, Group)]
        if not items:
            continue
        out.append('.Ss %s' % roff_escape(sec.title or 'Definitions'))
        for it in sec.items:
            if isinstance(it, Note):
                if it is h.env:
                    out.append('.Pp')
                    out.append('The environment switches are described in')
                    out.append('.Xr cctx 7 .')
                    continue
                out.append('.Pp')
                roff_blocks(blocks_of(it.comment), out)
                continue
            if it.funcs():
                out.append('.Bl -tag -width Ds')
                out.append('.It ' + ' , '.join('Fn ' + n for n in it.names()))
                out.append(roff_escape(nd_of(it, sec)) + ';')
                out.append('see')
                out.append('.Xr %s 3 .' % it.page)
                out.append('.El')
            else:
                out.append('.Pp')
                if it.comment:
                    roff_blocks(blocks_of(it.comment), out)
                literal(out, [l for d in it.decls for l in clean_raw(d.raw)])
    refs = [('cctx', 7)] + [(x.page, 3) for x in ctx.headers if x is not h]
    see_also(ctx, out, refs)
    return '\n'.join(out) + '\n'


def env_entries(lines):
    """The switches of <cctx.h>'s section 7 comment: [(var, text, [(sub, text)])]."""
    vars_ = []
    intro, outro = [], []
    for l in lines:
        if not l.strip():
            continue
        vm = re.match(r'^ (CCTX_[A-Z_]+)(\S*)(?:,\s*(.*)|\s{2,}(.*))?$', l)
        sm = re.match(r'^  ([a-z]+)\s{2,}(.*)$', l)
        if vm:
            vars_.append([vm.group(1) + vm.group(2), (vm.group(3) or vm.group(4) or '').strip(), []])
        elif sm and vars_:
            vars_[-1][2].append([sm.group(1), sm.group(2).strip()])
        elif indent_of(l) >= 3 and vars_:
            target = vars_[-1][2][-1] if vars_[-1][2] else vars_[-1]
            target[1] += ' ' + l.strip()
        elif indent_of(l) == 0 and not vars_:
            intro.append(l.strip())
        elif indent_of(l) == 0:
            outro.append(l.strip())
        else:
            return None
    return ' '.join(intro), vars_, ' '.join(outro)


def env_roff(h, out):
    parsed = env_entries(h.env.comment) if h.env else None
    out.append('.Sh ENVIRONMENT')
    if not h.env:
        out.append('None.')
        return
    if parsed is None:
        literal(out, h.env.comment)
        return
    intro, vars_, outro = parsed
    out.extend(roff_text(intro))
    out.append('.Bl -tag -width Ds')
    for name, text, subs in vars_:
        var, _, arg = name.partition('=')
        out.append('.It Ev %s%s' % (var, (' Ns = Ns Ar ' + arg) if arg else ''))
        out.extend(roff_text(text[0].upper() + text[1:] if text else ''))
        if subs:
            out.append('.Bl -tag -width Ds')
            for sub, st in subs:
                out.append('.It Cm %s' % sub)
                out.extend(roff_text(st[0].upper() + st[1:]))
            out.append('.El')
    out.append('.El')
    if outro:
        out.append('.Pp')
        out.extend(roff_text(outro))


def seven_page(ctx):
    h = [x for x in ctx.headers if x.include == 'cctx.h']
    if not h:
        raise MangenError('no cctx.h')
    h = h[0]
    out = []
    mdoc_head(ctx, 'cctx', 7, out)
    out.append('.Sh NAME')
    out.append('.Nm cctx')
    out.append('.Nd ' + roff_escape(h.title.rstrip('.')))
    out.append('.Sh DESCRIPTION')
    roff_blocks(blocks_of(h.top), out)
    out.append('.Pp')
    out.append('The parts, each with its header and its page:')
    out.append('.Bl -tag -width Ds')
    for x in ctx.headers:
        out.append('.It In %s' % x.include)
        out.append('%s:' % roff_escape(x.title.rstrip('.')))
        out.append('.Xr %s 3 .' % x.page)
    out.append('.El')
    env_roff(h, out)
    see_also(ctx, out, [(x.page, 3) for x in ctx.headers])
    return '\n'.join(out) + '\n'


def man_pages(ctx, only=None):
    """{relative path: text} for the headers in only (default: all)."""
    pages = {}
    for h in ctx.headers:
        if only and h.include not in only:
            continue
        pages['man3/%s.3' % h.page] = tidy(header_page(ctx, h))
        for s, g in h.func_groups():
            # Every name of the group gets the whole page (mandoc calls .so
            # fragile, and a copy needs no soelim).
            text = tidy(func_page(ctx, h, s, g))
            for n in g.names():
                pages['man3/%s.3' % n] = text
    if not only or 'cctx.h' in only:
        pages['man7/cctx.7'] = tidy(seven_page(ctx))
    return pages


def page_list(ctx):
    rows = []
    for h in ctx.headers:
        rows.append((h.include, 'man3/%s.3' % h.page))
        for s, g in h.func_groups():
            for n in g.names():
                rows.append((h.include, 'man3/%s.3' % n))
        if h.include == 'cctx.h':
            rows.append((h.include, 'man7/cctx.7'))
    return rows


# ---------------------------------------------------------------------------
# Markdown


def md_escape(s):
    out = []
    # keep `code` spans as they are; escape the rest
    for k, part in enumerate(re.split(r'(`[^`]*`)', s)):
        if k % 2:
            out.append(part)
        else:
            part = part.replace('\\', '\\\\')
            for c in '*<>[]':
                part = part.replace(c, '\\' + c)
            part = re.sub(r'(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])', r'\\_', part)
            out.append(part)
    return ''.join(out)


def md_blocks(blocks, out, indent=''):
    for b in blocks:
        if b[0] == 'para':
            out.append(indent + md_escape(b[1]))
            out.append('')
        elif b[0] == 'code':
            out.append(indent + '```')
            out.extend((indent + c) if c.strip() else '' for c in b[1])
            out.append(indent + '```')
            out.append('')
        elif b[0] == 'list':
            for n, item in enumerate(b[2]):
                marker = '-' if b[1] == 'bullet' else '%d.' % (n + 1)
                sub = []
                md_blocks(item, sub, '')
                while sub and not sub[-1]:
                    sub.pop()
                pad = ' ' * (len(marker) + 1)
                for k, l in enumerate(sub):
                    if k == 0:
                        out.append(indent + marker + ' ' + l)
                    else:
                        out.append((indent + pad + l) if l else '')
            out.append('')


def anchor(s):
    s = s.lower()
    s = re.sub(r'[^a-z0-9 _-]', '', s)
    return s.replace(' ', '-')


def markdown(ctx):
    out = ['<!-- Generated by tools/mangen/mangen.py from include/; do not edit. -->', '',
           '# cctx reference', '',
           'Every public call and type of cctx, by header, with the comment that is its',
           'contract. This file, the man pages (`man 3 cctx_with_timeout`, `man 7 cctx`)',
           'and the headers say the same thing: the first two are made from the third',
           '(see [README.md](README.md#how-the-man-pages-are-made)).', '']
    for h in ctx.headers:
        title = '`<%s>` \u2014 %s' % (h.include, h.title.rstrip('.'))
        out.append('- [%s](#%s)' % (title, anchor(title)))
    out.append('- [Environment](#environment)')
    out.append('')
    for h in ctx.headers:
        out.append('## `<%s>` \u2014 %s' % (h.include, h.title.rstrip('.')))
        out.append('')
        lib, pc, cm = h.library
        out.append('`#include <%s>` \u2014 %s: pkg-config `%s`, CMake `%s`; man page `%s(3)`.'
                   % (h.include, lib, pc, cm, h.page))
        out.append('')
        md_blocks(blocks_of(h.top), out)
        for sec in h.sections:
            if not sec.items:
                continue
            if sec.title:
                out.append('### ' + sec.title)
                out.append('')
            for it in sec.items:
                if isinstance(it, Note):
                    if it is h.env:
                        out.append('The environment switches: see [Environment](#environment).')
                        out.append('')
                    else:
                        md_blocks(blocks_of(it.comment), out)
                    continue
                if it.funcs():
                    out.append('#### ' + ', '.join('`%s`' % n for n in it.names()))
                    out.append('')
                    out.append('```c')
                    for f in it.funcs():
                        for m in it.macros:
                            if m.target == f.name:
                                out.extend(raw_lines(m.raw))
                        out.extend(clean_raw(f.raw))
                    out.append('```')
                    out.append('')
                    if it.borrowed:
                        out.append('(Documented by the comment above.)')
                        out.append('')
                    else:
                        md_blocks(blocks_of(it.comment), out)
                else:
                    out.append('```c')
                    for d in it.decls:
                        out.extend(clean_raw(d.raw))
                    out.append('```')
                    out.append('')
                    if it.comment:
                        md_blocks(blocks_of(it.comment), out)
    out.append('## Environment')
    out.append('')
    env = [h for h in ctx.headers if h.env]
    for h in env:
        md_blocks(blocks_of(h.env.comment), out)
    while out and not out[-1]:
        out.pop()
    return '\n'.join(out) + '\n'


# ---------------------------------------------------------------------------


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
