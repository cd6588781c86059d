"""Whole virtio-scsi requests on a Vmm: lay out, submit, check the answer.

A :class:`Request` knows its device-readable and device-writable buffers (so a
test can compute the pages the dirty log must hold) and what it expects back
(the backing file's per-LBA pattern for a READ).
"""

from __future__ import annotations

from collections.abc import Sequence

import scsi
from dirtylog import pages_of
from guestmem import PAGE
from virtq import Buf, gather

POISON = 0xEE


class Request:
    """One chain: header (+ data-out) readable, response (+ data-in) writable."""

    def __init__(self, name: str, queue: int, readable: list[Buf], writable: list[Buf],
                 resp_size: int = scsi.CMD_RESP.size, data_in: int = 0,
                 expect: bytes | None = None, expect_response: int = scsi.S_OK,
                 indirect: int | None = None) -> None:
        self.name, self.queue = name, queue
        self.readable, self.writable = readable, writable
        self.resp_size = resp_size
        self.data_in = data_in              # bytes of data-in after the response
        self.expect = expect                # expected data-in
        self.expect_response = expect_response
        self.indirect = indirect            # GPA of an indirect table, if any
        self.head = -1
        self.problems: list[str] = []

    @property
    def write_pages(self) -> set[int]:
        return pages_of(self.writable)

    @property
    def read_pages(self) -> set[int]:
        return pages_of(self.readable)

    def response_bytes(self, mem) -> bytes:
        return gather(mem, self.writable, 0, self.resp_size)

    def data_bytes(self, mem) -> bytes:
        return gather(mem, self.writable, self.resp_size, self.data_in)


def poison(mem, bufs: Sequence[Buf]) -> None:
    for gpa, n in bufs:
        mem.fill(gpa, n, POISON)


def header_page(mem, data: bytes) -> int:
    """A fresh page holding a request header; returns its GPA."""
    gpa = mem.alloc_pages(1)
    mem.write(gpa, data)
    return gpa


def read10(mem, name: str, tag: int, lba: int, blocks: int, writable: list[Buf],
           indirect: bool = False, tpgt: int = 1, poison_data: bool = True,
           lun: int = 0) -> Request:
    """A READ(10) whose response + data-in go to ``writable`` (must hold them)."""
    req = scsi.cmd_req(scsi.cdb_read10(lba, blocks), tag, tpgt=tpgt, lun=lun)
    hdr = header_page(mem, req)
    total = sum(n for _, n in writable)
    nbytes = blocks * scsi.BLOCK
    if total != scsi.CMD_RESP.size + nbytes:
        raise ValueError(f"{name}: {total} writable bytes for {nbytes} of data")
    if poison_data:
        poison(mem, writable)
    return Request(name, 2, [(hdr, scsi.CMD_REQ.size)], list(writable),
                   data_in=nbytes, expect=scsi.pattern(lba, blocks),
                   indirect=mem.alloc_pages(1) if indirect else None)


def write10(mem, name: str, tag: int, lba: int, data: bytes, resp: Buf) -> Request:
    """A WRITE(10) of ``data`` (on fresh pages, device-readable)."""
    blocks = len(data) // scsi.BLOCK
    hdr = header_page(mem, scsi.cmd_req(scsi.cdb_write10(lba, blocks), tag))
    out = mem.alloc_pages(-(-len(data) // PAGE))
    mem.write(out, data)
    poison(mem, [resp])
    return Request(name, 2, [(hdr, scsi.CMD_REQ.size), (out, len(data))], [resp])


def simple_cmd(mem, name: str, tag: int, cdb: bytes, writable: list[Buf],
               data_in: int = 0, tpgt: int = 1,
               expect_response: int = scsi.S_OK, lun: int = 0) -> Request:
    hdr = header_page(mem, scsi.cmd_req(cdb, tag, tpgt=tpgt, lun=lun))
    poison(mem, writable)
    return Request(name, 2, [(hdr, scsi.CMD_REQ.size)], list(writable), data_in=data_in,
                   expect_response=expect_response)


def submit(vmm, reqs: Sequence[Request]) -> None:
    """Publish every request, then kick each queue once."""
    queues = []
    for r in reqs:
        r.head = vmm.submit(r.queue, r.readable, r.writable, indirect=r.indirect, kick=False)
        if r.queue not in queues:
            queues.append(r.queue)
    for q in queues:
        vmm.kick(q)


def run(vmm, reqs: Sequence[Request], timeout: float = 30.0) -> None:
    """Submit, wait for all of them (and the barrier), check each one."""
    submit(vmm, reqs)
    for q in sorted({r.queue for r in reqs}):
        n = sum(1 for r in reqs if r.queue == q)
        used = vmm.wait(q, count=n, timeout=timeout)
        heads = {u[0] for u in used}
        for r in reqs:
            if r.queue == q and r.head not in heads:
                r.problems.append(f"{r.name}: head {r.head} not in used ring")
    for r in reqs:
        if r.queue == 2:
            check_cmd(vmm.mem, r)


def check_cmd(mem, r: Request) -> None:
    """Response code/status and, for READs, the backing file's pattern."""
    resp = scsi.CmdResp.parse(r.response_bytes(mem))
    if resp.response != r.expect_response or (
            r.expect_response == scsi.S_OK and resp.status != scsi.GOOD):
        want = scsi.RESPONSE_NAMES.get(r.expect_response, r.expect_response)
        r.problems.append(f"{r.name}: {resp.describe()} (expected {want})")
        return
    if r.expect is not None:
        data = r.data_bytes(mem)
        if data != r.expect:
            bad = next(i for i in range(len(data)) if data[i] != r.expect[i])
            r.problems.append(f"{r.name}: data-in differs from the backing file at byte "
                              f"{bad} (LBA offset {bad // scsi.BLOCK})")


def problems(reqs: Sequence[Request]) -> list[str]:
    return [p for r in reqs for p in r.problems]
