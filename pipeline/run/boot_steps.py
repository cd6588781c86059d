"""Boot one built step of a run and record what happened: the run-side wiring of
pipeline/boot/step.py (which boots and tests a bzImage on its own).

Reads the step's bzImage, System.map and .config from its directory in the run; writes the
step's boot, tests and splats into the record (paths relative to the run) and the host's
accelerator into rec["host"].
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.build import kconfig
from pipeline.options import RunOptions
from pipeline.progress import Progress
from pipeline.record import store as record

if TYPE_CHECKING:  # boot.step is imported only by runs that boot
    from pipeline.boot.step import BootSettings


def boot_settings(config: str) -> BootSettings:
    """The default boot settings, with the named config's own boot timeout if it has one."""
    from pipeline.boot import step as bootstep

    settings = bootstep.default_settings()
    timeout = kconfig.load_spec(config).boot_timeout  # a named config of configs.toml
    return replace(settings, boot_timeout=float(timeout)) if timeout else settings


def boot_step(opts: RunOptions, rec: dict, step: dict, run_dir: Path,
              progress: Progress) -> None:
    """Boot one built step, with the record saying so while it runs."""
    rec["current"] = {"step": step["index"], "config": step["config"], "stage": "boot"}
    record.write(run_dir, rec)
    _boot(opts, rec, step, run_dir / step["dir"], step["dir"], progress)
    rec.pop("current", None)
    record.write(run_dir, rec)


def _boot(opts: RunOptions, rec: dict, step: dict, step_dir: Path, step_rel: str,
          progress: Progress) -> None:
    """Boot the step and run its suites (pipeline.boot.step); paths made run-relative."""
    from pipeline.boot import step as bootstep
    from pipeline.boot import suites as suitemod

    names = suitemod.for_run(opts.boot, opts.suites)
    progress.stage("boot", f"step {step['index']}: booting {step['localversion']}, "
                           f"suites {', '.join(names)}")
    result = bootstep.boot_and_test(
        step_dir / "bzImage", step_dir / "System.map", step_dir / ".config",
        step["localversion"], names, step_dir / "boot", boot_settings(step["config"]))
    prefix = f"{step_rel}/boot/"
    boot_rec = result["boot"]
    if boot_rec.get("console"):
        boot_rec["console"] = prefix + boot_rec["console"]
    for attempt in boot_rec.get("attempts", []):
        attempt["console"] = prefix + attempt["console"]
    for test in result["tests"]:
        if test.get("log"):
            test["log"] = prefix + test["log"]
    step["boot"], step["tests"], step["splats"] = boot_rec, result["tests"], result["splats"]
    if boot_rec.get("accel"):
        rec["host"]["accel"] = boot_rec["accel"]
        rec["host"]["accel_reason"] = boot_rec.get("accel_reason")
        rec["host"]["cpu_model"] = boot_rec.get("cpu_model")
    failed = [t for t in result["tests"] if t["status"] not in ("pass", "skip")]
    progress.boot_done(step["index"], boot_rec, result["tests"], failed)
