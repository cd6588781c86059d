"""One config's walk over a run's steps: merge the config, then for each step in order reuse
it, or check it out, build it in the config's O= directory and hand it to the boot worker
(pipeline/run/booter.py), which boots step k from its step directory while the walk builds
k+1 (or, when its objects equal the previous step's, it takes that step's results:
pipeline/run/unchanged.py); and the run whose every step was done before
(reuse_everything): linked, and booted here where only built before.

Reads the worktree (with every patch applied as a commit), the ConfigPlan's reuse keys and
earlier runs; writes each step's directory (build log, bzImage, System.map, .config,
warnings.json, objects.json; the boot worker writes boot/) and its entry in the record, which
is rewritten after every step, by this thread only (the boot worker's results are applied
here).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pipeline.build import diagnostics
from pipeline.build.make import build
from pipeline.errors import BadInput
from pipeline.options import RunOptions
from pipeline.progress import Progress
from pipeline.record import keys as steps
from pipeline.record import store as record
from pipeline.run import reuse, step_ops, unchanged
from pipeline.run.boot_steps import steps_rule
from pipeline.run.booter import Booter
from pipeline.run.lead_in import lead_in
from pipeline.run.reuse import ConfigPlan, reusable


def walk_config(opts: RunOptions, rec: dict, run_dir: Path, wt: Path, cplan: ConfigPlan,
                applied: list[dict], patch_files: list[Path], progress: Progress,
                booter: Booter, first: int = 0, last: int | None = None) -> None:
    """Build steps first..last of one config, in order, in one O= directory, and hand each
    that builds to `booter` (whose boots may still run when this returns)."""
    last = len(applied) - 1 if last is None else last
    spec, spec_hash, config_name = cplan.spec, cplan.hash, cplan.spec.name
    build_dir = wt / f"o-{config_name}"
    t0 = time.monotonic()
    progress.stage("kconfig", f"{config_name}: merging {', '.join(spec.fragments)}")
    dropped = step_ops.configure(spec, wt, build_dir, opts.sandbox)
    rec["configs"].append(step_ops.config_record(spec, build_dir / ".config", dropped,
                                                 spec_hash))
    for d in dropped:
        progress.warn(f"config {config_name}: CONFIG_{d['sym']} dropped ({d['unmet']})")
    record.stage_time(rec, f"kconfig:{config_name}", t0)
    t_build = time.monotonic()
    previous: list[diagnostics.Diagnostic] = []
    if first > 0:
        previous = lead_in(opts, rec, wt, cplan, applied, patch_files, first - 1, progress)
    for k in range(first, last + 1):
        previous = _walk_step(opts, rec, run_dir, wt, cplan, applied, patch_files, progress,
                              booter, k, previous)
    record.stage_time(rec, f"build:{config_name}", t_build)


def _walk_step(opts: RunOptions, rec: dict, run_dir: Path, wt: Path, cplan: ConfigPlan,
               applied: list[dict], patch_files: list[Path], progress: Progress,
               booter: Booter, k: int, previous: list[diagnostics.Diagnostic]
               ) -> list[diagnostics.Diagnostic]:
    """Step k of the walk: reused, blocked, or checked out, built and handed to `booter`;
    returns its warnings (the next build compares with them)."""
    spec, config_name = cplan.spec, cplan.spec.name
    build_dir = wt / f"o-{config_name}"
    step_in = applied[k]
    step_rel = f"steps/{config_name}/{k}"
    step_dir = run_dir / step_rel
    localversion = step_ops.localversion(config_name, k)
    step = step_ops.new_step(k, config_name, step_in, step_rel, localversion)
    if step_in["apply"]["status"] in ("conflict", "blocked"):
        for stage in ("build", "boot"):
            step[stage] = {"status": "blocked", "config": config_name}
        rec["steps"].append(step)
        record.write(run_dir, rec)
        return previous
    step["key"], step["build_key"] = cplan.keys[k], cplan.build_keys[k]
    if found := reusable(opts, cplan, k, rec["run_id"]):
        step = reuse.link(found, step, step_dir, step_rel)
        rec["steps"].append(step)
        previous = step_ops.load_warnings(step_dir)
        if found.whole:
            progress.info(f"step {k} [{config_name}]: reused from run {step['reused_from']}")
            record.write(run_dir, rec)
        else:
            progress.info(f"step {k} [{config_name}]: build reused from run "
                          f"{step['build_reused_from']}; booting it")
            booter.submit(step)
            record.write(run_dir, rec)
        return previous
    rec["steps"].append(step)
    step_ops.checkout(wt, step_in["commit"])
    if k > 0 and step_ops.touches_kconfig(patch_files[k - 1]):
        progress.info(f"patch {k} touches Kconfig: re-checking the config")
        step["config_recheck"] = {"dropped": step_ops.configure(spec, wt, build_dir,
                                                                opts.sandbox)}
    progress.stage("build", f"step {k} [{config_name}] (of 0..{len(applied) - 1})")
    rec["current"] = {"step": k, "config": config_name, "stage": "build"}
    booter.collect()
    record.write(run_dir, rec)
    outcome = build(wt, build_dir, localversion, step_dir, previous, opts.jobs,
                    _compiled(progress, booter, f"step {k} [{config_name}]"),
                    step_ops.jail(opts.sandbox, wt, build_dir, k == 0))
    step["build"] = step_ops.prefix_paths(outcome.record, step_rel) | {"config": config_name}
    step_ops.save_warnings(step_dir, outcome.warnings)
    previous = outcome.warnings
    progress.build_done(k, step["build"])
    if outcome.disk_full:
        record.write(run_dir, rec)
        step_ops.raise_disk_full(step_dir)
    rec.pop("current", None)
    if step["build"]["status"] == "pass":  # kept for a booting run that reuses the build
        found = unchanged.record_objects(step, step_dir, build_dir, opts.boot)
        if opts.boot:
            _boot_or_take(opts, rec, step, run_dir, found,
                          patch_files[k - 1] if k > 0 else None, progress, booter)
    booter.collect()
    record.write(run_dir, rec)
    return previous


def _boot_or_take(opts: RunOptions, rec: dict, step: dict, run_dir: Path,
                  found: dict[str, str], patch: Path | None, progress: Progress,
                  booter: Booter) -> None:
    """Hand a freshly built step to the booter, which boots it unless its objects (`found`)
    equal the previous step's: it then takes that step's results (pipeline/run/unchanged.py),
    decided once the previous step's boot is in the record (it may still run when this
    returns). A step whose objects differ is handed over to boot at once, so that it may boot
    beside the previous step (pipeline/run/booter.py)."""
    k = step["index"]
    if k == 0 or opts.boot_unchanged or not unchanged.same_as_previous(rec, step, found,
                                                                        run_dir, patch):
        booter.submit(step)  # it boots: no need to wait for the previous step's results
        return

    def take() -> bool:
        same = _same_suites(opts, rec, k)
        if taken := unchanged.previous_if_same(rec, step, found, run_dir, patch, same):
            unchanged.take_results(step, taken)
            origin = step["boot"]["reused_from_step"]
            progress.info(f"step {k}: its {len(found)} objects equal step {k - 1}'s: not "
                          f"booted, step {origin}'s boot and tests stand for it")
            return True
        return False

    booter.submit(step, take)


def _compiled(progress: Progress, booter: Booter, label: str) -> Callable[[str, int], None]:
    """make's progress callback for the build `label` names: its progress line, and the boots
    that ended meanwhile applied to the record (which this thread alone writes)."""
    units = progress.build_units(label)

    def compiled(unit: str, count: int) -> None:
        units(unit, count)
        booter.collect()

    return compiled


def _same_suites(opts: RunOptions, rec: dict, k: int) -> bool:
    """Whether steps k - 1 and k run the same suites (their steps rule); False when a suite
    cannot be read (the boot then records why)."""
    try:
        return ([s.name for s in steps_rule(opts, rec, k)[0]]
                == [s.name for s in steps_rule(opts, rec, k - 1)[0]])
    except BadInput:
        return False


def reuse_everything(opts: RunOptions, plan: dict[str, ConfigPlan], rec: dict, run_dir: Path,
                     progress: Progress, ranges: dict[str, tuple[int, int]],
                     booter: Booter) -> bool:
    """When every step this run walks was done before, or at least built before (then it is
    handed to `booter` to boot here), link them all: no checkout, no make."""
    found = reuse.all_reusable(opts, plan, rec["run_id"], ranges)
    if found is None:
        return False
    for name, seq in found.items():
        cp = plan[name]
        for k, f in enumerate(seq, start=ranges[name][0]):
            step_rel = f"steps/{name}/{k}"
            fresh = {**f.step, "key": cp.keys[k], "build_key": cp.build_keys[k],
                     "reused_from": None, "dir": step_rel, "tests": [], "splats": [],
                     "boot": {"status": "not-run"}}
            step = reuse.link(f, fresh, run_dir / step_rel, step_rel)
            rec["steps"].append(step)
            if f.boot_here:
                progress.info(f"step {k} [{name}]: build reused from run "
                              f"{step['build_reused_from']}; booting it")
                booter.submit(step)
        rec["configs"].append(steps.earlier_config(seq[0].run, name))
        booted = sum(f.boot_here for f in seq)
        progress.info(f"config {name}: all {len(seq)} steps reused from earlier runs"
                      + (f" ({booted} built there, booted here)" if booted else ""))
    record.write(run_dir, rec)
    return True
