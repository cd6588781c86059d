"""One kpipe run: series -> base -> apply -> kconfig -> build (-> boot+test) -> record.

Reads the series argument (or a plan, pipeline/plan.py), the kernel tree and configs/; writes
reports/runs/<run-id>/ (or the --run-dir) with results.json (rewritten atomically after every
stage and step), the series, and one directory per step (steps/<config>/<k>/) holding its logs
and artifacts; at the end, report.html (and the viewer index of the reports dir), whose failure
is reported but changes nothing else. Returns the exit code of DESIGN.md: 0 good, 1 a bad
verdict or failing tip, 2 bad input, 3 infrastructure error, 130 interrupted. The build place
(a worktree with the O= directories inside it, pipeline/intake/pool.py) is taken from the
pool at the base and given back on every path; a run that does not end in order leaves it to
be wiped before its next use.

The stages live in their own modules: reuse keys and look-ups (reuse.py), one config's walk
over the steps and the all-reused run (walk.py), the boot worker that boots each built step
while the walk builds the next (booter.py), a shard's lead-in (lead_in.py), booting
a step (boot_steps.py) and re-running the failures that decide a verdict (confirm.py). A
shard's record is partial: no verdicts (the merge computes them) and exit code 0 once complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pipeline import errors, paths
from pipeline.build import sandbox
from pipeline.errors import InfraError
from pipeline.fanout import plan as planmod
from pipeline.intake import apply, apply_series, base, pool, series, tree
from pipeline.options import RunOptions
from pipeline.progress import Progress
from pipeline.record import store as record
from pipeline.record import verdicts
from pipeline.run.booter import Booter
from pipeline.run.confirm import confirm_failures
from pipeline.run.lead_in import ranges as walk_ranges
from pipeline.run.reuse import ConfigPlan, plan_configs
from pipeline.run.walk import reuse_everything, walk_config

__all__ = ["InfraError", "RunOptions", "run"]


Body = Callable[[RunOptions, dict, Path, Progress], None]


def run(opts: RunOptions, progress: Progress, body: Body | None = None) -> tuple[int, Path]:
    """A run's record and its end on every path; `body` (default: the walk over the steps;
    pipeline/run/ablate.py gives its own) does the work between."""
    run_id = record.new_run_id()
    run_dir = opts.run_dir or paths.runs_dir() / run_id
    run_dir.mkdir(parents=True, exist_ok=opts.run_dir is not None)
    rec = record.new_record(run_id, opts.argv)
    if opts.plan is not None:
        rec["plan"] = planmod.summary(opts.plan, opts.shard)
    record.write(run_dir, rec)
    progress.info(f"run {run_id}: {run_dir}")
    try:
        (body or _run)(opts, rec, run_dir, progress)
        rec["status"] = "complete"
        if opts.shard is None:
            rec["verdicts"] = verdicts.compute(rec["steps"])
            rec["exit_code"] = verdicts.exit_code(rec)
        else:  # a partial record: the merge computes the verdicts over every shard
            rec["exit_code"] = 0
    except BaseException as exc:  # noqa: BLE001 - what kpipe does not expect is raised again
        if (failed := errors.failure(exc)) is None:
            raise
        _fail(rec, failed.status, failed.code, failed.message, progress)
    finally:
        if rec["status"] == "running":
            rec["status"], rec["exit_code"] = "infra-error", 3
            rec["error"] = rec["error"] or "kpipe stopped unexpectedly"
        _mark_unfinished(rec)
        try:
            record.write(run_dir, rec)
        except OSError as exc:  # the disk may be full: the last good record stays in place
            progress.error(f"could not write {run_dir / 'results.json'}: {exc}")
            rec["exit_code"] = 3
    _render_reports(run_dir, progress)
    return rec["exit_code"], run_dir


def _render_reports(run_dir: Path, progress: Progress) -> None:
    """The run's report.html and the viewer index; a failure here never changes the run."""
    try:
        from pipeline.report import html, render

        page = html.write_run(run_dir)
        render.refresh_index(run_dir)
        progress.info(f"report: {page}")
    except Exception as exc:  # noqa: BLE001 (any rendering failure is only reported)
        progress.error(f"could not render the report of {run_dir}: {exc}")


def _fail(rec: dict, status: str, code: int, message: str, progress: Progress) -> None:
    rec["status"], rec["exit_code"], rec["error"] = status, code, message
    partial = "shard" in rec.get("plan", {})
    rec["verdicts"] = verdicts.compute(rec["steps"]) if rec["steps"] and not partial else []
    progress.error(message)


def _mark_unfinished(rec: dict) -> None:
    """The stages that were cut short (the main thread's, and the boot worker's: booter.py)
    are named in the record; their status stays `not-run`."""
    cut = [c for c in (rec.pop("current", None), rec.pop("booting", None)) if c]
    if cut and rec["status"] != "complete":
        rec["error"] = (rec["error"] or "") + " (during " + " and ".join(
            f"{c['stage']} of step {c['step']} [{c['config']}]" for c in cut) + ")"


