# SPDX-License-Identifier: MIT
"""The declarations the reference shows: a CCTX_API function, a call-site
macro that expands to one, a type, a constant. Each is read from its code
(parse_decl, parse_pp) and shown as written, without the export and
analyzer markers (raw_lines, clean_raw)."""

import re

from . import MangenError
from .prose import indent_of
from .tokens import collapse, split_params, strip_comments

IDENT = r'[A-Za-z_][A-Za-z0-9_]*'


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


def raw_lines(raw):
    """A declaration's lines as written, less their common indentation."""
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
