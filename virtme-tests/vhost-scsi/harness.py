"""The vhost-scsi suite's shared parts: one case's problems (Case), the LIO target and device
set-up every case uses (Suite), one round of I/O-queue READs (io_round), kmemleak helpers.

Reads /sys/kernel/config (through lio), /dev/vhost-scsi (through vmm) and kmemleak's debugfs
file; writes the target's backing files under /dev/shm (or /tmp) and removes them in teardown;
serves LUN 2's backing file from the suite's own FUSE mount there (fusedisk.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scsi  # noqa: E402
import scsicmd as sc  # noqa: E402
from dirtylog import fmt_pages  # noqa: E402
from fusedisk import FuseDisk  # noqa: E402
from guestmem import PAGE  # noqa: E402
from lio import LioTarget, make_backing_file, mount  # noqa: E402
from vmm import Vmm  # noqa: E402

WWPN = "naa.5001405000000001"
DISK_BLOCKS = 32768                       # 16 MiB backing file, pattern per LBA
DISK1_BLOCKS = 2048                       # 1 MiB, only hot-plugged by event-log
WRITE_LBA = 32000                         # WRITE round trips stay above this LBA
FUSE_BLOCKS = 2048                        # 1 MiB on the suite's FUSE file (fusedisk.py)
FUSE_LUN = 2                              # its LUN: READs the case holds and releases
TMPDIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else "/tmp"


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
        self.fuse = FuseDisk(f"{TMPDIR}/kpipe-fusedisk", FUSE_BLOCKS)
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
        self.fuse.start()
        self.lio.setup([("disk0", disk0, DISK_BLOCKS * scsi.BLOCK),
                        ("disk1", disk1, DISK1_BLOCKS * scsi.BLOCK),
                        ("disk2", self.fuse.path, FUSE_BLOCKS * scsi.BLOCK)],
                       [(0, "disk0"), (FUSE_LUN, "disk2")])
        self.lio.files.pop("disk2", None)  # served by fusedisk, not a file to delete
        # Warm-up: one SET_ENDPOINT/CLEAR_ENDPOINT before the test plan, so that
        # whatever the first endpoint of a boot reports falls outside every case.
        # (6.12's tv_tpg_mutex/configfs inversion is not provoked: lio.py makes its
        # configfs changes with lockdep's checking off, so lockdep stays on.)
        Vmm(WWPN).close()

    def teardown_target(self) -> None:
        self.fuse.release()  # a held READ would keep the backstore from going away
        self.lio.remove()
        self.fuse.stop()

    # --- devices ----------------------------------------------------------
    def vmm(self, hotplug: bool = False, queue_sizes: dict[int, int] | None = None) -> Vmm:
        v = Vmm(WWPN, hotplug=hotplug, queue_sizes=queue_sizes)
        self.ready(v)
        return v

    def ready(self, v: Vmm, lun: int = 0) -> None:
        """TEST UNIT READY until it passes (UNIT ATTENTION is retried)."""
        last = ""
        for _ in range(5):
            resp = v.mem.alloc_pages(1)
            r = sc.simple_cmd(v.mem, "TEST UNIT READY", self.next_tag(),
                              scsi.cdb_test_unit_ready(), [(resp, scsi.CMD_RESP.size)],
                              lun=lun)
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
