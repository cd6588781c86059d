"""vhost-scsi cases of the I/O queue: io-bitmap, migration, limit-refused, limit-logged,
log-toggle. Each takes the Suite and a Case and records problems in the Case."""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scsi  # noqa: E402
import scsicmd as sc  # noqa: E402
import vhost as vh  # noqa: E402
from dirtylog import fmt_pages  # noqa: E402
from guestmem import PAGE  # noqa: E402
from harness import WRITE_LBA, Case, Suite, io_round, kmemleak_available, kmemleak_vhost_leaks  # noqa: E402
from inflight import phase_inflight_at_log_all, phase_task_set_full  # noqa: E402
from virtq import DESC_SIZE  # noqa: E402
from vmm import Vmm  # noqa: E402


def run_io_bitmap_round(s: Suite, v: Vmm, case: Case, used_log: bool, lba: int) -> None:
    label = "used-ring log on" if used_log else "used-ring log off"
    v.set_used_log(used_log)
    reqs, wdata = io_round(s, v, label, lba)
    v.log.clear()
    sc.run(v, reqs)
    # WRITE then READ back, split over two descriptors, in an indirect table
    wlba = WRITE_LBA + (lba % 64) * 8
    m = v.mem
    r0, r1, r2 = m.alloc_pages(1), m.alloc_pages(1), m.alloc_pages(1)
    back = sc.read10(m, f"{label} READ back the WRITE", s.next_tag(), wlba, 8,
                     [(r0, 108), (r1, 2048), (r2 + 1024, 2048)], indirect=True)
    back.expect = wdata
    sc.run(v, [back])
    reqs.append(back)
    case.extend(sc.problems(reqs))
    expected = set().union(*(r.write_pages for r in reqs)) | v.used_log_pages([vh.VQ_IO])
    case.compare_log(label, expected, v.log.take())
    readable = set().union(*(r.read_pages for r in reqs))
    if readable & expected:
        case.diag(f"{label}: (device-readable pages share a page with writable ones)")


def log_eventfd_round(s: Suite, v: Vmm, case: Case, lba: int) -> None:
    """The log eventfd (VHOST_SET_LOG_FD) fires when the device logs descriptors, and not
    while logging is off.

    The used-ring log signals the same eventfd (vhost_add_used_n() does when
    VHOST_VRING_F_LOG is on), so this round runs with VHOST_VRING_F_LOG off on every vq:
    a signal can then only come from logging the requests' write descriptors.
    """
    m = v.mem

    def reads(label: str) -> list[sc.Request]:
        a, b = m.alloc_pages(1), m.alloc_pages(2)
        c = m.alloc_pages(3)
        return [sc.read10(m, f"{label} READ", s.next_tag(), lba, 16, [(a, 108), (b, 8192)]),
                sc.read10(m, f"{label} READ one descriptor", s.next_tag(), lba + 16, 16,
                          [(c + 200, 108 + 8192)])]

    v.set_log_eventfd()
    v.set_used_log(False)
    v.log_signals()
    v.log.clear()
    reqs = reads("log eventfd, logging on")
    sc.run(v, reqs)
    case.extend(sc.problems(reqs))
    fired, logged = v.log_signals(), v.log.take()
    if not fired:
        case.fail(f"log eventfd: not signalled after {len(reqs)} READs with LOG_ALL on and "
                  f"the used-ring log off ({len(logged)} pages logged)")
    else:
        case.diag(f"log eventfd: signalled ({fired}) for {len(logged)} logged pages")
    v.stop_logging()
    v.log_signals()
    reqs = reads("log eventfd, logging off")
    sc.run(v, reqs)
    case.extend(sc.problems(reqs))
    fired = v.log_signals()
    if fired:
        case.fail(f"log eventfd: signalled {fired} times with logging off")
    else:
        case.diag("log eventfd: silent with logging off")


def case_io_bitmap(s: Suite, case: Case) -> None:
    v = s.vmm()
    try:
        v.start_logging(used_log=True)
        run_io_bitmap_round(s, v, case, used_log=True, lba=100)
        run_io_bitmap_round(s, v, case, used_log=False, lba=1000)
        log_eventfd_round(s, v, case, lba=1500)
    finally:
        v.close()
    phase_task_set_full(s, case, lba=1700)


