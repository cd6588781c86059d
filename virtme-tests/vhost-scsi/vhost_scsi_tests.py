#!/usr/bin/env python3
"""vhost-scsi dirty-log tests: a tiny user-space VMM against an LIO fileio target.

Runs as root inside the virtme-ng guest (host's Python, stdlib only) and prints
KTAP version 1. Give case names as arguments to run a subset.

Every case uses its own /dev/vhost-scsi device and guest memory; the LIO target
and its backing files are set up once and removed whatever happens.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scsi  # noqa: E402
import scsicmd as sc  # noqa: E402
import vhost as vh  # noqa: E402
from dirtylog import fmt_pages, pages_of  # noqa: E402
from guestmem import PAGE  # noqa: E402
from kmsg import KmsgWatch  # noqa: E402
from ktap import KtapWriter  # noqa: E402
from lio import LioError, LioTarget, make_backing_file, mount  # noqa: E402
from virtq import DESC_SIZE  # noqa: E402
from vmm import Vmm  # noqa: E402

WWPN = "naa.5001405000000001"
DISK_BLOCKS = 32768                       # 16 MiB backing file, pattern per LBA
DISK1_BLOCKS = 2048                       # 1 MiB, only hot-plugged by event-log
WRITE_LBA = 32000                         # WRITE round trips stay above this LBA
TMPDIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else "/tmp"

CASES = ["io-bitmap", "migration", "ctrl-log", "event-log", "bad-target-split",
         "limit-refused", "limit-logged", "log-toggle"]


class Case:
    """Problems and diagnostics of one case (diagnostics print before the result)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.diags: list[str] = []

    def fail(self, problem: str) -> None:
        self.problems.append(problem)

    def diag(self, text: str) -> None:
        self.diags.append(text)

    def extend(self, problems: Iterable[str]) -> None:
        for p in problems:
            self.fail(p)

    def compare_log(self, label: str, expected: set[int], logged: set[int]) -> None:
        """Exact bitmap check; names the GPAs on both sides."""
        missing, extra = expected - logged, logged - expected
        if missing:
            self.diag(f"{label}: GPAs expected and not logged: {fmt_pages(missing)}")
        if extra:
            self.diag(f"{label}: GPAs logged and not expected: {fmt_pages(extra)}")
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"{len(missing)} of {len(expected)} expected pages not logged "
                             f"({fmt_pages(missing, 4)})")
            if extra:
                parts.append(f"{len(extra)} pages logged and not expected "
                             f"({fmt_pages(extra, 4)})")
            self.fail(f"{label}: " + ", ".join(parts))
        else:
            self.diag(f"{label}: log exact ({len(expected)} pages)")


class Suite:
    def __init__(self) -> None:
        self.lio = LioTarget(WWPN)
        self.tag = 0

    def next_tag(self) -> int:
        self.tag += 1
        return self.tag

    # --- target -----------------------------------------------------------
    def setup_target(self) -> None:
        disk0 = f"{TMPDIR}/kpipe-vhost-scsi-disk0.img"
        disk1 = f"{TMPDIR}/kpipe-vhost-scsi-disk1.img"
        self.lio.files = {"disk0": disk0, "disk1": disk1}  # removed even if setup fails
        make_backing_file(disk0, DISK_BLOCKS, scsi.pattern)
        make_backing_file(disk1, DISK1_BLOCKS, scsi.pattern)
        self.lio.setup([("disk0", disk0, DISK_BLOCKS * scsi.BLOCK),
                        ("disk1", disk1, DISK1_BLOCKS * scsi.BLOCK)],
                       [(0, "disk0")])
        # Warm-up: one SET_ENDPOINT/CLEAR_ENDPOINT before the test plan. On a
        # lockdep kernel the first SET_ENDPOINT after a LUN link reports a
        # pre-existing lock-order inversion (tv_tpg_mutex -> configfs inode
        # lock in target_depend_item vs. the reverse in vhost_scsi_port_link),
        # which has nothing to do with dirty logging; do it outside every case.
        Vmm(WWPN).close()

    def teardown_target(self) -> None:
        self.lio.remove()

    # --- devices ----------------------------------------------------------
    def vmm(self, hotplug: bool = False) -> Vmm:
        v = Vmm(WWPN, hotplug=hotplug)
        self.ready(v)
        return v

    def ready(self, v: Vmm) -> None:
        """TEST UNIT READY until it passes (UNIT ATTENTION is retried)."""
        last = ""
        for _ in range(5):
            resp = v.mem.alloc_pages(1)
            r = sc.simple_cmd(v.mem, "TEST UNIT READY", self.next_tag(),
                              scsi.cdb_test_unit_ready(), [(resp, scsi.CMD_RESP.size)])
            sc.run(v, [r])
            if not r.problems:
                return
            last = r.problems[0]
        raise RuntimeError(f"device not ready: {last}")


