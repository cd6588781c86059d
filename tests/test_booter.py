"""The boot worker (pipeline/run/booter.py) when a boot fails in its thread: the error reaches
the main thread, which alone writes the record, and the step's boot is left `not-run` and
`interrupted` with the reason. The fault (a full disk in the middle of a boot) is injected:
a real boot cannot be made to hit it on demand. Booting itself, overlap with a build and
Ctrl-C are tested end to end on a real kernel (tests/test_e2e_run.py)."""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path

import pytest

from pipeline.boot import vng
from pipeline.options import RunOptions
from pipeline.progress import Progress
from pipeline.record import store as record
from pipeline.run import boot_steps, step_ops
from pipeline.run.booter import Booter


def _record_with_one_built_step(run_dir: Path) -> tuple[dict, dict]:
    rec = record.new_record("20261203-120000-abcd", ["kpipe", "run"])
    rec["series"] = {"subject": "s", "revision": 1, "msgid": "m@x", "link": "", "author": "a",
                     "cover": "", "patches": [], "warnings": []}
    step = step_ops.new_step(0, "default", {"commit": "0" * 40, "apply": {
        "status": "applied", "detail": ""}}, "steps/default/0", "-kpipe-s0")
    step["build"] = {"status": "pass", "config": "default"}
    rec["steps"].append(step)
    record.write(run_dir, rec)
    return rec, step


def test_a_boot_that_fails_in_the_worker_ends_the_run_in_the_main_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(job, run_dir, progress, stop=None):  # noqa: ANN001, ANN202 - the fault
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(boot_steps, "run_job", disk_full)
    rec, step = _record_with_one_built_step(tmp_path)
    opts = RunOptions(series="", boot=True, suites=["smoke"])
    with pytest.raises(OSError, match="No space left"), \
            Booter(opts, rec, tmp_path, Progress(quiet=True)) as booter:
        booter.submit(step)
        assert rec["booting"] == {"step": 0, "config": "default", "stage": "boot"}
    assert step["boot"]["status"] == "not-run" and step["boot"]["interrupted"] is True
    assert "No space left on device" in step["boot"]["detail"]
    assert "booting" not in rec  # it ended in an error, not cut short
    record.validate(rec)


def _two_built_steps(run_dir: Path) -> tuple[dict, list[dict]]:
    rec, first = _record_with_one_built_step(run_dir)
    second = step_ops.new_step(1, "default", {"commit": "1" * 40, "apply": {
        "status": "applied", "detail": ""}}, "steps/default/1", "-kpipe-s1")
    second["build"] = {"status": "pass", "config": "default"}
    rec["steps"].append(second)
    return rec, [first, second]


def _result(job: boot_steps.BootJob) -> dict:
    return {"boot": {"status": "pass", "detail": f"booted step {job.who['index']}"},
            "tests": [], "splats": []}


def test_two_guests_at_once_apply_in_step_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The order in which two real guests end cannot be chosen, so the boot is a stand-in
    that ends when the test says: step 1 ends first, and its result waits for step 0's."""
    started = {0: threading.Event(), 1: threading.Event()}
    finish = {0: threading.Event(), 1: threading.Event()}

    def boot(job, run_dir, progress, stop=None):  # noqa: ANN001, ANN202 - the stand-in
        k = job.who["index"]
        started[k].set()
        assert finish[k].wait(30), f"step {k} was never let finish"
        return _result(job)

    monkeypatch.setattr(boot_steps, "run_job", boot)
    rec, (first, second) = _two_built_steps(tmp_path)
    opts = RunOptions(series="", boot=True, suites=["smoke"], boots=2)
    with Booter(opts, rec, tmp_path, Progress(quiet=True)) as booter:
        booter.submit(first)
        booter.submit(second)
        assert started[0].wait(10) and started[1].wait(10), "the two guests did not run at once"
        finish[1].set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and booter._running > 1:
            booter.collect()
            time.sleep(0.05)
        booter.collect()
        assert second["boot"]["status"] == "not-run", "step 1 applied before step 0"
        assert rec["booting"]["step"] == 0
        finish[0].set()
    assert [s["boot"]["detail"] for s in (first, second)] == ["booted step 0", "booted step 1"]
    assert "booting" not in rec
    record.validate(rec)


def test_the_boot_with_more_suites_starts_first(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """One guest at a time; while step 0 boots, steps 1 and 2 (the tip) wait: the tip, which
    also runs the migration suite (steps rule "ends"), starts before step 1, and the results
    are still applied in step order."""
    order: list[int] = []
    go = threading.Event()

    def boot(job, run_dir, progress, stop=None):  # noqa: ANN001, ANN202 - the stand-in
        order.append(job.who["index"])
        if job.who["index"] == 0:
            assert go.wait(30)
        return _result(job)

    monkeypatch.setattr(boot_steps, "run_job", boot)
    rec, steps = _two_built_steps(tmp_path)
    tip = step_ops.new_step(2, "default", {"commit": "2" * 40, "apply": {
        "status": "applied", "detail": ""}}, "steps/default/2", "-kpipe-s2")
    tip["build"] = {"status": "pass", "config": "default"}
    rec["steps"].append(tip)
    rec["series"]["patches"] = [  # two patches: step 2 is the tip
        {"n": n, "subject": f"p{n}", "author": "a", "msgid": f"{n}@x", "trailers": [],
         "attestation": "none"} for n in (1, 2)]
    opts = RunOptions(series="", boot=True, suites=["smoke", "vhost-scsi-migration"], boots=1)
    with Booter(opts, rec, tmp_path, Progress(quiet=True)) as booter:
        for step in (*steps, tip):
            booter.submit(step)
        go.set()
    assert order == [0, 2, 1]
    assert [s["boot"]["detail"] for s in rec["steps"]] == [
        "booted step 0", "booted step 1", "booted step 2"]


def test_ctrl_c_with_two_guests_keeps_the_one_that_ended(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Step 1's guest ends, step 0's is cut short by the Ctrl-C: step 1 keeps its result, step
    0 is interrupted and named as the boot cut short."""
    started, one_done = threading.Event(), threading.Event()

    def boot(job, run_dir, progress, stop=None):  # noqa: ANN001, ANN202 - the stand-in
        if job.who["index"] == 1:
            one_done.set()
            return _result(job)
        started.set()
        assert stop is not None and stop.wait(30), "the guest was not told to stop"
        raise vng.Interrupted("stopped")

    monkeypatch.setattr(boot_steps, "run_job", boot)
    rec, (first, second) = _two_built_steps(tmp_path)
    opts = RunOptions(series="", boot=True, suites=["smoke"], boots=2)
    with pytest.raises(KeyboardInterrupt), \
            Booter(opts, rec, tmp_path, Progress(quiet=True)) as booter:
        booter.submit(first)
        booter.submit(second)
        assert started.wait(10) and one_done.wait(10)
        raise KeyboardInterrupt
    assert second["boot"]["detail"] == "booted step 1"
    assert first["boot"]["status"] == "not-run" and first["boot"]["interrupted"] is True
    assert first["boot"]["detail"] == boot_steps.KILLED
    assert rec["booting"]["step"] == 0
    record.validate(rec)