def case_migration(s: Suite, case: Case) -> None:
    """Pre-copy migration: iterate vhost log + harness writes, stop and copy, compare."""
    v = s.vmm()
    try:
        m = v.mem
        npages = m.size // PAGE
        # the pages the device will write, allocated and poisoned up front
        plans = []
        for it in range(2):
            a, b, c = m.alloc_pages(1), m.alloc_pages(3), m.alloc_pages(3)
            plans.append([(1200 + 100 * it, 16, [(a, 108), (b, 4096), (b + PAGE + 100, 2048),
                                                 (b + 2 * PAGE, 2048)]),
                          (1300 + 100 * it, 16, [(c + 1000, 108 + 8192)])])
            sc.poison(m, [(a, PAGE), (b, 3 * PAGE), (c, 3 * PAGE)])
        v.start_logging(used_log=True)
        m.take_written()
        dest = bytearray(m.snapshot())        # iteration 0: copy everything
        device_pages: set[int] = set()
        reqs_all: list[sc.Request] = []

        def sync(label: str) -> int:
            dirty = v.log.take() | m.take_written()
            for p in dirty:
                dest[p * PAGE:(p + 1) * PAGE] = m.buf[p * PAGE:(p + 1) * PAGE]
            case.diag(f"{label}: {len(dirty)} dirty pages copied")
            return len(dirty)

        for it, plan in enumerate(plans, start=1):
            # no poisoning here: a harness write would mark the page dirty itself
            reqs = [sc.read10(m, f"iteration {it} READ lba {lba}", s.next_tag(), lba, n, w,
                              poison_data=False) for lba, n, w in plan]
            sc.run(v, reqs)
            reqs_all += reqs
            device_pages |= set().union(*(r.write_pages for r in reqs))
            sync(f"iteration {it}")
        sync("iteration 3 (idle)")
        v.clear_endpoint()                    # stop: flushes everything in flight
        sync("stop-and-copy")
        case.extend(sc.problems(reqs_all))
        src = m.snapshot()
        differ = [p for p in range(npages)
                  if src[p * PAGE:(p + 1) * PAGE] != dest[p * PAGE:(p + 1) * PAGE]]
        if differ:
            case.diag(f"pages that differ after migration: {fmt_pages(differ)}")
            written = set(differ) & device_pages
            case.diag(f"of those, written by the device: {len(written)}")
            case.fail(f"{len(differ)} of {npages} pages differ after migration "
                      f"(first: {fmt_pages(differ, 4)})")
        else:
            case.diag(f"all {npages} pages identical after migration")
    finally:
        v.close()


