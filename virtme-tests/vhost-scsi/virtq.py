"""Driver side of a split virtqueue (virtio 1.x), direct and indirect chains.

The queue lives in guest memory (any object with ``read``/``write``/``alloc_pages``,
see guestmem.py); descriptor addresses are guest-physical. The descriptor table,
the avail ring and the used ring each get their own pages so that a dirty-log
test can tell them apart.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from guestmem import PAGE, ByteMemory

VRING_DESC_F_NEXT = 1
VRING_DESC_F_WRITE = 2
VRING_DESC_F_INDIRECT = 4

DESC_SIZE = 16
DESC = struct.Struct("<QIHH")  # addr, len, flags, next
USED_ELEM = struct.Struct("<II")  # id, len

Buf = tuple[int, int]  # (guest-physical address, length)


Memory = ByteMemory  # GuestMemory in the guest, ByteMemory in host unit tests


def pages_for(nbytes: int) -> int:
    return max(1, -(-nbytes // PAGE))


def desc_table_size(num: int) -> int:
    return DESC_SIZE * num


def avail_size(num: int) -> int:
    return 4 + 2 * num + 2


def used_size(num: int) -> int:
    return 4 + USED_ELEM.size * num + 2


def pack_chain(readable: Sequence[Buf], writable: Sequence[Buf],
               indices: Sequence[int]) -> list[tuple[int, bytes]]:
    """Descriptor entries for one chain: device-readable buffers first.

    ``indices`` are the table slots to use, in chain order; returns
    ``(slot, 16-byte descriptor)`` pairs.
    """
    bufs = [(a, n, 0) for a, n in readable] + [(a, n, VRING_DESC_F_WRITE) for a, n in writable]
    if len(indices) != len(bufs):
        raise ValueError("one slot per buffer needed")
    out = []
    for k, (addr, length, flags) in enumerate(bufs):
        last = k == len(bufs) - 1
        nxt = 0 if last else indices[k + 1]
        out.append((indices[k], DESC.pack(addr, length,
                                          flags | (0 if last else VRING_DESC_F_NEXT), nxt)))
    return out


def unpack_desc(raw: bytes) -> tuple[int, int, int, int]:
    return DESC.unpack(raw)


class SplitQueue:
    """A split virtqueue as a guest driver sees it."""

    def __init__(self, mem: Memory, num: int, desc: int, avail: int, used: int) -> None:
        if num <= 0 or num & (num - 1) or num > 32768:
            raise ValueError("queue size must be a power of two <= 32768")
        self.mem, self.num = mem, num
        self.desc, self.avail, self.used = desc, avail, used
        self.free = list(range(num))
        self.chains: dict[int, list[int]] = {}
        self.avail_idx = 0
        self.last_used = 0
        mem.write(desc, bytes(desc_table_size(num)))
        mem.write(avail, bytes(avail_size(num)))  # flags 0: every completion signals
        mem.write(used, bytes(used_size(num)))

    @classmethod
    def allocate(cls, mem: Memory, num: int) -> SplitQueue:
        """A queue whose three parts each start on fresh pages."""
        desc = mem.alloc_pages(pages_for(desc_table_size(num)))
        avail = mem.alloc_pages(pages_for(avail_size(num)))
        used = mem.alloc_pages(pages_for(used_size(num)))
        return cls(mem, num, desc, avail, used)

    @property
    def used_pages(self) -> set[int]:
        return set(range(self.used // PAGE, (self.used + used_size(self.num) - 1) // PAGE + 1))

    # --- submission -------------------------------------------------------
    def add(self, readable: Sequence[Buf], writable: Sequence[Buf],
            indirect: int | None = None) -> int:
        """Put one chain in the descriptor table; returns its head.

        With ``indirect`` (a GPA with room for 16 bytes per buffer) the chain is
        written there as an indirect table and takes one ring descriptor.
        """
        count = len(readable) + len(writable)
        if count == 0:
            raise ValueError("empty chain")
        if indirect is not None:
            if not self.free:
                raise RuntimeError("no free descriptors")
            head = self.free.pop(0)
            self._write_indirect(head, readable, writable, indirect)
            self.chains[head] = [head]
            return head
        if count > len(self.free):
            raise RuntimeError(f"chain of {count} does not fit in {len(self.free)} free slots")
        slots = [self.free.pop(0) for _ in range(count)]
        for slot, raw in pack_chain(readable, writable, slots):
            self.mem.write(self.desc + slot * DESC_SIZE, raw)
        self.chains[slots[0]] = slots
        return slots[0]

    def rewrite_indirect(self, head: int, readable: Sequence[Buf], writable: Sequence[Buf],
                         table: int) -> None:
        """Point ring descriptor ``head``, whose chain is still in flight, at a new indirect
        table: what only a buggy or hostile driver does (the device must cope). The queue's
        bookkeeping is left alone; publish ``head`` again to make the new chain available."""
        self._write_indirect(head, readable, writable, table)

    def _write_indirect(self, head: int, readable: Sequence[Buf], writable: Sequence[Buf],
                        table: int) -> None:
        """The chain as an indirect table at ``table``, and ring descriptor ``head`` on it."""
        count = len(readable) + len(writable)
        for slot, raw in pack_chain(readable, writable, range(count)):
            self.mem.write(table + slot * DESC_SIZE, raw)
        self.mem.write(self.desc + head * DESC_SIZE,
                       DESC.pack(table, count * DESC_SIZE, VRING_DESC_F_INDIRECT, 0))

    def publish(self, head: int) -> None:
        """Make a chain available (ring entry first, then the index)."""
        slot = self.avail_idx % self.num
        self.mem.write(self.avail + 4 + 2 * slot, struct.pack("<H", head))
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.mem.write(self.avail + 2, struct.pack("<H", self.avail_idx))

    # --- completion -------------------------------------------------------
    def used_idx(self) -> int:
        return struct.unpack("<H", self.mem.read(self.used + 2, 2))[0]

    def pending(self) -> int:
        """Chains made available and not yet seen in the used ring."""
        return (self.avail_idx - self.last_used) & 0xFFFF

    def collect(self) -> list[tuple[int, int]]:
        """New used elements ``(id, len)``; their descriptors are freed."""
        out = []
        idx = self.used_idx()
        while self.last_used != idx:
            slot = self.last_used % self.num
            elem = USED_ELEM.unpack(self.mem.read(self.used + 4 + USED_ELEM.size * slot,
                                                  USED_ELEM.size))
            out.append(elem)
            for d in self.chains.pop(elem[0], []):
                self.free.append(d)
            self.last_used = (self.last_used + 1) & 0xFFFF
        return out


def gather(mem: Memory, bufs: Sequence[Buf], offset: int, length: int) -> bytes:
    """``length`` bytes starting ``offset`` bytes into the concatenated buffers."""
    out = bytearray()
    for gpa, n in bufs:
        if offset >= n:
            offset -= n
            continue
        take = min(n - offset, length - len(out))
        out += mem.read(gpa + offset, take)
        offset = 0
        if len(out) == length:
            break
    return bytes(out)
