"""log-toggle's phase with requests really in flight when VHOST_F_LOG_ALL is switched on.

READs go to LUN 2, whose fileio backing file is served by the suite's FUSE server
(fusedisk.py); the server holds them, so they are fetched by vhost and waiting in the
target core when SET_FEATURES(LOG_ALL) is issued. A releaser thread answers them: at once
when SET_FEATURES has returned, or, when the main thread has sat inside that ioctl for
BLOCKED_S (read from /proc/self/task/<tid>/syscall: a fix that waits for them), from there.
No timing decides the result: whatever a request writes after SET_FEATURES returns, its
response and data-in pages, must be in the dirty log. The used-ring log (VHOST_VRING_F_LOG)
stays off so that the log holds nothing else.

The TASK SET FULL phase holds READs the same way: vhost-scsi gives an I/O queue one command
tag per ring entry, so with every tag held a further request is refused at once with TASK
SET FULL (vhost_scsi_send_status()), and with LOG_ALL on its response page must be logged.

Reads /proc/self/task/<tid>/syscall; writes nothing but guest memory.
"""

from __future__ import annotations

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scsi  # noqa: E402
import scsicmd as sc  # noqa: E402
import vhost as vh  # noqa: E402
from guestmem import PAGE  # noqa: E402
from harness import FUSE_LUN, Case, Suite  # noqa: E402
from vmm import QUEUE_SIZES, Vmm  # noqa: E402

REQUESTS = 4
BLOCKED_S = 0.3          # this long inside SET_FEATURES counts as waiting for the requests
GIVE_UP_S = 20.0         # the releaser answers the READs after this whatever happens
SYS_IOCTL = 16           # x86-64
TAGS = 4                 # the TASK SET FULL phase's I/O ring size, so its command tags


