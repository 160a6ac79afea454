# SPDX-License-Identifier: MIT
"""A header as a list of tokens: comments, preprocessor lines (with their
continuations), declarations (up to the end of their statement) and blank
lines, each with the line it starts on; and the helpers that read a
comment's text and a declaration's code out of them. What is inside
`#ifdef __cplusplus` is dropped: it is the extern "C" wrapping."""

import re

from . import MangenError


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