def case_limit_refused(s: Suite, case: Case) -> None:
    variants = [("header + 1024 write descriptors (1025 iovecs)", True, 1024),
                ("1025 write-only descriptors", False, 1025)]
    for label, with_header, count in variants:
        v = s.vmm()
        try:
            m = v.mem
            v.start_logging(used_log=True)
            table = m.alloc_pages(-(-(count + 1) * DESC_SIZE // PAGE))
            readable = []
            if with_header:
                req = scsi.cmd_req(scsi.cdb_read10(0, 8), s.next_tag())
                readable = [(sc.header_page(m, req), scsi.CMD_REQ.size)]
            page = m.alloc_pages(1)
            q = v.queues[vh.VQ_IO]
            before_used = q.used_idx()
            before_base = v.dev.get_vring_base(vh.VQ_IO)
            v.errors(vh.VQ_IO)
            v.submit(vh.VQ_IO, readable, [(page, PAGE)] * count, indirect=table)
            errs, deadline = 0, time.monotonic() + 10
            while not errs and time.monotonic() < deadline:
                time.sleep(0.05)
                errs = v.errors(vh.VQ_IO)
            v.quiesce()
            base = v.dev.get_vring_base(vh.VQ_IO)
            used = q.used_idx()
            case.diag(f"{label}: err eventfd {errs}, used idx {before_used}->{used}, "
                      f"last_avail_idx {before_base}->{base}")
            if used != before_used:
                case.fail(f"{label}: the over-limit chain was answered (used idx {used})")
            if base != before_base:
                case.fail(f"{label}: the over-limit chain was consumed "
                          f"(last_avail_idx {before_base}->{base})")
            if not errs:
                case.fail(f"{label}: no vq error signalled")
            v.clear_endpoint()
        finally:
            v.close()
    v = s.vmm()  # a fresh device still works
    try:
        page = v.mem.alloc_pages(2)
        r = sc.read10(v.mem, "READ on a fresh device", s.next_tag(), 3000, 8,
                      [(page, 108 + 4096)])
        sc.run(v, [r])
        case.extend(r.problems)
    finally:
        v.close()


def case_limit_logged(s: Suite, case: Case) -> None:
    v = s.vmm()
    try:
        m = v.mem
        v.start_logging(used_log=True)
        # (a) header + 1023 one-page write descriptors (1024 iovecs, the limit): the
        # response alone in the first, 1022 full pages of data. Data must stay
        # 512-byte aligned: vhost WARNs about misaligned I/O over 256 segments.
        blocks = 1022 * PAGE // scsi.BLOCK
        resp = m.alloc_pages(1)
        data = m.alloc_pages(1022)
        writable = [(resp, scsi.CMD_RESP.size)] + [(data + i * PAGE, PAGE) for i in range(1022)]
        r = sc.read10(m, "READ into 1023 one-page descriptors", s.next_tag(), 4000, blocks,
                      writable)
        r.indirect = m.alloc_pages(-(-1024 * DESC_SIZE // PAGE))
        v.log.clear()
        sc.run(v, [r], timeout=90)
        case.extend(r.problems)
        case.compare_log("1023 write descriptors + header",
                         r.write_pages | v.used_log_pages([vh.VQ_IO]), v.log.take())
        # (b) a write-only chain of 1024 descriptors: BAD_TARGET, all pages logged
        pages = m.alloc_pages(1024)
        writable = [(pages + i * PAGE, PAGE) for i in range(1024)]
        sc.poison(m, writable)
        b = sc.Request("write-only chain of 1024 descriptors", vh.VQ_IO, [], writable,
                       expect_response=scsi.S_BAD_TARGET,
                       indirect=m.alloc_pages(-(-1024 * DESC_SIZE // PAGE)))
        sc.run(v, [b], timeout=90)
        case.extend(b.problems)
        case.compare_log("1024-descriptor write-only chain",
                         b.write_pages | v.used_log_pages([vh.VQ_IO]), v.log.take())
    finally:
        v.close()


def case_log_toggle(s: Suite, case: Case) -> None:
    v = s.vmm()
    try:
        m = v.mem
        lba = 5000

        def batch(label: str, n: int = 6) -> list[sc.Request]:
            nonlocal lba
            out = []
            for _ in range(n):
                a, b = m.alloc_pages(1), m.alloc_pages(2)
                out.append(sc.read10(m, f"{label} READ", s.next_tag(), lba, 16,
                                     [(a, 108), (b, 8192)]))
                lba += 16
            return out

        for rnd in range(1, 4):
            v.start_logging(used_log=True)
            reqs = batch(f"round {rnd} logging on")
            sc.run(v, reqs)
            case.extend(sc.problems(reqs))
            case.compare_log(f"round {rnd} logging on",
                             set().union(*(r.write_pages for r in reqs))
                             | v.used_log_pages([vh.VQ_IO]), v.log.take())
            v.stop_logging()
            v.log.clear()
            reqs = batch(f"round {rnd} logging off")
            sc.run(v, reqs)
            case.extend(sc.problems(reqs))
            case.compare_log(f"round {rnd} logging off", set(), v.log.take())
            # toggle while requests are in flight: only completion and data are checked
            reqs = batch(f"round {rnd} toggling", 8)
            sc.submit(v, reqs)
            v.start_logging(used_log=True)
            v.set_used_log(False)
            v.stop_logging()
            v.start_logging(used_log=False)
            v.stop_logging()
            used = v.wait(vh.VQ_IO, count=len(reqs))
            heads = {u[0] for u in used}
            for r in reqs:
                if r.head not in heads:
                    case.fail(f"{r.name}: not completed")
                sc.check_cmd(m, r)
            case.extend(sc.problems(reqs))
            v.log.clear()
        phase_inflight_at_log_all(s, v, case, lba=0)
        v.clear_endpoint()
    finally:
        v.close()
    if not kmemleak_available():
        case.diag("kmemleak not available in this kernel")
        return
    time.sleep(6)  # kmemleak reports nothing younger than 5 s
    leaks = kmemleak_vhost_leaks()
    if leaks:
        for report in leaks[:3]:
            case.diag(report[:1500])
        case.fail(f"kmemleak: {len(leaks)} unreferenced objects allocated in vhost "
                  f"({leaks[0].splitlines()[0]})")
    else:
        case.diag("kmemleak: no leak from vhost")
