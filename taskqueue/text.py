"""Text from users made safe to print: the one escape every terminal line,
table cell and log message goes through.

A task's error, a JWT's subject or a queue's name may hold ANSI escape
sequences (which repaint or hide what an operator sees), newlines (which
forge a log line) or bidi overrides (which reorder it). ``escape_controls``
writes every character ``str.isprintable`` rejects (Unicode's Other and
Separator categories, except the ASCII space) as a Python escape
(``\\x1b``, ``\\n``, ``\\u202e``), so the text reads the same and does
nothing. Printable text comes back as it is, after one C-speed check."""

from __future__ import annotations


def escape_controls(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with non-printable characters escaped; ``keep_newlines``
    leaves line breaks alone (a traceback's lines)."""
    if text.isprintable():
        return text
    if keep_newlines:
        return "\n".join(escape_controls(line) for line in text.split("\n"))
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def _escaped(character: str) -> str:
    # repr's spelling: \n, \t, \x1b, \u202e, \U000e0001.
    return repr(character)[1:-1]
