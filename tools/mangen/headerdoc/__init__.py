# SPDX-License-Identifier: MIT
"""headerdoc: the modules of mangen.py, which makes the man pages and
docs/reference.md of cctx from its public headers (include/).

  tokens        a header as comments, preprocessor lines, declarations and
                blank lines
  declarations  one declaration the reference shows (a function, a call-site
                macro, a type, a constant), read and shown as written
  prose         comment text as paragraphs, lists and literal code; its
                sentences, and those that say what a call returns
  headers       a header as sections of documented groups of calls; loading
                every header of an include directory
  mdoc          the man pages, in mdoc(7)
  markdown      docs/reference.md

The rules a header follows to be documented are in headers.py. Only the
standard library is used.
"""


class MangenError(Exception):
    """A header that cannot be documented as it is; the message says where."""