# --- I/O request sets ----------------------------------------------------

def io_round(s: Suite, v: Vmm, label: str, lba: int) -> tuple[list[sc.Request], bytes]:
    """The io-bitmap request mix; returns the requests and the expected log."""
    m = v.mem
    reqs: list[sc.Request] = []
    # data-in over three write descriptors on three pages, response on a fourth
    a, b, c, d = (m.alloc_pages(1) for _ in range(4))
    reqs.append(sc.read10(m, f"{label} READ split over 3 descriptors", s.next_tag(), lba, 8,
                          [(a, 108), (b, 1024), (c + 512, 2048), (d + 3072, 1024)]))
    # response alone on its own page, 16 KiB of data in one descriptor
    e, f = m.alloc_pages(1), m.alloc_pages(4)
    reqs.append(sc.read10(m, f"{label} READ response on its own page", s.next_tag(),
                          lba + 8, 32, [(e, 108), (f, 16384)]))
    # chain in an indirect table: response at the end of one page, data the next page
    g = m.alloc_pages(2)
    reqs.append(sc.read10(m, f"{label} READ in an indirect table", s.next_tag(), lba + 40, 8,
                          [(g + PAGE - 108, 108 + 4096)], indirect=True))
    # response + 64 KiB of data in a single descriptor
    h = m.alloc_pages(17)
    reqs.append(sc.read10(m, f"{label} READ 64 KiB one descriptor", s.next_tag(), lba + 48,
                          128, [(h, 108 + 65536)]))
    # INQUIRY: response + 96 bytes in the middle of a page
    j = m.alloc_pages(1)
    reqs.append(sc.simple_cmd(m, f"{label} INQUIRY", s.next_tag(), scsi.cdb_inquiry(96),
                              [(j + 2000, 108 + 96)], data_in=96))
    # WRITE(10): data-out is device-readable (must not be logged), response page is
    k = m.alloc_pages(1)
    wlba = WRITE_LBA + (lba % 64) * 8
    wdata = scsi.write_pattern(wlba, 8)
    reqs.append(sc.write10(m, f"{label} WRITE", s.next_tag(), wlba, wdata, (k, 108)))
    # a bad target on the I/O queue: response page logged right after it is sent
    p = m.alloc_pages(1)
    reqs.append(sc.simple_cmd(m, f"{label} bad target", s.next_tag(),
                              scsi.cdb_read10(lba, 1), [(p + 40, 108)], tpgt=9,
                              expect_response=scsi.S_BAD_TARGET))
    return reqs, wdata


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


def case_io_bitmap(s: Suite, case: Case) -> None:
    v = s.vmm()
    try:
        v.start_logging(used_log=True)
        run_io_bitmap_round(s, v, case, used_log=True, lba=100)
        run_io_bitmap_round(s, v, case, used_log=False, lba=1000)
    finally:
        v.close()


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


