"""Boot one built step of a run and record what happened: the run-side wiring of
pipeline/boot/step.py (which boots and tests a bzImage on its own).

Reads the step's bzImage, System.map and .config from its directory in the run and the suites'
definitions (their steps rule and guest memory); writes the step's boot, tests and splats into
the record (paths relative to the run; a suite its steps rule leaves out of this step is
`not-run (steps rule)`) and the host's accelerator into rec["host"]. A boot is three parts so
that the boot worker (pipeline/run/booter.py) can run the middle one in its thread: prepare
(reads the record: the suites), run_job (boots from the step directory alone and touches no
record) and apply_result (writes the record); boot_step does all three at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.options import RunOptions
from pipeline.progress import Progress
from pipeline.record import store as record

if TYPE_CHECKING:  # boot.step is imported only by runs that boot
    from pipeline.boot.step import BootSettings
    from pipeline.boot.suites import Suite


def boot_settings(config: str, suites: list[Suite] | None = None) -> BootSettings:
    """The default boot settings, with the named config's own boot timeout if it has one and
    the guest memory the largest of `suites` asks for (and udev if one of them needs it)."""
    from pipeline.boot import step as bootstep
    from pipeline.boot import suites as suitemod

    settings = bootstep.settings_for(config)
    return replace(settings, memory_mb=suitemod.guest_memory(suites or [], settings.memory_mb),
                   udev=any(s.udev for s in suites or []))


def steps_rule(opts: RunOptions, rec: dict, index: int) -> tuple[list[Suite], list[Suite]]:
    """The run's suites split by their steps rule into those that run at step `index` and
    those left out (the tip is the last patch of the series)."""
    from pipeline.boot import suites as suitemod

    tip = len(rec["series"]["patches"])
    loaded = [suitemod.load_suite(name) for name in suitemod.for_run(opts.boot, opts.suites)]
    here = [s for s in loaded if suitemod.runs_at(s, index, tip, opts.slow_steps)]
    return here, [s for s in loaded if s not in here]


def left_out_tests(rec: dict, step: dict, suites: list[Suite]) -> list[dict]:
    """`not-run (steps rule)` records for the suites a step leaves out: one per case the
    base of the same config ran (so the matrix keeps one column per case), else one per
    program."""
    from pipeline.boot import suites as suitemod

    base = next((s for s in rec["steps"] if s["index"] == 0
                 and s.get("config") == step.get("config")), None)
    out = []
    for suite in suites:
        cases = [t["case"] for t in (base or {}).get("tests", []) if t["suite"] == suite.name]
        for case in cases or [p.rel for p in suite.programs]:
            out.append({"suite": suite.name, "case": case, "status": "not-run", "seconds": None,
                        "message": suitemod.steps_rule_message(suite), "log": None,
                        "splats": []})
    return out


@dataclass(frozen=True)
class BootJob:
    """One step's boot as the main thread fixes it before it runs (here or in the boot worker,
    pipeline/run/booter.py): the step's record entry, the suites that run at this step (as
    boot_once takes them) and those its steps rule leaves out. The boot itself reads only
    `who` (a copy of the entry's index, config, localversion and dir) and the step directory."""

    step: dict
    who: dict
    names: list[str]
    given: list[str]
    left_out: list[Suite]
    base: dict | None = None  # the run's base (an L2 kernel is built from its commit)
    sandboxed: bool = True

    @property
    def label(self) -> str:
        return f"step {self.who['index']} [{self.who['config']}]"


def prepare(opts: RunOptions, rec: dict, step: dict) -> BootJob:
    """The boot of one built step, ready to run (reads the suites and their steps rule)."""
    from pipeline.boot import suites as suitemod

    try:
        here, left_out = steps_rule(opts, rec, step["index"])
        names, given = [s.name for s in here], [str(s.directory) for s in here]
    except suitemod.SuiteError:  # boot_and_test records it as the step's boot error
        left_out = []
        names = given = suitemod.for_run(opts.boot, opts.suites)
    who = {k: step[k] for k in ("index", "config", "localversion", "dir")}
    return BootJob(step, who, names, given, left_out, rec.get("base"), opts.sandbox)


def run_job(job: BootJob, run_dir: Path, progress: Progress,
            stop: threading.Event | None = None) -> dict:
    """Boot the step and run its suites (pipeline.boot.step); the result with run-relative
    paths. Touches no record: the caller applies it (apply_result). `stop` set: the guest
    is killed and vng.Interrupted raised."""
    later = (f" ({', '.join(s.name for s in job.left_out)}: steps rule)"
             if job.left_out else "")
    progress.stage("boot", f"{job.label}: booting {job.who['localversion']}, "
                           f"suites {', '.join(job.names) or 'none'}{later}")
    return boot_once(job.who, run_dir / job.who["dir"], f"{job.who['dir']}/boot", job.given,
                     stop=stop, base=job.base, sandboxed=job.sandboxed, progress=progress.info)


def apply_result(rec: dict, job: BootJob, result: dict, progress: Progress) -> None:
    """The boot's result into the step's record entry (and the host's accelerator)."""
    result["tests"] += left_out_tests(rec, job.step, job.left_out)
    boot_rec = result["boot"]
    step = job.step
    step["boot"], step["tests"], step["splats"] = boot_rec, result["tests"], result["splats"]
    if boot_rec.get("accel"):
        rec["host"]["accel"] = boot_rec["accel"]
        rec["host"]["accel_reason"] = boot_rec.get("accel_reason")
        rec["host"]["cpu_model"] = boot_rec.get("cpu_model")
    failed = [t for t in result["tests"] if t["status"] not in ("pass", "skip")]
    progress.boot_done(step["index"], boot_rec, result["tests"], failed)


KILLED = "interrupted while it booted: the guest was killed"


def not_booted(detail: str) -> dict:
    """The boot of a step whose boot was cut short or never started (`interrupted`: a later
    run boots it again rather than reuse it, pipeline/record/keys.py)."""
    return {"status": "not-run", "interrupted": True, "detail": detail}


def boot_step(opts: RunOptions, rec: dict, step: dict, run_dir: Path,
              progress: Progress) -> None:
    """Boot one built step here and now, with the record saying so while it runs."""
    rec["current"] = {"step": step["index"], "config": step["config"], "stage": "boot"}
    record.write(run_dir, rec)
    job = prepare(opts, rec, step)
    try:
        result = run_job(job, run_dir, progress)
    except BaseException:  # Ctrl-C: vng killed its guest; a later run boots the step again
        step["boot"] = not_booted(KILLED)
        raise
    apply_result(rec, job, result, progress)
    rec.pop("current", None)
    record.write(run_dir, rec)


def boot_once(step: dict, step_dir: Path, out_rel: str, suites: list[str],
              attempt: int = 1, stop: threading.Event | None = None,
              base: dict | None = None, sandboxed: bool = True,
              progress: Callable[[str], None] | None = None) -> dict:
    """One boot of the step's kernel running `suites` (names or suite folders), its output in
    the run-relative folder out_rel (under step_dir); the result of pipeline.boot.step with
    run-relative paths. A suite that boots an L2 guest gets its kernel built first from the
    run's `base` commit (rec["base"]; pipeline/boot/l2kernel.py)."""
    from pipeline.boot import l2kernel
    from pipeline.boot import step as bootstep
    from pipeline.boot import suites as suitemod

    try:
        loaded = [suitemod.load_suite(name) for name in suites]  # for the guest memory
    except suitemod.SuiteError:
        loaded = []  # boot_and_test records the error as the step's boot
    out_dir = step_dir / Path(out_rel).name
    tree = Path(base["tree"]["path"]) if base and base.get("tree") else None
    env, unavailable = l2kernel.for_suites(loaded, tree, (base or {}).get("commit"),
                                           sandboxed, progress)
    result = bootstep.boot_and_test(
        step_dir / "bzImage", step_dir / "System.map", step_dir / ".config",
        step["localversion"], suites, out_dir, boot_settings(step["config"], loaded),
        attempt=attempt, stop=stop, env=env, unavailable=unavailable)
    prefix = f"{out_rel}/"
    boot_rec = result["boot"]
    if boot_rec.get("console"):
        boot_rec["console"] = prefix + boot_rec["console"]
    for one in boot_rec.get("attempts", []):
        one["console"] = prefix + one["console"]
    for test in result["tests"]:
        if test.get("log"):
            test["log"] = prefix + test["log"]
    return result
