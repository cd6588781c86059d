"""Which steps of a run were done before: each config's reuse keys, the look-up of an earlier
step with the same key, and linking its files into this run.

Reads the configs (configs/, the base's defconfig), the suites' files and earlier runs'
records (pipeline/steps.py); writes links to the earlier steps' files into this run's step
directories and their entries into the record. A whole step (built, booted, tested) is reused
by its key; a booting run also reuses a step that was only built before (its build key) and
boots it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline import paths
from pipeline.build import kconfig
from pipeline.fanout import plan as planmod
from pipeline.intake import apply
from pipeline.progress import Progress
from pipeline.record import keys as steps
from pipeline.record import store as record
from pipeline.run.boot_steps import boot_step, suite_names
from pipeline.run.options import RunOptions


@dataclass
class ConfigPlan:
    """One config's walk over the steps: its spec, hash and each step's reuse keys (whole
    result, build alone)."""

    spec: kconfig.ConfigSpec
    hash: str
    keys: list[str]
    build_keys: list[str]


def plan_configs(opts: RunOptions, tree_path: Path, base_commit: str,
                 patch_files: list[Path]) -> dict[str, ConfigPlan]:
    """config name -> its ConfigPlan; a plan's frozen config hash must match the files here."""
    read_tree_file = kconfig.git_reader(tree_path, base_commit)
    frozen = {c["name"]: c["hash"] for c in (opts.plan or {}).get("configs", [])}
    patch_ids = [apply.patch_id(p) for p in patch_files]
    suite_dirs = [paths.VIRTME_TESTS_DIR / s for s in suite_names(opts)]
    plan = {}
    for name in opts.configs:
        spec = kconfig.load_spec(name, opts.fragments)
        spec_hash = kconfig.spec_hash(spec, read_tree_file)
        if frozen and frozen.get(name) != spec_hash:
            raise planmod.PlanError(f"config {name}: its files here (configs/, the base's "
                                    f"defconfig) differ from the plan's (hash {spec_hash}, "
                                    f"plan {frozen.get(name)})")
        extra = {"boot": opts.boot, "suites": steps.suite_hashes(suite_dirs), "config_name": name}
        if opts.boot and spec.boot_timeout:
            extra["boot_timeout"] = spec.boot_timeout
        keys = [steps.step_key(base_commit, patch_ids[:k], spec_hash, extra)
                for k in range(len(patch_files) + 1)]
        build_keys = [steps.step_key(base_commit, patch_ids[:k], spec_hash, {"config_name": name})
                      for k in range(len(patch_files) + 1)]
        plan[name] = ConfigPlan(spec, spec_hash, keys, build_keys)
    return plan


def reusable(opts: RunOptions, cp: ConfigPlan, k: int,
             run_id: str) -> tuple[bool, str, dict] | None:
    """(whole step?, run, step) of an earlier run this step can reuse, or None."""
    if opts.no_cache:
        return None
    if found := steps.find_reusable(cp.keys[k], run_id):
        return True, *found
    if not opts.boot:
        return None
    found = steps.find_reusable(cp.build_keys[k], run_id, "build_key")
    if found and found[1]["build"]["status"] == "pass":
        return False, *found
    return None


def reuse_build(found: tuple[str, dict], step: dict, step_dir: Path, step_rel: str) -> dict:
    """This step with an earlier run's build (artifacts, log, warnings) linked in; boot,
    tests and splats stay to be done."""
    src_run, src_step = found
    linked = steps.link_step_files(src_run, src_step, step_dir, step_rel, build_only=True)
    origin = src_step.get("build_reused_from") or linked["reused_from"]
    reused = {**step, "build": linked["build"], "build_reused_from": origin}
    if "config_recheck" in linked:
        reused["config_recheck"] = linked["config_recheck"]
    return reused


def reuse_everything(opts: RunOptions, plan: dict[str, ConfigPlan], rec: dict, run_dir: Path,
                     progress: Progress, ranges: dict[str, tuple[int, int]]) -> bool:
    """When every step this run walks was done before, or at least built before (then it is
    booted here), link them all: no checkout, no make."""
    found = {name: [reusable(opts, plan[name], k, rec["run_id"])
                    for k in range(first, last + 1)]
             for name, (first, last) in ranges.items()}
    if not all(all(f is not None for f in seq) for seq in found.values()):
        return False
    for name, seq in found.items():
        cp = plan[name]
        for k, (whole, src_run, src_step) in enumerate(seq, start=ranges[name][0]):
            step_rel = f"steps/{name}/{k}"
            if whole:
                rec["steps"].append(steps.link_step_files(src_run, src_step,
                                                          run_dir / step_rel, step_rel))
                continue
            fresh = {**src_step, "key": cp.keys[k], "build_key": cp.build_keys[k],
                     "reused_from": None, "dir": step_rel, "tests": [], "splats": [],
                     "boot": {"status": "not-run"}}
            step = reuse_build((src_run, src_step), fresh, run_dir / step_rel, step_rel)
            rec["steps"].append(step)
            progress.info(f"step {k} [{name}]: build reused from run "
                          f"{step['build_reused_from']}; booting it")
            boot_step(opts, rec, step, run_dir, progress)
        rec["configs"].append(steps.config_record(seq[0][1], name))
        booted = sum(not whole for whole, _, _ in seq)
        progress.info(f"config {name}: all {len(seq)} steps reused from earlier runs"
                      + (f" ({booted} built there, booted here)" if booted else ""))
    record.write(run_dir, rec)
    return True