def case_ctrl_log(s: Suite, case: Case) -> None:
    v = s.vmm()
    try:
        m = v.mem
        v.start_logging(used_log=True)
        specs = [  # name, request, response size, expected response, offset in page
            ("TMF logical unit reset", scsi.tmf_req(scsi.TMF_LOGICAL_UNIT_RESET, s.next_tag()),
             1, scsi.S_FUNCTION_SUCCEEDED, 100),
            ("AN query", scsi.an_req(scsi.T_AN_QUERY), scsi.AN_RESP.size, scsi.S_OK, 0),
            ("TMF bad target", scsi.tmf_req(scsi.TMF_LOGICAL_UNIT_RESET, s.next_tag(), tpgt=9),
             1, scsi.S_BAD_TARGET, 4000),
            ("TMF abort task (rejected)", scsi.tmf_req(scsi.TMF_ABORT_TASK, s.next_tag()),
             1, scsi.S_FUNCTION_REJECTED, 2048),
        ]
        reqs = []
        for name, req, size, want, off in specs:
            hdr = sc.header_page(m, req)
            page = m.alloc_pages(1)
            sc.poison(m, [(page + off, size)])
            reqs.append(sc.Request(name, vh.VQ_CTRL, [(hdr, len(req))], [(page + off, size)],
                                   resp_size=size, expect_response=want))
        v.log.clear()
        sc.run(v, reqs)
        case.extend(sc.problems(reqs))
        for r in reqs:
            raw = r.response_bytes(m)
            got = raw[-1]  # TMF: 1 byte response; AN: event_actual u32 then response
            if got != r.expect_response:
                case.fail(f"{r.name}: response {scsi.RESPONSE_NAMES.get(got, got)}, expected "
                          f"{scsi.RESPONSE_NAMES[r.expect_response]}")
        expected = set().union(*(r.write_pages for r in reqs)) | v.used_log_pages([vh.VQ_CTRL])
        case.compare_log("control queue", expected, v.log.take())
        # the LUN still reads after the reset (TEST UNIT READY clears the UNIT ATTENTION)
        s.ready(v)
        page = m.alloc_pages(2)
        after = sc.read10(m, "READ after LUN reset", s.next_tag(), 2000, 8, [(page, 108 + 4096)])
        sc.run(v, [after])
        case.extend(after.problems)
    finally:
        v.close()


def case_event_log(s: Suite, case: Case) -> None:
    v = s.vmm(hotplug=True)
    lun1 = False
    try:
        m = v.mem
        v.start_logging(used_log=True)
        heads: dict[int, tuple[int, int]] = {}
        for k in range(3):  # three 16-byte event buffers, each on its own page
            page = m.alloc_pages(1)
            buf = (page + 512 * (k + 1), scsi.EVENT.size)
            sc.poison(m, [buf])
            heads[v.submit(vh.VQ_EVENT, [], [buf], kick=False)] = buf
        v.quiesce()
        v.log.clear()

        def expect_event(label: str, want_event: int, want_reason: int | None) -> None:
            used = v.wait(vh.VQ_EVENT, count=1)
            buf = heads.get(used[0][0])
            if buf is None:
                case.fail(f"{label}: unknown head {used[0][0]} used")
                return
            event, lun, reason = scsi.parse_event(m.read(*buf))
            if event != want_event or (want_reason is not None and reason != want_reason):
                case.fail(f"{label}: event {event:#x} reason {reason}, expected "
                          f"{want_event:#x} reason {want_reason}")
            expected = pages_of([buf]) | v.used_log_pages([vh.VQ_EVENT])
            case.compare_log(label, expected, v.log.take())

        v.dev.set_events_missed(1)
        v.kick(vh.VQ_EVENT)
        expect_event("events-missed event", scsi.T_NO_EVENT | scsi.T_EVENTS_MISSED, None)
        if not v.has_hotplug:
            case.diag("VIRTIO_SCSI_F_HOTPLUG not offered: no hotplug events")
            return
        s.lio.add_lun(1, "disk1")
        lun1 = True
        expect_event("LUN 1 hotplug event", scsi.T_TRANSPORT_RESET, scsi.EVT_RESET_RESCAN)
        s.lio.remove_lun(1)
        lun1 = False
        expect_event("LUN 1 hot-unplug event", scsi.T_TRANSPORT_RESET, scsi.EVT_RESET_REMOVED)
    finally:
        v.close()
        if lun1:
            s.lio.remove_lun(1)


def case_bad_target_split(s: Suite, case: Case) -> None:
    v = s.vmm()
    try:
        m = v.mem
        page = m.alloc_pages(1)
        m.fill(page, PAGE, sc.POISON)
        first, second = (page, 4), (page + 64, 104)
        r = sc.simple_cmd(m, "bad target, response split 4 + 104", s.next_tag(),
                          scsi.cdb_read10(0, 1), [first, second], tpgt=7,
                          expect_response=scsi.S_BAD_TARGET)
        sc.run(v, [r])
        case.extend(r.problems)
        canary = m.read(page + 4, 60)
        if canary != bytes([sc.POISON]) * 60:
            case.fail("canary between the two response buffers overwritten: "
                      + canary.hex())
        tail = m.read(page + 168, PAGE - 168)
        if tail != bytes([sc.POISON]) * len(tail):
            case.fail("bytes after the second response buffer overwritten")
        second_raw = m.read(*second)
        if second_raw[7] != scsi.S_BAD_TARGET:
            case.fail(f"response byte in the second buffer is {second_raw[7]}, expected 3")
        if m.read(*first) != bytes(4):
            case.fail(f"sense_len in the first buffer is {m.read(*first).hex()}, expected 0")
        case.diag(f"second buffer: {second_raw[:8].hex()}...")
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


