"""Untrusted text from mails and logs: strip terminal escapes and control characters, cap size.

Reads strings and log files; writes nothing. Every renderer passes subjects, names, messages
and log excerpts through `clean` (HTML escaping itself is jinja's autoescape in the HTML
templates and `md_escape` in Markdown), and reads logs with `read_capped` so a huge log shows
its head and tail only, with the size of what was left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), other two-byte ESC sequences, and the
# single-byte C1 CSI; what is left of C0/C1 controls (except tab and newline) is dropped.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
                   r"|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

LOG_CAP_BYTES = 64 * 1024
EXCERPT_LINES = 40


def strip_ansi(text: str) -> str:
    """Remove terminal escape sequences (colours, cursor moves, titles)."""
    return _ANSI.sub("", text)


def clean(text: object) -> str:
    """Untrusted text made safe to show: no escape sequences, no control characters.

    Carriage returns are dropped ("\\r\\n" becomes "\\n"); tabs and newlines stay.
    """
    if text is None:
        return ""
    return _CONTROL.sub("", strip_ansi(str(text)).replace("\r\n", "\n"))


def one_line(text: object) -> str:
    """`clean`, with runs of whitespace (newlines included) folded into one space."""
    return " ".join(clean(text).split())


def md_escape(text: object) -> str:
    """Text for a Markdown table cell or line: HTML and Markdown syntax shown literally."""
    out = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|#~!])", r"\\\1", out)


@dataclass
class LogExcerpt:
    """A log (or its head and tail) ready to show; `missing` when the file is not there."""

    path: str
    text: str = ""
    size: int = 0
    omitted: int = 0
    missing: bool = False

    @property
    def capped(self) -> bool:
        return self.omitted > 0


def cap(text: str, limit: int = LOG_CAP_BYTES) -> tuple[str, int]:
    """Keep the first and last limit/2 characters of `text`; return it and how many were cut."""
    if len(text) <= limit:
        return text, 0
    half = limit // 2
    head, tail = text[:half], text[-half:]
    head = head[: head.rfind("\n") + 1] or head
    tail = tail[tail.find("\n") + 1:] or tail
    omitted = len(text) - len(head) - len(tail)
    return f"{head}[... {omitted} characters left out: see the full log ...]\n{tail}", omitted


def read_capped(run_dir: Path, rel: str | None, limit: int = LOG_CAP_BYTES) -> LogExcerpt | None:
    """A log the record names (relative to the run dir), cleaned and capped; None if unnamed."""
    if not rel:
        return None
    path = run_dir / rel
    try:
        raw = path.read_bytes()
    except OSError:
        return LogExcerpt(path=rel, missing=True)
    text, omitted = cap(clean(raw.decode("utf-8", errors="replace")), limit)
    return LogExcerpt(path=rel, text=text, size=len(raw), omitted=omitted)


def tail_lines(text: str, lines: int = EXCERPT_LINES) -> str:
    """The last `lines` lines of cleaned text (for mails and KCIDB log excerpts)."""
    return "\n".join(clean(text).rstrip("\n").splitlines()[-lines:])


def columns(rows: list[list[str]], gap: int = 2) -> list[str]:
    """Rows of cells as fixed-width text lines (the first row is the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))] if rows else []
    return [(" " * gap).join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]
