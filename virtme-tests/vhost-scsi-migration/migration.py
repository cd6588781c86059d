"""One live migration of an L2 guest whose disk is vhost-scsi, and the check of its memory.

Reads the L2 kernel ($KPIPE_L2_KERNEL, built by the host: pipeline/boot/l2kernel.py), Debian's
busybox and the suite's l2-init.sh. Writes into a work directory the disk's backing file, the
initramfs, both QEMUs' consoles and stderr, and returns a Result; whatever it started (two
QEMUs, the LIO configfs tree) is taken down on every path, and the result says whether any
QEMU was left running after that.

The sequence does not depend on timing:
 1. the source L2 boots and reads every block once (its page cache holds generation 1);
 2. the disk is rewritten with generation 2 (behind L2's back: L2 still caches generation 1);
 3. L2 starts rewriting 1 MiB of its memory in place, again and again (one dd a round, a
    second or two under TCG inside TCG). The migration starts at 4 MiB/s with a 1 ms downtime
    limit; the first pass sends the L2's RAM in address order, then QEMU's smaller RAM blocks
    (the firmware: SeaBIOS's 189 KB); 1 MiB before the L2's RAM is sent the cap drops to 256
    KiB/s, so the pass ends slowly and each later pass (at least that 1 MiB, 4 s) outlasts a
    round of L2's rewriting: no pass can end with nothing dirty, whatever the scheduling. Once
    query-migrate shows dirty-sync-count >= 2 (the first pass sent every page) the cap drops to
    a trickle (QEMU's limiter then passes about one page per 100 ms window), and the cue stops
    the rewriting;
 4. L2 is cued to drop its page cache and read every block again, buffered: the device
    (vhost-scsi) writes generation 2 into freed pages that the first pass sent already;
 5. after L2 says the reads are done, the cap and the downtime limit are raised; the dirty
    log is synced (dirty-sync-count grows) and the migration completes;
 6. the destination L2 compares what its page cache holds for each block with the disk read
    with O_DIRECT: a page the device wrote but the dirty log never named still holds what was
    sent in the first pass.
(A migration left at 1 MiB/s converges right after its first pass: the L2 of a TCG guest
inside a TCG guest dirties too little to hold it (a pass of a few pages is sent within one
100 ms window, while L2 may not run at all); QEMU 7.2 with a downtime limit of 0 never
syncs and completes as soon as the first pass ends; and reads cued while the first pass still
had 3/8 of RAM to send landed in pages it had not sent yet (the allocator hands out the
highest free pages first): 0 stale blocks on the unfixed base.)
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import disk as diskmod
import initramfs
from qemuvm import L2_MEMORY_MB, Vm, VmError, qemu_processes, sync_count

# The first pass's caps, in bytes/s: FAST for most of it (the L2's RAM is mostly zero pages,
# 9 bytes each), MID from its last MiB of the L2's RAM on: at MID a pass of the 1 MiB L2
# rewrites takes 4 s, longer than a round of the rewriting.
FAST_BANDWIDTH = 4 * 1024 * 1024
MID_BANDWIDTH = 256 * 1024
MID_BEFORE = 1024 * 1024  # bytes of the L2's RAM still to send when the cap drops to MID
TRICKLE_BANDWIDTH = 1000  # bytes/s: 100 bytes a window: one page each 100 ms
LOW_DOWNTIME_MS = 1
POLL = 0.05  # s between query-migrate calls while the first pass ends
HIGH_BANDWIDTH = 1024 * 1024 * 1024
FINAL_DOWNTIME_MS = 30000


@dataclass
class Faults:
    """What a fault test changes (the real path otherwise)."""

    device: str = "vhost-scsi-pci"  # a model QEMU does not know: QEMU never starts
    raise_cap: bool = True  # False: the migration can never complete
    init_text: str | None = None  # another /init (one that exits: L2 panics)


@dataclass
class Timeouts:
    """Seconds each wait may take: bounds for a hang, far above what each took on a loaded
    2-core TCG machine (L2 boot 40-165 s, first pass 9-15 s, reads 3-10 s, check 20-40 s, and
    a check past 120 s once at load 4), so that a slow machine is never a stale guest."""

    boot: float = 600.0
    first_pass: float = 300.0
    reads: float = 300.0
    completion: float = 300.0
    check: float = 600.0
    # the whole case, every wait above included: below suite.toml's program timeout, so the
    # case ends itself (QEMUs stopped, LIO removed) before the runner kills it
    case: float = 1500.0


@dataclass
class Result:
    status: str = "error"  # pass | fail | error
    message: str = ""
    log: list[str] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)
    blocks: int = 0
    left_running: list[int] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.log.append(text)


async def run(workdir: Path, l2_kernel: str, faults: Faults | None = None,
              timeouts: Timeouts | None = None) -> Result:
    """The whole case: set up, migrate, check, tear down, within `timeouts.case` seconds.
    Never raises: whatever goes wrong ends the case as an error with the reason."""
    faults, timeouts = faults or Faults(), timeouts or Timeouts()
    res = Result()
    disk = diskmod.MigrationDisk(workdir)
    res.blocks = disk.blocks
    vms: list[Vm] = []
    try:
        async with asyncio.timeout(timeouts.case):
            await _sequence(res, workdir, l2_kernel, disk, vms, faults, timeouts)
    except VmError as exc:
        res.status, res.message = "error", str(exc)
    except TimeoutError:  # the whole case's bound (an OSError: before the next clause)
        res.status, res.message = "error", f"the case took over {timeouts.case:.0f} s"
    except Exception as exc:  # noqa: BLE001 - configfs (OSError, LioError), a bug: reported
        res.status, res.message = "error", f"{type(exc).__name__}: {exc}"
    finally:
        for vm in vms:
            await vm.stop()
        problems = disk.remove() + disk.leftovers()
        res.left_running = qemu_processes()
        if problems:
            res.note(f"LIO teardown: {'; '.join(problems)}")
        if res.left_running:
            res.status = "error"
            res.message = "; ".join(filter(None, [res.message, f"QEMU left running: pids "
                                                  f"{res.left_running}"]))
        elif res.status == "error":
            res.message = f"{res.message}; no QEMU left running"
        res.note("teardown: both QEMUs killed and waited for, LIO configfs removed; "
                 f"qemu-system processes left: {len(res.left_running)}")
    return res


async def _sequence(res: Result, workdir: Path, l2_kernel: str, disk: diskmod.MigrationDisk,
                    vms: list[Vm], faults: Faults, timeouts: Timeouts) -> None:
    t0 = time.monotonic()
    disk.setup()
    cpio = workdir / "l2-initramfs.cpio"
    size = initramfs.build(cpio, faults.init_text)
    res.note(f"L2 initramfs: {size} bytes (busybox + /init); disk: {disk.blocks} blocks of "
             f"{diskmod.BLOCK} B, generation 1")
    extra = f"kpipe.blocks={disk.blocks} kpipe.target={diskmod.TPGT}"
    sock = workdir / "migration.sock"
    src = Vm("source", workdir, l2_kernel, cpio, diskmod.WWPNS[0], extra, device=faults.device)
    vms.append(src)
    await src.start()
    await src.wait_line(r"KPIPE-L2 READY", timeouts.boot, "L2 boot to ready")
    boot = time.monotonic() - src.started
    res.note(f"source L2 booted to ready in {boot:.1f} s (read every block once)")

    mark = len(src.lines)
    src.send("dirty")
    await src.wait_line(r"KPIPE-L2 DIRTYING", timeouts.reads, "L2's rewriting loop", mark)
    disk.write_generation(2)
    dst = Vm("destination", workdir, l2_kernel, cpio, diskmod.WWPNS[1], extra,
             incoming=f"unix:{sock}", device=faults.device)
    vms.append(dst)
    await dst.start()
    res.note(f"destination QEMU started (-incoming) in {time.monotonic() - dst.started:.1f} s")
    await src.execute("migrate-set-parameters", {"max-bandwidth": FAST_BANDWIDTH,
                                                 "downtime-limit": LOW_DOWNTIME_MS})
    await src.execute("migrate", {"uri": f"unix:{sock}"})
    t_mig = time.monotonic()
    # the bytes of RAM blocks after the L2's RAM (firmware, option ROMs: sent last)
    info = await src.wait_migration(lambda i: i.get("ram", {}).get("total", 0) > 0,
                                    timeouts.first_pass, "the migration's RAM total", POLL)
    tail = int(info["ram"]["total"]) - L2_MEMORY_MB * 1024 * 1024
    info = await src.wait_migration(lambda i: _first_pass_left(i, tail + MID_BEFORE),
                                    timeouts.first_pass, "first pass at the L2's last MiB", POLL)
    await src.execute("migrate-set-parameters", {"max-bandwidth": MID_BANDWIDTH})
    res.note(f"after {time.monotonic() - t_mig:.1f} s the first pass had "
             f"{info.get('ram', {}).get('remaining')} B left of {info.get('ram', {}).get('total')}"
             f" B (dirty-sync-count {sync_count(info)}): cap {MID_BANDWIDTH} B/s")
    info = await src.wait_migration(lambda i: sync_count(i) >= 2 or i.get("status") != "active",
                                    timeouts.first_pass,
                                    "end of the first pass (dirty-sync-count 2)", POLL)
    await src.execute("migrate-set-parameters", {"max-bandwidth": TRICKLE_BANDWIDTH})
    first_pass = time.monotonic() - t_mig
    info = await _still_active(src, res, f"migration started at {FAST_BANDWIDTH} B/s, downtime "
                               f"limit {LOW_DOWNTIME_MS} ms; first pass done after "
                               f"{first_pass:.1f} s: cap {TRICKLE_BANDWIDTH} B/s", "the cue")

    at_cue = sync_count(info)
    mark = len(src.lines)
    t_phase = time.monotonic()
    src.send("read")
    try:
        await src.wait_line(r"KPIPE-L2 READ-DONE", timeouts.reads, "L2's reads done", mark)
    except VmError as exc:
        try:
            info = await src.execute("query-migrate")
        except VmError:  # QEMU gone: the first error says why
            raise exc from None
        raise VmError(f"{exc} (migration {info.get('status')}, dirty-sync-count "
                      f"{sync_count(info)})") from exc
    info = await _still_active(src, res, "L2 dropped its page cache and read every block "
                               f"(generation 2) through it in {time.monotonic() - t_phase:.1f} s",
                               "the reads were done")
    after_reads = sync_count(info)
    if faults.raise_cap:
        await src.execute("migrate-set-parameters", {"max-bandwidth": HIGH_BANDWIDTH,
                                                     "downtime-limit": FINAL_DOWNTIME_MS})
    t_phase = time.monotonic()
    info = await src.wait_migration(lambda i: i.get("status") == "completed",
                                    timeouts.completion, "completion")
    at_end = sync_count(info)
    res.note(f"migration completed {time.monotonic() - t_phase:.1f} s after the cap was raised "
             f"({time.monotonic() - t_mig:.1f} s after it started): "
             f"dirty-sync-count {at_end} (at the cue {at_cue}, after "
             f"the reads {after_reads}), "
             f"total {info.get('total-time')} ms, downtime {info.get('downtime')} ms, "
             f"{info.get('ram', {}).get('transferred')} B transferred")
    if at_cue < 2 or at_end <= after_reads:
        raise VmError(f"dirty-sync-count {at_cue} at the cue, {at_end} at completion: the "
                      f"first pass was not over, or no sync followed the reads")

    try:
        status = await dst.execute("query-status")
    except VmError as exc:  # as below: the guest did not survive its migration
        res.status, res.message = "fail", f"the destination did not survive the migration: {exc}"
        return
    res.note(f"destination: {status}")
    mark = len(dst.lines)
    t_phase = time.monotonic()
    dst.send("check")
    try:
        m, end = await dst.wait_line(r"KPIPE-L2 CHECK-DONE stale=(\d+) of=(\d+)",
                                     timeouts.check, "L2's check on the destination", mark)
    except VmError as exc:
        # the migration completed and the destination L2 then died or hung: that is the
        # guest not surviving its migration (what stale memory does in the field), a fail
        seen = sum(len(line.split()) - 2 for line in dst.lines[mark:]
                   if line.startswith("KPIPE-L2 STALE "))
        try:
            status = await dst.execute("query-status")
        except VmError as qmp_exc:  # QEMU may be gone
            status = f"not answering QMP ({qmp_exc})"
        res.status = "fail"
        res.message = (f"the destination L2 did not survive the migration: {exc} ({seen} "
                       f"stale blocks reported by then; destination {status})")
        return
    res.stale = [int(b) for line in dst.lines[mark:end] if line.startswith("KPIPE-L2 STALE ")
                 for b in line.split()[2:]]
    n, of = int(m.group(1)), int(m.group(2))
    res.note(f"destination L2 compared its page cache with O_DIRECT reads in "
             f"{time.monotonic() - t_phase:.1f} s: {n} of {of} blocks differ; case "
             f"{time.monotonic() - t0:.1f} s")
    if len(res.stale) != n:
        raise VmError(f"the destination L2 counted {n} stale blocks but named {len(res.stale)}")
    if n:
        first = ", ".join(str(b) for b in res.stale[:8]) + (", ..." if n > 8 else "")
        res.status, res.message = "fail", f"{n} of {of} blocks stale after migration " \
                                          f"(first: {first})"
    else:
        res.status = "pass"
        res.message = (f"0 of {of} blocks stale; dirty-sync-count {at_cue} at the cue, "
                       f"{at_end} at completion")


async def _still_active(src: Vm, res: Result, what: str, before: str) -> dict:
    """query-migrate, noted after `what`; VmError unless the migration is still active."""
    info = await src.execute("query-migrate")
    assert isinstance(info, dict)
    res.note(f"{what}; status {info.get('status')}, dirty-sync-count {sync_count(info)}, "
             f"{info.get('ram', {}).get('remaining')} B of the pass left")
    if info.get("status") != "active":
        raise VmError(f"the migration was {info.get('status')} before {before}: the sequence "
                      f"cannot tell")
    return info


def _first_pass_left(info: dict, left: int) -> bool:
    """The first pass has at most `left` bytes to send (or is over: the caller says so)."""
    ram = info.get("ram", {})
    return info.get("status") != "setup" and (
        sync_count(info) > 1 or info.get("status") != "active"
        or int(ram.get("remaining", left + 1)) <= left)


def main_async(workdir: Path, l2_kernel: str, **kw: object) -> Result:
    return asyncio.run(run(workdir, l2_kernel, **kw))  # type: ignore[arg-type]
