"""Scan /dev/kmsg for kernel splats that appeared while a case ran.

The guest runner's splat scanner does the same for the whole run; checking in
the case too lets the case's own result line name the splat.
"""

from __future__ import annotations

import os
import re

SPLAT = re.compile(r"WARNING:|BUG:|BUG |KASAN|UBSAN|Oops|general protection|"
                   r"possible circular locking|lockdep|unreferenced object|"
                   r"INFO: task .* blocked|Call Trace")


class KmsgWatch:
    """Remembers the end of the kernel log; :meth:`splats` returns what came after."""

    def __init__(self) -> None:
        try:
            self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            self.fd = -1

    def lines(self) -> list[str]:
        out: list[str] = []
        if self.fd < 0:
            return out
        while True:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # overwritten records; keep reading
                continue
            if not rec:
                break
            text = rec.decode("utf-8", "replace")
            _, _, msg = text.partition(";")
            out.append(msg.splitlines()[0] if msg else text.strip())
        return out

    def splats(self) -> list[str]:
        return [line for line in self.lines() if SPLAT.search(line)]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