def in_ioctl(tid: int, fd: int, request: int) -> bool:
    """Whether thread ``tid`` of this process is inside ``ioctl(fd, request, ...)``."""
    try:
        with open(f"/proc/self/task/{tid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return False
    try:
        return (len(fields) > 2 and int(fields[0]) == SYS_IOCTL and int(fields[1], 16) == fd
                and int(fields[2], 16) == request)
    except ValueError:   # "running"
        return False


class Releaser(threading.Thread):
    """Answers the held READs once SET_FEATURES returned or blocked for BLOCKED_S."""

    def __init__(self, s: Suite, tid: int, fd: int) -> None:
        super().__init__(name="releaser", daemon=True)
        self.s, self.tid, self.fd = s, tid, fd
        self.returned = threading.Event()
        self.while_blocked = False
        self.gave_up = False

    def run(self) -> None:
        since: float | None = None
        deadline = time.monotonic() + GIVE_UP_S
        while not self.returned.is_set():
            now = time.monotonic()
            if now > deadline:
                self.gave_up = True
                break
            if in_ioctl(self.tid, self.fd, vh.VHOST_SET_FEATURES):
                since = now if since is None else since
                if now - since >= BLOCKED_S:
                    self.while_blocked = True
                    break
            else:
                since = None
            time.sleep(0.01)
        self.s.fuse.release()


def wait_fetched(v: Vmm, avail_idx: int, timeout: float = 20.0) -> int:
    """Poll VHOST_GET_VRING_BASE (last_avail_idx) until vhost fetched up to ``avail_idx``."""
    deadline = time.monotonic() + timeout
    while True:
        base = v.dev.get_vring_base(vh.VQ_IO)
        if base == avail_idx or time.monotonic() > deadline:
            return base
        time.sleep(0.01)


def submit_held(s: Suite, v: Vmm, case: Case, reqs: list[sc.Request], label: str) -> bool:
    """Hold the FUSE backstore's READs and submit ``reqs``; whether they are then all fetched
    by vhost and none completed. The target core submits one command at a time per CPU: one
    READ waits in the server, the others behind it. If not, the case fails saying how far
    they got. The caller releases the backstore (``s.fuse.release()``) in any case."""
    q = v.queues[vh.VQ_IO]
    s.fuse.hold()
    used_before = q.used_idx()
    sc.submit(v, reqs)
    held = s.fuse.wait_held(1)
    fetched = wait_fetched(v, q.avail_idx)
    if held and fetched == q.avail_idx and q.used_idx() == used_before:
        return True
    early = q.collect()
    for head, _ in early:
        r = next((r for r in reqs if r.head == head), None)
        if r is not None:
            sc.check_cmd(v.mem, r)
            case.diag(f"{r.name}: completed while it should be held "
                      f"({'; '.join(r.problems) or 'no problem'})")
    case.fail(f"{label}: {held} READs held in the backstore, vhost fetched up to {fetched} "
              f"of {q.avail_idx}, {len(early)} of {len(reqs)} already completed")
    return False


def phase_inflight_at_log_all(s: Suite, v: Vmm, case: Case, lba: int) -> None:
    """Logging is off on entry and on exit."""
    s.ready(v, FUSE_LUN)  # its first command on this nexus may get a UNIT ATTENTION
    m = v.mem
    q = v.queues[vh.VQ_IO]
    reqs = []
    for i in range(REQUESTS):
        a, b = m.alloc_pages(1), m.alloc_pages(2)
        reqs.append(sc.read10(m, f"in flight at LOG_ALL READ {i}", s.next_tag(), lba + 16 * i,
                              16, [(a, 108), (b, 8192)], lun=FUSE_LUN))
    v.set_used_log(False)
    v.log.clear()
    # the log base first, with nothing in flight: every vhost-scsi device ioctl (this one
    # too) flushes the requests in flight when it is done. A VMM's guest goes on submitting
    # between SET_LOG_BASE and SET_FEATURES; those requests are the ones this phase holds.
    v.dev.set_log_base(v.log.hva)
    try:
        if not submit_held(s, v, case, reqs, "in flight at LOG_ALL"):
            return
        releaser = Releaser(s, threading.get_native_id(), v.dev.fd)
        releaser.start()
        t0 = time.monotonic()
        v.dev.set_features(v.features | vh.bit(vh.VHOST_F_LOG_ALL))
        took = time.monotonic() - t0
        done_at_return = {head for head, _ in q.collect()}
        releaser.returned.set()
        releaser.join()
        v.logging = True
    finally:
        s.fuse.release()
    late = [r for r in reqs if r.head not in done_at_return]
    if releaser.while_blocked:
        how = f"the READs released once it had waited {BLOCKED_S} s for them"
    elif releaser.gave_up:
        how = f"the READs released after {GIVE_UP_S:.0f} s"
    else:
        how = "the READs released after it returned"
    case.diag(f"in flight at LOG_ALL: SET_FEATURES returned after {took:.2f} s, {how}; "
              f"{len(late)} of {len(reqs)} requests still in flight then")
    used = v.wait(vh.VQ_IO, count=len(late))  # count 0: the barrier alone
    heads = done_at_return | {u[0] for u in used}
    for r in reqs:
        if r.head not in heads:
            case.fail(f"{r.name}: not completed")
        sc.check_cmd(m, r)
    case.extend(sc.problems(reqs))
    case.compare_log("in flight at LOG_ALL, pages written after SET_FEATURES returned",
                     set().union(set(), *(r.write_pages for r in late)), v.log.take())
    v.stop_logging()
    v.log.clear()


def phase_task_set_full(s: Suite, case: Case, lba: int) -> None:
    """With every command tag held, one more request is refused with TASK SET FULL; with
    LOG_ALL on, its response page is logged when the refusal is written.

    A well-behaved driver cannot get past the tags (a ring of TAGS entries holds at most TAGS
    chains); this one re-points the ring descriptor of a held READ at a new chain and makes it
    available again, as only a buggy or hostile guest does. The used-ring log stays off, so
    the log then holds the refused request's response page and nothing else.
    """
    v = s.vmm(queue_sizes={**QUEUE_SIZES, vh.VQ_IO: TAGS})
    try:
        s.ready(v, FUSE_LUN)  # its first command on this nexus may get a UNIT ATTENTION
        m, q = v.mem, v.queues[vh.VQ_IO]
        reqs = [sc.read10(m, f"TASK SET FULL: held READ {i}", s.next_tag(), lba + 8 * i, 8,
                          [(m.alloc_pages(1), scsi.CMD_RESP.size), (m.alloc_pages(1), PAGE)],
                          indirect=True, lun=FUSE_LUN) for i in range(TAGS)]
        v.start_logging(used_log=False)
        try:
            if not submit_held(s, v, case, reqs, "TASK SET FULL"):
                return
            resp = m.alloc_pages(1)
            extra = sc.simple_cmd(m, "TASK SET FULL: a request beyond the tags", s.next_tag(),
                                  scsi.cdb_test_unit_ready(), [(resp, scsi.CMD_RESP.size)])
            v.log.clear()
            q.rewrite_indirect(reqs[0].head, extra.readable, extra.writable, m.alloc_pages(1))
            q.publish(reqs[0].head)
            v.kick(vh.VQ_IO)
            v.wait(vh.VQ_IO, count=1)
            answer = scsi.CmdResp.parse(extra.response_bytes(m))
            logged = v.log.take()
        finally:
            s.fuse.release()
        if answer.response != scsi.S_OK or answer.status != scsi.TASK_SET_FULL:
            case.fail(f"TASK SET FULL: the request beyond {TAGS} tags got {answer.describe()}")
        else:
            case.diag(f"TASK SET FULL: the request beyond {TAGS} tags was refused")
        case.compare_log("TASK SET FULL, the refused request's response", extra.write_pages,
                         logged)
        v.wait(vh.VQ_IO, count=TAGS)
        for r in reqs:
            sc.check_cmd(m, r)
        case.extend(sc.problems(reqs))
        case.compare_log("TASK SET FULL, the held READs once released",
                         set().union(*(r.write_pages for r in reqs)), v.log.take())
    finally:
        v.close()
