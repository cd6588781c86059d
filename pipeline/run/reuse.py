"""Which steps of a run were done before: each config's reuse keys, the look-up of an earlier
step with the same key, and linking its files into this run.

Reads the configs (configs/, the base's defconfig), the suites' files, kpipe's own code and
tool versions (for the keys) and earlier runs' records (pipeline/record/keys.py); writes links
to the earlier steps' files into this run's step directories (link). A whole step (built,
booted, tested) is reused by its key; a booting run also reuses a step that was only built
before (its build key): the look-up says so (Reusable.boot_here) and the run boots it
(pipeline/run/walk.py). Nothing here boots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.boot import suites as suitemod
from pipeline.build import kconfig
from pipeline.fanout import plan as planmod
from pipeline.intake import apply
from pipeline.options import RunOptions
from pipeline.record import keys as steps


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
    suite_dirs = [suitemod.suite_dir(s) for s in suitemod.for_run(opts.boot, opts.suites)]
    plan = {}
    for name in opts.configs:
        spec = kconfig.load_spec(name, opts.fragments)
        spec_hash = kconfig.spec_hash(spec, read_tree_file)
        if frozen and frozen.get(name) != spec_hash:
            raise planmod.PlanError(f"config {name}: its files here (configs/, the base's "
                                    f"defconfig) differ from the plan's (hash {spec_hash}, "
                                    f"plan {frozen.get(name)})")
        build_extra = {"config_name": name, **steps.build_inputs()}
        extra = {**build_extra, "boot": opts.boot, "suites": steps.suite_hashes(suite_dirs)}
        if opts.boot:
            extra |= boot_inputs(name) | steps.boot_key(guest_memory(opts), opts.slow_steps)
        keys = [steps.step_key(base_commit, patch_ids[:k], spec_hash, extra)
                for k in range(len(patch_files) + 1)]
        build_keys = [steps.step_key(base_commit, patch_ids[:k], spec_hash, build_extra)
                      for k in range(len(patch_files) + 1)]
        plan[name] = ConfigPlan(spec, spec_hash, keys, build_keys)
    return plan


def guest_memory(opts: RunOptions) -> int | None:
    """The most guest memory any of the run's suites asks for (None when one cannot be read:
    the boot then records why)."""
    try:
        loaded = [suitemod.load_suite(n) for n in suitemod.for_run(opts.boot, opts.suites)]
    except suitemod.SuiteError:
        return None
    return suitemod.guest_memory(loaded, 0) or None


def boot_inputs(config: str) -> dict:
    """What a booted step's result depends on beyond its build: the boot settings (but where
    vng lives), kpipe's judging code, configs/, virtme-tests/, the QEMU and vng versions."""
    from pipeline.boot import step as bootstep  # imported only by runs that boot

    settings = bootstep.settings_for(config)
    record = bootstep.settings_record(settings)
    record.pop("vng")
    return {"boot_settings": record, **steps.result_inputs(settings.vng)}


@dataclass(frozen=True)
class Reusable:
    """An earlier run's step that this step can take: what to link, and whether to boot it.

    `whole`: it was built, booted and tested there, so every file of it is linked; else only
    its build is linked and the run boots the step here (`boot_here`).
    """

    run: str
    step: dict
    whole: bool

    @property
    def boot_here(self) -> bool:
        return not self.whole


def reusable(opts: RunOptions, cp: ConfigPlan, k: int, run_id: str) -> Reusable | None:
    """The earlier run's step this step can reuse, or None (it looks; it links nothing)."""
    if opts.no_cache:
        return None
    if found := steps.find_reusable(cp.keys[k], run_id):
        return Reusable(*found, whole=True)
    if not opts.boot:
        return None
    found = steps.find_reusable(cp.build_keys[k], run_id, "build_key")
    if found and found[1]["build"]["status"] == "pass":
        return Reusable(*found, whole=False)
    return None


def link(found: Reusable, step: dict, step_dir: Path, step_rel: str) -> dict:
    """This step as it is once the earlier files are linked into step_dir: the earlier step
    whole, or `step` with the earlier build (artifacts, log, warnings) linked in and boot,
    tests and splats left to do."""
    if found.whole:
        return steps.link_step_files(found.run, found.step, step_dir, step_rel)
    linked = steps.link_step_files(found.run, found.step, step_dir, step_rel, build_only=True)
    origin = found.step.get("build_reused_from") or linked["reused_from"]
    reused = {**step, "build": linked["build"], "build_reused_from": origin}
    if "config_recheck" in linked:
        reused["config_recheck"] = linked["config_recheck"]
    return reused


def all_reusable(opts: RunOptions, plan: dict[str, ConfigPlan], run_id: str,
                 ranges: dict[str, tuple[int, int]]) -> dict[str, list[Reusable]] | None:
    """config -> what each step it walks reuses, when every one of them can; else None."""
    found = {name: [reusable(opts, plan[name], k, run_id) for k in range(first, last + 1)]
             for name, (first, last) in ranges.items()}
    if not all(all(f is not None for f in seq) for seq in found.values()):
        return None
    return found  # type: ignore[return-value]  # no None left