KMEMLEAK = "/sys/kernel/debug/kmemleak"


def kmemleak_available() -> bool:
    if not os.path.ismount("/sys/kernel/debug"):
        mount("debugfs", "/sys/kernel/debug")
    return os.path.exists(KMEMLEAK)


def kmemleak_vhost_leaks() -> list[str]:
    """Scan, then return the leak reports whose backtrace is in vhost.

    Never writes "clear": that would hide earlier leaks from the runner's own
    final kmemleak scan. Leaks elsewhere are left to the runner to attribute.
    """
    with open(KMEMLEAK, "w") as f:
        f.write("scan")
    with open(KMEMLEAK) as f:
        text = f.read()
    reports = ["unreferenced object" + r for r in text.split("unreferenced object")[1:]]
    return [r.strip() for r in reports if "vhost" in r]


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


CASE_FUNCS: dict[str, Callable[[Suite, Case], None]] = {
    "io-bitmap": case_io_bitmap,
    "migration": case_migration,
    "ctrl-log": case_ctrl_log,
    "event-log": case_event_log,
    "bad-target-split": case_bad_target_split,
    "limit-refused": case_limit_refused,
    "limit-logged": case_limit_logged,
    "log-toggle": case_log_toggle,
}


def prerequisite() -> str | None:
    """Why the suite cannot run here, or None."""
    if os.geteuid() != 0:
        return "must run as root"
    if not os.path.exists("/dev/vhost-scsi"):
        return "/dev/vhost-scsi missing (CONFIG_VHOST_SCSI)"
    return None


def run_case(s: Suite, name: str, out: KtapWriter) -> bool:
    case = Case()
    watch = KmsgWatch()
    t0 = time.monotonic()
    try:
        CASE_FUNCS[name](s, case)
    except Exception as exc:  # noqa: BLE001 - a case failing must not stop the suite
        case.fail(f"{type(exc).__name__}: {exc}")
    case.diag(f"{name}: {time.monotonic() - t0:.2f} s")
    for line in watch.splats():
        case.fail(f"kernel log: {line}")
    watch.close()
    for d in case.diags:
        out.diag(d)
    if case.problems:
        for p in case.problems[1:]:
            out.diag(p)
        more = f" (+{len(case.problems) - 1} more)" if len(case.problems) > 1 else ""
        out.not_ok(name, case.problems[0] + more)
        return False
    out.ok(name)
    return True


def main(argv: list[str]) -> int:
    names = argv or CASES
    unknown = [n for n in names if n not in CASE_FUNCS]
    if unknown:
        print(f"unknown case(s): {' '.join(unknown)}; known: {' '.join(CASES)}",
              file=sys.stderr)
        return 2
    t0 = time.monotonic()
    out = KtapWriter()
    suite = Suite()
    why = prerequisite()
    if why is None:
        atexit.register(suite.teardown_target)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            suite.setup_target()
        except LioError as exc:      # the kernel lacks the target core: a prerequisite
            why = str(exc)
        except OSError as exc:       # the target is there and refused: a failure
            out.header(len(names))
            out.diag(f"LIO target setup failed: {exc}")
            for n in names:
                out.not_ok(n, f"LIO target setup failed: {exc}")
            return 1
    try:
        with open("/proc/uptime") as f:
            start = float(f.read().split()[0]) - (time.monotonic() - t0)
        uptime = f"started at uptime {start:.1f} s, "
    except (OSError, ValueError):
        uptime = ""
    print(f"{uptime}setup took {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    out.header(len(names))
    if why is not None:
        for n in names:
            out.skip(n, why)
        return 0
    failed = 0
    try:
        for n in names:
            failed += not run_case(suite, n, out)
    finally:
        suite.teardown_target()
        if suite.lio.errors:
            print("# teardown: " + "; ".join(suite.lio.errors), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
