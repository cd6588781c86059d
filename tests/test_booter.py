"""The boot worker (pipeline/run/booter.py) when a boot fails in its thread: the error reaches
the main thread, which alone writes the record, and the step's boot is left `not-run` and
`interrupted` with the reason. The fault (a full disk in the middle of a boot) is injected:
a real boot cannot be made to hit it on demand. Booting itself, overlap with a build and
Ctrl-C are tested end to end on a real kernel (tests/test_e2e_run.py)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

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
