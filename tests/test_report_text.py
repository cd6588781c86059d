"""Untrusted text: terminal escapes and control characters stripped, logs capped, escaping."""

from __future__ import annotations

from pathlib import Path

from pipeline.report import text


def test_strip_ansi_removes_colours_cursor_moves_and_titles() -> None:
    raw = "\x1b[1;31merror:\x1b[0m bad\x1b[2K\x1b]0;evil title\x07 end\x1b]8;;http://x\x1b\\link"
    assert text.strip_ansi(raw) == "error: bad end" + "link"


def test_clean_drops_control_characters_but_keeps_tabs_and_newlines() -> None:
    raw = "a\x00b\x07c\r\nd\te\x85f\x1b[31mg"
    assert text.clean(raw) == "abc\nd\tefg"


def test_clean_of_none_is_empty() -> None:
    assert text.clean(None) == ""


def test_one_line_folds_whitespace() -> None:
    assert text.one_line("  a\n\tb   c \n") == "a b c"


def test_md_escape_shows_html_and_markdown_as_text() -> None:
    out = text.md_escape("<script>alert(1)</script> | *x* `y` [l](u)")
    assert "<" not in out and ">" not in out
    assert out.startswith("&lt;script&gt;")
    assert "\\|" in out and "\\*x\\*" in out and "\\`y\\`" in out and "\\[l\\]" in out


def test_cap_keeps_head_and_tail_and_says_how_much_was_cut() -> None:
    lines = "".join(f"line {i:05d}\n" for i in range(20000))
    capped, omitted = text.cap(lines, 4096)
    assert omitted > 0
    assert len(capped) < 4096 + 200
    assert capped.startswith("line 00000\n")
    assert capped.endswith("line 19999\n")
    assert f"[... {omitted} characters left out" in capped
    head, marker, tail = capped.partition(f"[... {omitted} characters left out")
    tail = tail.split("\n", 1)[1]
    assert len(head) + omitted + len(tail) == len(lines)


def test_cap_leaves_small_text_alone() -> None:
    assert text.cap("short\n", 4096) == ("short\n", 0)


def test_read_capped_cleans_caps_and_reports_missing(tmp_path: Path) -> None:
    (tmp_path / "huge.log").write_bytes(b"\x1b[32mok\x1b[0m\n" * 50000)
    log = text.read_capped(tmp_path, "huge.log", limit=8192)
    assert log is not None and log.capped and not log.missing
    assert "\x1b" not in log.text
    assert log.size == len(b"\x1b[32mok\x1b[0m\n" * 50000)
    missing = text.read_capped(tmp_path, "gone.log")
    assert missing is not None and missing.missing
    assert text.read_capped(tmp_path, None) is None


def test_columns_aligns_cells() -> None:
    assert text.columns([["a", "bb"], ["ccc", "d"]]) == ["a    bb", "ccc  d"]
