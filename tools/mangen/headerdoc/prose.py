# SPDX-License-Identifier: MIT
"""Comment text: blocks (paragraphs, bulleted and numbered lists, literal
code indented by two spaces or more), the sentences of a paragraph, and the
sentences that say what a call returns (its RETURN VALUES)."""

import errno as errno_mod
import re

ERRNO_NAMES = set(errno_mod.errorcode.values())


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
