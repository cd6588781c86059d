"""One kpipe run: series -> base -> apply -> kconfig -> build (-> boot+test) -> record.

Reads the series argument (or a plan, pipeline/plan.py), the kernel tree and configs/; writes
reports/runs/<run-id>/ (or the --run-dir) with results.json (rewritten atomically after every
stage and step), the series, and one directory per step (steps/<config>/<k>/) holding its logs
and artifacts; at the end, report.html (and the viewer index of the reports dir), whose failure
is reported but changes nothing else. Returns the exit code of DESIGN.md: 0 good, 1 a bad
verdict or failing tip, 2 bad input, 3 infrastructure error, 130 interrupted. The worktree (and
the O= directories inside it) is removed on every path.

A shard of a plan walks only its ranges of steps. Before a range that does not start at the
base it builds the step before the range (the lead-in, not recorded) so that the warnings in
force, and so the new ones, are those a walk from the base would see. A shard's record is
partial: no verdicts (the merge computes them) and exit code 0 once complete.
"""

from __future__ import annotations

import errno
import json
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline import apply, base, kconfig, paths, record, series, steps, tree, verdicts
from pipeline import plan as planmod
from pipeline import warnings as diag
from pipeline.build import build
from pipeline.progress import Progress
from pipeline.worktree import WorktreeError, worktree

if TYPE_CHECKING:  # bootstep is imported only by runs that boot
    from pipeline.bootstep import BootSettings

KCONFIG_FILES = ("Kconfig", "kvm_guest.config", "x86_64_defconfig")


@dataclass
class RunOptions:
    series: str
    tree: Path | None = None
    base: str | None = None
    base_remote: str | None = None
    revision: int | None = None
    allow_partial: bool = False
    configs: list[str] = field(default_factory=lambda: ["default"])
    fragments: list[str] = field(default_factory=list)
    no_cache: bool = False
    boot: bool = False
    suites: list[str] = field(default_factory=list)
    jobs: int | None = None
    lore: str | None = None
    argv: list[str] = field(default_factory=list)
    plan: dict | None = None
    shard: int | None = None
    run_dir: Path | None = None

    @classmethod
    def from_plan(cls, plan: dict, shard: int | None = None, **kw) -> RunOptions:
        """The options a plan fixes (configs, fragments, boot, suites), plus this machine's."""
        opts = plan["options"]
        return cls(series="", configs=list(opts["configs"]), fragments=list(opts["fragments"]),
                   boot=opts["boot"], suites=list(opts["suites"]), plan=plan, shard=shard, **kw)


class InfraError(Exception):
    """Something kpipe needs is missing or broken (exit code 3)."""


def run(opts: RunOptions, progress: Progress) -> tuple[int, Path]:
    run_id = record.new_run_id()
    run_dir = opts.run_dir or paths.runs_dir() / run_id
    run_dir.mkdir(parents=True, exist_ok=opts.run_dir is not None)
    rec = record.new_record(run_id, opts.argv)
    if opts.plan is not None:
        rec["plan"] = planmod.summary(opts.plan, opts.shard)
    record.write(run_dir, rec)
    progress.info(f"run {run_id}: {run_dir}")
    try:
        _run(opts, rec, run_dir, progress)
        rec["status"] = "complete"
        if opts.shard is None:
            rec["verdicts"] = verdicts.compute(rec["steps"])
            rec["exit_code"] = verdicts.exit_code(rec)
        else:  # a partial record: the merge computes the verdicts over every shard
            rec["exit_code"] = 0
    except (series.SeriesError, base.BaseError, kconfig.KconfigError,
            planmod.PlanError) as exc:
        _fail(rec, "bad-input", 2, str(exc), progress)
    except FileNotFoundError as exc:
        _fail(rec, "infra-error", 3, f"tool or file missing: {exc.filename or exc}", progress)
    except (InfraError, WorktreeError, tree.TreeError, kconfig.KconfigToolError) as exc:
        _fail(rec, "infra-error", 3, str(exc), progress)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        _fail(rec, "infra-error", 3, f"disk full: {exc}", progress)
    except KeyboardInterrupt:
        _fail(rec, "interrupted", 130, "interrupted (Ctrl-C or SIGTERM)", progress)
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
    """The stage that was cut short is named in the record; its status stays `not-run`."""
    current = rec.pop("current", None)
    if current and rec["status"] != "complete":
        rec["error"] = (rec["error"] or "") + (
            f" (during {current['stage']} of step {current['step']} [{current['config']}])")


