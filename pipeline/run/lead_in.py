"""A shard's lead-in: which steps a run walks, and the warnings in force before its range.

A shard of a plan walks only its ranges of steps. Before a range that does not start at the
base it needs the warnings the step before the range leaves in force, so that the new ones
are those a walk from the base would see. They come from an earlier run's warnings.json when
that step is reusable, else from building it here (unrecorded) in the config's O= directory.

Reads the plan, the worktree and earlier runs; writes the O= directory and scratch build
logs under the worktree (a build place of pipeline/intake/pool.py: the next run to take it
removes them).
"""

from __future__ import annotations

from pathlib import Path

from pipeline import paths
from pipeline.build import diagnostics
from pipeline.build.make import build
from pipeline.fanout import plan as planmod
from pipeline.options import RunOptions
from pipeline.progress import Progress
from pipeline.run import step_ops
from pipeline.run.reuse import ConfigPlan, reusable


def ranges(opts: RunOptions, patches: int) -> dict[str, tuple[int, int]]:
    """config -> (first, last) step this run walks: all of them unless it runs a shard."""
    if opts.plan is None:
        return {name: (0, patches) for name in opts.configs}
    if opts.plan["steps"] != patches + 1:
        raise planmod.PlanError(f"the plan's series has {opts.plan['steps'] - 1} patches, "
                                f"its mbox {patches}")
    wanted = planmod.shard_ranges(opts.plan, opts.shard)
    return {name: wanted[name] for name in opts.configs if name in wanted}


def lead_in(opts: RunOptions, rec: dict, wt: Path, cplan: ConfigPlan, applied: list[dict],
            patch_files: list[Path], k: int, progress: Progress) -> list[diagnostics.Diagnostic]:
    """The warnings in force after step k as a walk from the base has them (k is not recorded).

    A reusable step k gives them from its warnings.json. Otherwise step k is built in the
    config's O= directory (which then holds step k, as in the walk); when that build fails,
    the steps before it are built one at a time, back to one that passes (or the base), then
    forward again to k, each build carrying the warnings of the one before. Each build gets
    the config the walk would have had at that step (re-merged after a patch touching Kconfig).
    """
    if applied[k]["apply"]["status"] in ("conflict", "blocked"):
        return []  # every step after it is blocked as well: nothing to attribute
    name = cplan.spec.name
    if found := reusable(opts, cplan, k, rec["run_id"]):  # its build's warnings.json
        progress.info(f"lead-in step {k} [{name}]: warnings from run {found.run}")
        return step_ops.load_warnings(paths.runs_dir() / found.run / found.step["dir"])
    build_dir, scratch = wt / f"o-{name}", wt / f"lead-in-{name}"
    tip = next(s["commit"] for s in reversed(applied) if s["commit"])
    configured_at = len(applied)  # the walk merged the config with the tip checked out

    def build_step(j: int, previous: list[diagnostics.Diagnostic]):  # noqa: ANN202 - BuildOutcome
        nonlocal configured_at
        touched = [i for i in range(1, j + 1) if step_ops.touches_kconfig(patch_files[i - 1])]
        want = touched[-1] if touched else len(applied)
        if want != configured_at:
            step_ops.checkout(wt, applied[j]["commit"] if touched else tip)
            step_ops.configure(cplan.spec, wt, build_dir, opts.sandbox)
            configured_at = want
        step_ops.checkout(wt, applied[j]["commit"])
        progress.stage("build", f"lead-in step {j} [{name}] (warnings before the range)")
        outcome = build(wt, build_dir, step_ops.localversion(name, j), scratch / str(j),
                        previous, opts.jobs, progress.build_units(f"lead-in step {j} [{name}]"),
                        step_ops.jail(opts.sandbox, wt, build_dir, base_step=j == k == 0))
        if outcome.disk_full:
            step_ops.raise_disk_full(scratch / str(j))
        return outcome

    j = k
    outcome = build_step(j, [])
    while outcome.record["status"] != "pass" and j > 0:
        j -= 1
        outcome = build_step(j, outcome.warnings)
    for i in range(j + 1, k + 1):
        outcome = build_step(i, outcome.warnings)
    progress.info(f"lead-in step {k} [{name}]: built ({outcome.record['status']})")
    return outcome.warnings
