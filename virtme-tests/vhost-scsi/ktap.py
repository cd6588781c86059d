"""KTAP version 1 output for the vhost-scsi suite.

Every line is flushed as soon as it is written: the guest runner reads the
results as they come and marks the start of the next case in /dev/kmsg when it
sees a result line, so buffering would misattribute kernel messages.
"""

from __future__ import annotations

import sys
from io import TextIOBase


def one_line(text: str) -> str:
    """Collapse a reason to one line (KTAP directives may not span lines)."""
    return " ".join(str(text).split()) or "failed"


class KtapWriter:
    """Writes a flat KTAP version 1 test plan and its results."""

    def __init__(self, out: TextIOBase | None = None) -> None:
        self.out = out if out is not None else sys.stdout
        self.number = 0

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def header(self, count: int) -> None:
        self._line("KTAP version 1")
        self._line(f"1..{count}")

    def diag(self, text: str) -> None:
        """A diagnostic line; multi-line text becomes several lines."""
        for line in str(text).splitlines() or [""]:
            self._line(f"# {line}".rstrip())

    def ok(self, name: str) -> None:
        self.number += 1
        self._line(f"ok {self.number} {name}")

    def not_ok(self, name: str, reason: str) -> None:
        self.number += 1
        self._line(f"not ok {self.number} {name} # {one_line(reason)}")

    def skip(self, name: str, reason: str) -> None:
        self.number += 1
        self._line(f"ok {self.number} {name} # SKIP {one_line(reason)}")
