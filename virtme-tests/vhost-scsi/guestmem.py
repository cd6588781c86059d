"""Guest memory of the user-space VMM: one anonymous mapping at GPA 0.

The device sees it through a single VHOST_SET_MEM_TABLE region. Every write the
harness makes goes through :meth:`GuestMemory.write`, which records the pages it
touched: that record stands in for KVM's dirty log in the migration test.
:class:`ByteMemory` is the same interface over a bytearray, for host unit tests.
"""

from __future__ import annotations

import ctypes
import mmap

PAGE = 4096


def page_span(gpa: int, length: int) -> range:
    """Page numbers touched by ``length`` bytes at ``gpa`` (empty if length is 0)."""
    if length <= 0:
        return range(0)
    return range(gpa // PAGE, (gpa + length - 1) // PAGE + 1)


class ByteMemory:
    """Guest memory over a bytearray (no host address; for pure-Python tests)."""

    def __init__(self, size: int) -> None:
        if size % PAGE:
            raise ValueError("size must be a multiple of the page size")
        self.size = size
        self.buf: bytearray | mmap.mmap = bytearray(size)
        self.written: set[int] = set()
        self.next_free = PAGE  # GPA 0 stays unused

    # --- access -----------------------------------------------------------
    def _check(self, gpa: int, length: int) -> None:
        if gpa < 0 or length < 0 or gpa + length > self.size:
            raise ValueError(f"GPA range {gpa:#x}+{length:#x} outside guest memory")

    def read(self, gpa: int, length: int) -> bytes:
        self._check(gpa, length)
        return bytes(self.buf[gpa:gpa + length])

    def write(self, gpa: int, data: bytes) -> None:
        self._check(gpa, len(data))
        self.buf[gpa:gpa + len(data)] = data
        self.written.update(page_span(gpa, len(data)))

    def fill(self, gpa: int, length: int, byte: int) -> None:
        self.write(gpa, bytes([byte]) * length)

    def snapshot(self) -> bytes:
        return bytes(self.buf[:self.size])

    def take_written(self) -> set[int]:
        """Pages the harness wrote since the last call (and forget them)."""
        pages, self.written = self.written, set()
        return pages

    # --- allocation -------------------------------------------------------
    def alloc_pages(self, count: int = 1) -> int:
        """Bump-allocate ``count`` whole pages; returns the GPA of the first."""
        gpa = self.next_free
        if gpa + count * PAGE > self.size:
            raise MemoryError(f"guest memory exhausted ({self.size // PAGE} pages)")
        self.next_free += count * PAGE
        return gpa


class GuestMemory(ByteMemory):
    """Guest memory backed by an anonymous shared mapping with a host address."""

    def __init__(self, size: int) -> None:
        if size % PAGE:
            raise ValueError("size must be a multiple of the page size")
        self.size = size
        self.buf = mmap.mmap(-1, size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self._anchor = ctypes.c_char.from_buffer(self.buf)
        self.hva = ctypes.addressof(self._anchor)
        self.written = set()
        self.next_free = PAGE  # GPA 0 stays unused

    def close(self) -> None:
        del self._anchor
        self.buf.close()