def _stage(rec: dict, name: str, start: float) -> None:
    rec["stages"][name] = round(time.monotonic() - start, 1)


def _run(opts: RunOptions, rec: dict, run_dir: Path, progress: Progress) -> None:
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
    _stage(rec, "series", t0)
    record.write(run_dir, rec)

    t0 = time.monotonic()
    progress.stage("tree", "opening the kernel tree (first use imports the Debian tarball)")
    info = tree.open_tree(opts.tree)
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
    _stage(rec, "base", t0)
    record.write(run_dir, rec)

    patch_files = apply.split_mbox(run_dir / rec["series"]["mbox"],
                                   run_dir / "series" / "patches")
    plan = _plan(opts, info.path, chosen["commit"], patch_files)
    ranges = _ranges(opts, len(patch_files))
    if _reuse_everything(opts, plan, rec, run_dir, progress, ranges):
        return
    with worktree(info.path, chosen["commit"], f"run-{rec['run_id']}") as wt:
        t0 = time.monotonic()
        applied = _apply_all(wt, patch_files, run_dir, chosen["commit"], progress)
        _stage(rec, "apply", t0)
        for config_name, (first, last) in ranges.items():
            _walk_config(opts, rec, run_dir, wt, plan[config_name], applied, patch_files,
                         progress, first, last)


def _ranges(opts: RunOptions, patches: int) -> dict[str, tuple[int, int]]:
    """config -> (first, last) step this run walks: all of them unless it runs a shard."""
    if opts.plan is None:
        return {name: (0, patches) for name in opts.configs}
    if opts.plan["steps"] != patches + 1:
        raise planmod.PlanError(f"the plan's series has {opts.plan['steps'] - 1} patches, "
                                f"its mbox {patches}")
    wanted = planmod.shard_ranges(opts.plan, opts.shard)
    return {name: wanted[name] for name in opts.configs if name in wanted}


@dataclass
class ConfigPlan:
    """One config's walk over the steps: its spec, hash and each step's reuse keys (whole
    result, build alone)."""

    spec: kconfig.ConfigSpec
    hash: str
    keys: list[str]
    build_keys: list[str]


def _plan(opts: RunOptions, tree_path: Path, base_commit: str,
          patch_files: list[Path]) -> dict[str, ConfigPlan]:
    read_tree_file = kconfig.git_reader(tree_path, base_commit)
    frozen = {c["name"]: c["hash"] for c in (opts.plan or {}).get("configs", [])}
    patch_ids = [apply.patch_id(p) for p in patch_files]
    suite_dirs = [paths.VIRTME_TESTS_DIR / s for s in _suite_names(opts)]
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


def _suite_names(opts: RunOptions) -> list[str]:
    if not opts.boot:
        return []
    from pipeline import suites as suitemod

    return opts.suites or suitemod.chosen_suites()


