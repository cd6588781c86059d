"""One config's walk over a run's steps: merge the config, then for each step in order reuse
it, or check it out, build it in the config's O= directory and boot it.

Reads the worktree (with every patch applied as a commit), the ConfigPlan's reuse keys and
earlier runs; writes each step's directory (build log, bzImage, System.map, .config,
warnings.json, boot/) and its entry in the record, which is rewritten after every step.
"""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.build import diagnostics as diag
from pipeline.build.make import build
from pipeline.progress import Progress
from pipeline.record import keys as steps
from pipeline.record import store as record
from pipeline.run import stepwork
from pipeline.run.boot_steps import boot_step
from pipeline.run.lead_in import lead_in
from pipeline.run.options import RunOptions
from pipeline.run.reuse import ConfigPlan, reusable, reuse_build


def walk_config(opts: RunOptions, rec: dict, run_dir: Path, wt: Path, cplan: ConfigPlan,
                applied: list[dict], patch_files: list[Path], progress: Progress,
                first: int = 0, last: int | None = None) -> None:
    """Build (and boot) steps first..last of one config, in order, in one O= directory."""
    last = len(applied) - 1 if last is None else last
    spec, spec_hash, config_name = cplan.spec, cplan.hash, cplan.spec.name
    build_dir = wt / f"o-{config_name}"
    t0 = time.monotonic()
    progress.stage("kconfig", f"{config_name}: merging {', '.join(spec.fragments)}")
    dropped = stepwork.configure(spec, wt, build_dir)
    rec["configs"].append(stepwork.config_record(spec, build_dir / ".config", dropped,
                                                 spec_hash))
    for d in dropped:
        progress.warn(f"config {config_name}: CONFIG_{d['sym']} dropped ({d['unmet']})")
    record.stage_time(rec, f"kconfig:{config_name}", t0)
    t_build = time.monotonic()
    previous: list[diag.Diagnostic] = []
    if first > 0:
        previous = lead_in(opts, rec, wt, cplan, applied, patch_files, first - 1, progress)
    for k, step_in in enumerate(applied):
        if not first <= k <= last:
            continue
        step_rel = f"steps/{config_name}/{k}"
        step_dir = run_dir / step_rel
        localversion = stepwork.localversion(config_name, k)
        step = stepwork.new_step(k, config_name, step_in, step_rel, localversion)
        rec["steps"].append(step)
        if step_in["apply"]["status"] in ("conflict", "blocked"):
            for stage in ("build", "boot"):
                step[stage] = {"status": "blocked", "config": config_name}
            record.write(run_dir, rec)
            continue
        step["key"], step["build_key"] = cplan.keys[k], cplan.build_keys[k]
        found = reusable(opts, cplan, k, rec["run_id"])
        if found and found[0]:
            reused = steps.link_step_files(found[1], found[2], step_dir, step_rel)
            rec["steps"][-1] = reused
            previous = stepwork.load_warnings(step_dir)
            progress.info(f"step {k} [{config_name}]: reused from run {reused['reused_from']}")
            record.write(run_dir, rec)
            continue
        if found:
            step = rec["steps"][-1] = reuse_build(found[1:], step, step_dir, step_rel)
            previous = stepwork.load_warnings(step_dir)
            progress.info(f"step {k} [{config_name}]: build reused from run "
                          f"{step['build_reused_from']}; booting it")
            boot_step(opts, rec, step, run_dir, progress)
            continue
        stepwork.checkout(wt, step_in["commit"])
        if k > 0 and stepwork.touches_kconfig(patch_files[k - 1]):
            progress.info(f"patch {k} touches Kconfig: re-checking the config")
            step["config_recheck"] = {"dropped": stepwork.configure(spec, wt, build_dir)}
        rec["current"] = {"step": k, "config": config_name, "stage": "build"}
        record.write(run_dir, rec)
        progress.stage("build", f"step {k}/{len(applied) - 1} [{config_name}]")
        outcome = build(wt, build_dir, localversion, step_dir, previous, opts.jobs,
                        progress.build_unit)
        step["build"] = stepwork.prefix_paths(outcome.record, step_rel) | {"config": config_name}
        stepwork.save_warnings(step_dir, outcome.warnings)
        previous = outcome.warnings
        progress.build_done(k, step["build"])
        if outcome.disk_full:
            record.write(run_dir, rec)
            stepwork.raise_disk_full(step_dir)
        rec.pop("current", None)
        if opts.boot and step["build"]["status"] == "pass":
            boot_step(opts, rec, step, run_dir, progress)
        record.write(run_dir, rec)
    record.stage_time(rec, f"build:{config_name}", t_build)
