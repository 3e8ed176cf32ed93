"""escape_controls: what users wrote, safe to print."""

from __future__ import annotations

from taskqueue.text import escape_controls


def test_control_format_and_separator_characters_are_escaped_printable_text_is_kept() -> None:
    assert escape_controls("a\x1b[31mred\x1b[0m") == "a\\x1b[31mred\\x1b[0m"
    assert escape_controls("forged\nINFO line\r") == "forged\\nINFO line\\r"
    assert escape_controls("admin\u202eexe.txt\u200b") == "admin\\u202eexe.txt\\u200b"
    assert escape_controls("\x00\x7f\t") == "\\x00\\x7f\\t"
    for kept in ("Grüße", "メール 📬", "a b", ""):
        assert escape_controls(kept) == kept


def test_newlines_may_be_kept_for_tracebacks() -> None:
    assert escape_controls("one\x1b\ntwo", keep_newlines=True) == "one\\x1b\ntwo"
