"""The vhost dirty log: one bit per 4 KiB guest page, LSB first.

Page ``p`` is bit ``p % 8`` of byte ``p // 8`` (bit ``p & 63`` of u64 word
``p >> 6`` on x86). Python cannot exchange a word atomically, so the suite reads
and clears the log only while the device is quiesced (all submitted requests
used and a VHOST_GET_VRING_BASE barrier taken, or after CLEAR_ENDPOINT).
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Iterable

from guestmem import PAGE


def log_size(mem_size: int) -> int:
    """Bytes of log for guest memory of ``mem_size`` bytes, rounded up to 8."""
    pages = -(-mem_size // PAGE)
    return -(-pages // 64) * 8


def pages_in(log: bytes) -> set[int]:
    """Page numbers whose bits are set in a log image."""
    out = set()
    for byte_no, byte in enumerate(log):
        if byte:
            for b in range(8):
                if byte >> b & 1:
                    out.add(byte_no * 8 + b)
    return out


def set_pages(log: bytearray, pages: Iterable[int]) -> None:
    """Set bits like the kernel does (for tests)."""
    for p in pages:
        log[p // 8] |= 1 << (p % 8)


def pages_of(ranges: Iterable[tuple[int, int]]) -> set[int]:
    """Pages covered by ``(gpa, length)`` ranges."""
    out: set[int] = set()
    for gpa, length in ranges:
        if length > 0:
            out.update(range(gpa // PAGE, (gpa + length - 1) // PAGE + 1))
    return out


def fmt_pages(pages: Iterable[int], limit: int = 24) -> str:
    """``0x5000 0x6000 ...`` (GPAs of the pages), shortened after ``limit``."""
    items = sorted(pages)
    text = " ".join(f"{p * PAGE:#x}" for p in items[:limit])
    if len(items) > limit:
        text += f" ... ({len(items)} pages)"
    return text


class DirtyLog:
    """A log buffer in VMM memory (not guest memory) with its host address."""

    def __init__(self, mem_size: int) -> None:
        self.size = log_size(mem_size)
        self.buf = mmap.mmap(-1, max(self.size, PAGE),
                             flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self._anchor = ctypes.c_char.from_buffer(self.buf)
        self.hva = ctypes.addressof(self._anchor)

    def clear(self) -> None:
        self.buf[:self.size] = bytes(self.size)

    def peek(self) -> set[int]:
        return pages_in(self.buf[:self.size])

    def take(self) -> set[int]:
        """Read and clear (the device must be quiesced)."""
        pages = self.peek()
        self.clear()
        return pages

    def close(self) -> None:
        del self._anchor
        self.buf.close()