def _check_sandbox(opts: RunOptions, rec: dict, progress: Progress) -> None:
    """Say in the record whether the builds run in the sandbox; stop when it cannot start."""
    if not opts.sandbox:
        rec["host"]["sandbox"] = {"used": False, "detail": "--no-sandbox"}
        progress.warn("--no-sandbox: the series' code is configured and built with your rights")
        return
    if why := sandbox.probe():
        rec["host"]["sandbox"] = {"used": False, "detail": why}
        raise sandbox.SandboxError(f"the build sandbox cannot start here: {why}; pass "
                                   "--no-sandbox to build the series' code without it")
    rec["host"]["sandbox"] = {"used": True, "detail": sandbox.version() or sandbox.BWRAP}


def intake(opts: RunOptions, rec: dict, run_dir: Path,
           progress: Progress) -> tuple[tree.TreeInfo, dict, list[Path]]:
    """Check the sandbox, read the series, open the tree and choose the base (each into the
    record); return the tree, the base and the series' patch files."""
    _check_sandbox(opts, rec, progress)
    t0 = time.monotonic()
    if opts.plan is not None:
        progress.stage("series", f"plan {opts.plan['id']}: {opts.plan['series']['subject']}")
        rec["series"] = planmod.restore_series(opts.plan, run_dir)
    else:
        progress.stage("series", f"reading {opts.series} with b4")
        rec["series"] = series.intake(opts.series, run_dir, opts.revision, opts.allow_partial,
                                      opts.lore).to_dict()
        for warning in rec["series"]["warnings"]:
            progress.warn(warning)
    record.stage_time(rec, "series", t0)
    record.write(run_dir, rec)

    t0 = time.monotonic()
    progress.stage("tree", f"opening the kernel tree {opts.tree or opts.tree_name or ''} "
                           "(first use of a named tree imports it)")
    info = tree.open_tree(opts.tree, name=opts.tree_name)
    progress.info(f"tree {info.name or info.path}: Linux {info.version} ({info.describe})")
    if opts.plan is not None:
        chosen = planmod.ensure_base(opts.plan, info.path)
    else:
        chosen = base.for_series(info, run_dir / "series" / "thread.mbox",
                                 rec["series"]["revision"], rec["series"]["source"], opts.base,
                                 opts.base_remote)
    rec["base"] = chosen
    if "warning" in chosen:
        progress.warn(chosen["warning"])
    progress.info(f"base {chosen['commit'][:12]} ({chosen['rule']}: {chosen['detail']})")
    record.stage_time(rec, "base", t0)
    record.write(run_dir, rec)

    patch_files = apply.split_mbox(run_dir / rec["series"]["mbox"],
                                   run_dir / "series" / "patches")
    return info, chosen, patch_files


def _run(opts: RunOptions, rec: dict, run_dir: Path, progress: Progress) -> None:
    info, chosen, patch_files = intake(opts, rec, run_dir, progress)
    plan = plan_configs(opts, info.path, chosen["commit"], patch_files)
    ranges = walk_ranges(opts, len(patch_files))
    rec["overlap"] = opts.overlap
    # The boots run in the booter's thread beside the builds; leaving its block waits for them
    # all (or, on Ctrl-C or an error, kills the one under way), so the confirmations and
    # verdicts below see every boot. The build place can go back before the last boots end.
    with Booter(opts, rec, run_dir, progress) as booter:
        if not reuse_everything(opts, plan, rec, run_dir, progress, ranges, booter):
            with pool.place(info.path, chosen["commit"]) as held:
                try:
                    _walk(opts, rec, run_dir, held, plan, patch_files, ranges, progress, booter)
                except BaseException:
                    booter.stop()  # its guest goes before the build place is given back
                    raise
    t0 = time.monotonic()
    if confirm_failures(opts, rec, run_dir, progress, len(patch_files), ranges):
        record.stage_time(rec, "confirm", t0)


def _walk(opts: RunOptions, rec: dict, run_dir: Path, held: pool.Place,
          plan: dict[str, ConfigPlan], patch_files: list[Path],
          ranges: dict[str, tuple[int, int]], progress: Progress, booter: Booter) -> None:
    """Apply the series in the build place, then walk each config's range of steps."""
    wt = held.path
    rec["host"]["build_place"] = held.as_dict()
    progress.info(f"build place {wt} ({place_state(held)}, {held.seconds:.0f} s)")
    t0 = time.monotonic()
    applied = apply_series.apply_all(wt, patch_files, run_dir, rec["base"]["commit"], progress)
    record.stage_time(rec, "apply", t0)
    for config_name, (first, last) in ranges.items():
        walk_config(opts, rec, run_dir, wt, plan[config_name], applied, patch_files,
                    progress, booter, first, last)


def place_state(held: pool.Place) -> str:
    if held.new:
        return "new: every file compiles once, from ccache where it can"
    if held.wiped:
        return "its last run did not end in order: O= directories wiped"
    return "kept from an earlier run: only what differs is rebuilt"