def _reuse_everything(opts: RunOptions, plan: dict[str, ConfigPlan], rec: dict, run_dir: Path,
                      progress: Progress, ranges: dict[str, tuple[int, int]]) -> bool:
    """When every step this run walks was done before, or at least built before (then it is
    booted here), link them all: no checkout, no make."""
    found = {name: [_reusable(opts, plan[name], k, rec["run_id"])
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
            step = _reuse_build((src_run, src_step), fresh, run_dir / step_rel, step_rel)
            rec["steps"].append(step)
            progress.info(f"step {k} [{name}]: build reused from run "
                          f"{step['build_reused_from']}; booting it")
            _boot_step(opts, rec, step, run_dir, progress)
        rec["configs"].append(steps.config_record(seq[0][1], name))
        booted = sum(not whole for whole, _, _ in seq)
        progress.info(f"config {name}: all {len(seq)} steps reused from earlier runs"
                      + (f" ({booted} built there, booted here)" if booted else ""))
    record.write(run_dir, rec)
    return True


def _reusable(opts: RunOptions, cp: ConfigPlan, k: int,
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


def _boot_step(opts: RunOptions, rec: dict, step: dict, run_dir: Path,
               progress: Progress) -> None:
    """Boot one built step, with the record saying so while it runs."""
    rec["current"] = {"step": step["index"], "config": step["config"], "stage": "boot"}
    record.write(run_dir, rec)
    _boot(opts, rec, step, run_dir / step["dir"], step["dir"], progress)
    rec.pop("current", None)
    record.write(run_dir, rec)


def _apply_all(wt: Path, patch_files: list[Path], run_dir: Path, base_commit: str,
               progress: Progress) -> list[dict]:
    """Apply every patch; return per step {commit, apply} (step 0 is the base)."""
    out = [{"commit": base_commit, "apply": {"status": "applied", "detail": "base", "log": None}}]
    blocked_by = None
    for k, patch in enumerate(patch_files, start=1):
        log_rel = f"steps/apply/{k}.log"
        if blocked_by is not None:
            out.append({"commit": None, "apply": {
                "status": "blocked", "detail": f"not tried: patch {blocked_by} did not apply",
                "log": None}})
            continue
        progress.stage("apply", f"patch {k}/{len(patch_files)}")
        result = apply.apply_one(wt, patch, run_dir / log_rel)
        entry = {"status": result.status, "detail": result.detail, "log": log_rel}
        if result.hunks:
            entry["hunks"] = result.hunks
        out.append({"commit": result.commit, "apply": entry})
        if result.status == "conflict":
            blocked_by = k
            progress.error(f"patch {k} does not apply: {result.detail} (log: {log_rel})")
    return out


def _config_record(spec: kconfig.ConfigSpec, final: Path, dropped: list[dict],
                   spec_hash: str) -> dict:
    final_values = kconfig.read_config(final)
    return {"name": spec.name, "fragments": spec.fragments, "requested": spec.requested,
            "final": {s: final_values.get(s, "n") for s in spec.requested},
            "dropped": dropped, "hash": spec_hash}


def _configure(spec: kconfig.ConfigSpec, wt: Path, build_dir: Path) -> list[dict]:
    kconfig.merge(spec, wt, build_dir / ".config")
    proc = kconfig.olddefconfig(wt, build_dir, [])
    if proc.returncode != 0:
        raise InfraError(f"make olddefconfig failed: {proc.stderr.strip()[-400:]}")
    return kconfig.dropped_symbols(spec, build_dir / ".config", wt)


def _walk_config(opts: RunOptions, rec: dict, run_dir: Path, wt: Path, cplan: ConfigPlan,
                 applied: list[dict], patch_files: list[Path], progress: Progress,
                 first: int = 0, last: int | None = None) -> None:
    """Build (and boot) steps first..last of one config, in order, in one O= directory."""
    last = len(applied) - 1 if last is None else last
    spec, spec_hash, config_name = cplan.spec, cplan.hash, cplan.spec.name
    build_dir = wt / f"o-{config_name}"
    t0 = time.monotonic()
    progress.stage("kconfig", f"{config_name}: merging {', '.join(spec.fragments)}")
    dropped = _configure(spec, wt, build_dir)
    rec["configs"].append(_config_record(spec, build_dir / ".config", dropped, spec_hash))
    for d in dropped:
        progress.warn(f"config {config_name}: CONFIG_{d['sym']} dropped ({d['unmet']})")
    _stage(rec, f"kconfig:{config_name}", t0)
    t_build = time.monotonic()
    previous: list[diag.Diagnostic] = []
    if first > 0:
        previous = _lead_in(opts, rec, wt, cplan, applied, patch_files, first - 1, progress)
    for k, step_in in enumerate(applied):
        if not first <= k <= last:
            continue
        step_rel = f"steps/{config_name}/{k}"
        step_dir = run_dir / step_rel
        localversion = _localversion(config_name, k)
        step = _new_step(k, config_name, step_in, step_rel, localversion)
        rec["steps"].append(step)
        if step_in["apply"]["status"] in ("conflict", "blocked"):
            for stage in ("build", "boot"):
                step[stage] = {"status": "blocked", "config": config_name}
            record.write(run_dir, rec)
            continue
        step["key"], step["build_key"] = cplan.keys[k], cplan.build_keys[k]
        found = _reusable(opts, cplan, k, rec["run_id"])
        if found and found[0]:
            reused = steps.link_step_files(found[1], found[2], step_dir, step_rel)
            rec["steps"][-1] = reused
            previous = _load_warnings(step_dir)
            progress.info(f"step {k} [{config_name}]: reused from run {reused['reused_from']}")
            record.write(run_dir, rec)
            continue
        if found:
            step = rec["steps"][-1] = _reuse_build(found[1:], step, step_dir, step_rel)
            previous = _load_warnings(step_dir)
            progress.info(f"step {k} [{config_name}]: build reused from run "
                          f"{step['build_reused_from']}; booting it")
            _boot_step(opts, rec, step, run_dir, progress)
            continue
        _checkout(wt, step_in["commit"])
        if k > 0 and _touches_kconfig(patch_files[k - 1]):
            progress.info(f"patch {k} touches Kconfig: re-checking the config")
            step["config_recheck"] = {"dropped": _configure(spec, wt, build_dir)}
        rec["current"] = {"step": k, "config": config_name, "stage": "build"}
        record.write(run_dir, rec)
        progress.stage("build", f"step {k}/{len(applied) - 1} [{config_name}]")
        outcome = build(wt, build_dir, localversion, step_dir, previous, opts.jobs,
                        progress.build_unit)
        step["build"] = _prefix_paths(outcome.record, step_rel) | {"config": config_name}
        _save_warnings(step_dir, outcome.warnings)
        previous = outcome.warnings
        progress.build_done(k, step["build"])
        if outcome.disk_full:
            record.write(run_dir, rec)
            _raise_disk_full(step_dir)
        rec.pop("current", None)
        if opts.boot and step["build"]["status"] == "pass":
            _boot_step(opts, rec, step, run_dir, progress)
        record.write(run_dir, rec)
    _stage(rec, f"build:{config_name}", t_build)


def _reuse_build(found: tuple[str, dict], step: dict, step_dir: Path, step_rel: str) -> dict:
    """This step with an earlier run's build (artifacts, log, warnings) linked in; boot,
    tests and splats stay to be done."""
    src_run, src_step = found
    linked = steps.link_step_files(src_run, src_step, step_dir, step_rel, build_only=True)
    origin = src_step.get("build_reused_from") or linked["reused_from"]
    reused = {**step, "build": linked["build"], "build_reused_from": origin}
    if "config_recheck" in linked:
        reused["config_recheck"] = linked["config_recheck"]
    return reused


def _localversion(config_name: str, k: int) -> str:
    return f"-kpipe-{config_name}-s{k}" if config_name != "default" else f"-kpipe-s{k}"


def _raise_disk_full(step_dir: Path) -> None:
    raise OSError(errno.ENOSPC, "No space left on device during the build",
                  str(step_dir / "build.log"))


def _lead_in(opts: RunOptions, rec: dict, wt: Path, cplan: ConfigPlan, applied: list[dict],
             patch_files: list[Path], k: int, progress: Progress) -> list[diag.Diagnostic]:
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
    if found := _reusable(opts, cplan, k, rec["run_id"]):  # its build's warnings.json
        progress.info(f"lead-in step {k} [{name}]: warnings from run {found[1]}")
        return _load_warnings(paths.runs_dir() / found[1] / found[2]["dir"])
    build_dir, scratch = wt / f"o-{name}", wt / f"lead-in-{name}"
    tip = next(s["commit"] for s in reversed(applied) if s["commit"])
    configured_at = len(applied)  # the walk merged the config with the tip checked out

    def build_step(j: int, previous: list[diag.Diagnostic]):  # noqa: ANN202 - BuildOutcome
        nonlocal configured_at
        touched = [i for i in range(1, j + 1) if _touches_kconfig(patch_files[i - 1])]
        want = touched[-1] if touched else len(applied)
        if want != configured_at:
            _checkout(wt, applied[j]["commit"] if touched else tip)
            _configure(cplan.spec, wt, build_dir)
            configured_at = want
        _checkout(wt, applied[j]["commit"])
        progress.stage("build", f"lead-in step {j} [{name}] (warnings before the range)")
        outcome = build(wt, build_dir, _localversion(name, j), scratch / str(j), previous,
                        opts.jobs, progress.build_unit)
        if outcome.disk_full:
            _raise_disk_full(scratch / str(j))
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


def _new_step(k: int, config: str, step_in: dict, step_rel: str, localversion: str) -> dict:
    return {"index": k, "config": config, "dir": step_rel, "localversion": localversion,
            "key": "", "patch": k or None, "commit": step_in["commit"],
            "apply": step_in["apply"], "build": {"status": "not-run", "config": config},
            "boot": {"status": "not-run"}, "tests": [], "splats": [], "reused_from": None}


def _prefix_paths(build_rec: dict, step_rel: str) -> dict:
    out = dict(build_rec)
    out["log"] = f"{step_rel}/{build_rec['log']}"
    out["artifacts"] = {k: f"{step_rel}/{v}" for k, v in build_rec["artifacts"].items()}
    return out


def _save_warnings(step_dir: Path, found: list[diag.Diagnostic]) -> None:
    data = [{"file": d.file, "line": d.line, "message": d.message, "unit": d.unit} for d in found]
    (step_dir / "warnings.json").write_text(json.dumps(data, indent=0))


def _load_warnings(step_dir: Path) -> list[diag.Diagnostic]:
    path = step_dir / "warnings.json"
    if not path.exists():
        return []
    return [diag.Diagnostic(d["file"], d["line"], d["message"], d["unit"])
            for d in json.loads(path.read_text())]


def _checkout(wt: Path, commit: str) -> None:
    proc = subprocess.run(["git", "-C", str(wt), "checkout", "-q", "--detach", commit],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise InfraError(f"git checkout {commit[:12]} failed: {proc.stderr.strip()}")


def _touches_kconfig(patch: Path) -> bool:
    return any(Path(f).name.startswith(KCONFIG_FILES) for f in apply.touched_files(patch))


def _boot_settings(config: str, opts: RunOptions) -> BootSettings:
    """The default boot settings, with the named config's own boot timeout if it has one."""
    from pipeline import bootstep

    settings = bootstep.default_settings()
    timeout = kconfig.load_spec(config).boot_timeout  # a named config of configs.toml
    return replace(settings, boot_timeout=float(timeout)) if timeout else settings


def _boot(opts: RunOptions, rec: dict, step: dict, step_dir: Path, step_rel: str,
          progress: Progress) -> None:
    """Boot the step and run its suites (pipeline.bootstep); paths made run-relative."""
    from pipeline import bootstep

    names = _suite_names(opts)
    progress.stage("boot", f"step {step['index']}: booting {step['localversion']}, "
                           f"suites {', '.join(names)}")
    result = bootstep.boot_and_test(
        step_dir / "bzImage", step_dir / "System.map", step_dir / ".config",
        step["localversion"], names, step_dir / "boot", _boot_settings(step["config"], opts))
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
