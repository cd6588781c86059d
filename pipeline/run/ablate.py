"""`kpipe ablate SERIES`: which hunks of a series any fast suite needs.

The series is read and applied as `kpipe run` does (main.intake, apply_series); its whole
diff base..tip is split hunk by hunk (pipeline/intake/hunks.py) and, for each hunk, the tip
with only that hunk reverse-applied is built in the run's build place (its config's O=
directory; pipeline/intake/pool.py), in the sandbox unless --no-sandbox, and booted with the
fast suites only (those whose suite.toml `steps` rule is "all").
The tip itself is the baseline (an earlier result with its key, else booted here once):
each hunk ends "needed-to-build" (the build fails), "needed" (cases that pass at the tip and
not with the hunk reverted, in `needed_by`, and "splat: <kind>" for a kernel report the tip
did not have: a kmemleak leak, say), "unnoticed" (no test and no splat check notices it) or
"error" when the boot could not say.

Reads the series, the tree, configs/, the suites and earlier runs' ablation sections (a hunk
whose key was ablated before is linked, not rebuilt); writes the record's `ablation` section
(never steps: verdicts do not see it), one directory per hunk (ablation/<n>/: the one-hunk
patch, build log, artifacts, boot/) and the one-hunk patches under ablation/hunks/.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from pipeline import paths
from pipeline.boot import suites as suitemod
from pipeline.build import kconfig
from pipeline.build.make import build
from pipeline.errors import BadInput, InfraError
from pipeline.intake import apply, apply_series, hunks, pool
from pipeline.options import RunOptions
from pipeline.progress import Progress
from pipeline.record import keys
from pipeline.record import store as record
from pipeline.report import ablation
from pipeline.run import main, step_ops
from pipeline.run.boot_steps import boot_step
from pipeline.run.reuse import plan_configs


def fast_suites(opts: RunOptions) -> list[str]:
    """The run's suites whose steps rule is "all" (slow ones are left out of an ablation)."""
    names = suitemod.for_run(True, opts.suites)
    return [n for n in names if suitemod.load_suite(n).steps == "all"]


def ablate(opts: RunOptions, progress: Progress) -> tuple[int, Path]:
    """One ablation run: a record with no steps and its `ablation` section."""
    opts = replace(opts, boot=True, suites=fast_suites(opts))
    code, run_dir = main.run(opts, progress, _ablate)
    try:
        rec = record.load(run_dir)
        if rec.get("ablation"):
            progress.info(f"ablation page: {ablation.write(run_dir, rec)}")
    except Exception as exc:  # noqa: BLE001 (any rendering failure is only reported)
        progress.error(f"could not render the ablation page of {run_dir}: {exc}")
    return code, run_dir


def hunk_key(tip_key: str, hunk_id: str) -> str:
    """A hunk's reuse key: the tip's whole key (base, patches, config, suites, boot settings)
    with the reverted hunk."""
    return keys.step_key("", [], "", {"ablation_of": tip_key, "reverted_hunk": hunk_id})


def _ablate(opts: RunOptions, rec: dict, run_dir: Path, progress: Progress) -> None:
    if len(opts.configs) != 1:
        raise BadInput("kpipe ablate takes one --config")
    info, chosen, patch_files = main.intake(opts, rec, run_dir, progress)
    cplan = plan_configs(opts, info.path, chosen["commit"], patch_files)[opts.configs[0]]
    name = cplan.spec.name
    section: dict = {"config": name, "suites": opts.suites, "tip": None, "hunks": []}
    rec["ablation"] = section
    with pool.place(info.path, chosen["commit"]) as held:
        wt = held.path
        rec["host"]["build_place"] = held.as_dict()
        progress.info(f"build place {wt} ({main.place_state(held)}, {held.seconds:.0f} s)")
        t0 = time.monotonic()
        applied = apply_series.apply_all(wt, patch_files, run_dir, chosen["commit"], progress)
        record.stage_time(rec, "apply", t0)
        if any(s["apply"]["status"] in ("conflict", "blocked") for s in applied):
            raise BadInput("the series does not apply: nothing to ablate")
        commits = [s["commit"] for s in applied[1:]]
        tip = applied[-1]["commit"]
        section["tip"] = tip
        found = hunks.split(wt, chosen["commit"], tip, run_dir / "ablation" / "hunks")
        progress.info(f"ablate: {len(found)} hunks base..tip, suites "
                      f"{', '.join(opts.suites) or 'none'} [{name}]")
        build_dir = wt / f"o-{name}"
        t_all = time.monotonic()
        tip_failing: set[str] | None = None  # made at the first hunk that is not reused
        for h in found:
            rel = f"ablation/{h.index}"
            by, contributors = hunks.introduced_by(wt, h, commits, patch_files)
            entry = {"index": h.index, "file": h.file, "header": h.header,
                     "old": list(h.old), "new": list(h.new), "patch": by,
                     "patches": contributors,
                     "hunk_patch": str(h.patch.relative_to(run_dir)),
                     "key": hunk_key(cplan.keys[-1], h.hunk_id()), "dir": rel,
                     "reused_from": None, "status": "error", "needed_by": [],
                     "build": {"status": "not-run"}, "boot": {"status": "not-run"}}
            section["hunks"].append(entry)
            if not opts.no_cache and (earlier := keys.find_ablation(entry["key"],
                                                                    rec["run_id"])):
                keys.link_tree(paths.runs_dir() / earlier[0] / earlier[1]["dir"],
                               run_dir / rel)
                for field in ("status", "needed_by", "build", "boot", "tests", "splats"):
                    if field in earlier[1]:
                        entry[field] = earlier[1][field]
                entry["reused_from"] = earlier[1].get("reused_from") or earlier[0]
                _done(progress, entry, len(found))
                record.write(run_dir, rec)
                continue
            if tip_failing is None:
                tip_failing = _tip_baseline(opts, rec, cplan.spec, cplan.keys[-1], wt,
                                            build_dir, len(patch_files), run_dir, progress)
            step_ops.checkout(wt, tip)
            revert = apply._git(wt, "apply", "-R", str(h.patch))
            if revert.returncode != 0:
                raise InfraError(f"hunk {h.index} does not reverse-apply on the tip: "
                                 f"{revert.stderr.strip()}")
            progress.stage("build", f"hunk {h.index}/{len(found)}: {h.file} {h.header} "
                                    "reverted")
            rec["current"] = {"step": h.index, "config": name, "stage": "ablation build"}
            record.write(run_dir, rec)
            outcome = build(wt, build_dir, f"-kpipe-ablate{h.index}", run_dir / rel, [],
                            opts.jobs, progress.build_unit,
                            step_ops.jail(opts.sandbox, wt, build_dir, False))
            _restore(wt)
            if outcome.disk_full:
                step_ops.raise_disk_full(run_dir / rel)
            entry["build"] = step_ops.prefix_paths(outcome.record, rel) | {"config": name}
            if entry["build"]["status"] != "pass":
                entry["status"] = "needed-to-build"
            else:
                pseudo = {"index": len(patch_files), "config": name, "dir": rel,
                          "localversion": f"-kpipe-ablate{h.index}", "tests": [],
                          "splats": []}
                boot_step(opts, rec, pseudo, run_dir, progress)
                entry["boot"], entry["tests"] = pseudo["boot"], pseudo["tests"]
                entry["splats"] = pseudo["splats"]
                failing = [f"{t['suite']}/{t['case']}" for t in pseudo["tests"]
                           if t["status"] not in ("pass", "skip")
                           and f"{t['suite']}/{t['case']}" not in tip_failing]
                failing += _new_splats(pseudo["splats"], rec["ablation"]["tip_baseline"])
                entry["needed_by"] = failing
                if failing:
                    entry["status"] = "needed"
                elif pseudo["boot"]["status"] == "pass":
                    entry["status"] = "unnoticed"
                else:
                    entry["status"] = "needed" if pseudo["boot"]["status"] == "fail" else "error"
                    entry["needed_by"] = [f"boot: {pseudo['boot'].get('detail', '')}"]
            rec.pop("current", None)
            _done(progress, entry, len(found))
            record.write(run_dir, rec)
        record.stage_time(rec, "ablation", t_all)


def _tip_baseline(opts: RunOptions, rec: dict, spec: kconfig.ConfigSpec, tip_key: str,
                  wt: Path, build_dir: Path, n_patches: int, run_dir: Path,
                  progress: Progress) -> set[str]:
    """What the tip itself gives, so that a hunk is "needed" only by cases that pass at the
    tip: an earlier run's tip step with the same key when there is one, else the tip booted
    here (ablation/tip/). Always leaves the tip built in build_dir, so that each hunk's build
    recompiles only what the hunk touches. Returns the cases failing at the tip (left out of
    every `needed_by`); a tip that does not build or boot is bad input (nothing can be said of
    a hunk), kept in the section's `tip_baseline`."""
    section = rec["ablation"]
    rel = "ablation/tip"
    base = {"commit": section["tip"], "key": tip_key, "reused_from": None,
            "build": {"status": "not-run"}, "boot": {"status": "not-run"}, "tests": []}
    section["tip_baseline"] = base
    step_ops.checkout(wt, section["tip"])
    step_ops.configure(spec, wt, build_dir, opts.sandbox)
    progress.stage("build", "the tip, as the baseline of every hunk")
    outcome = build(wt, build_dir, "-kpipe-ablate-tip", run_dir / rel, [], opts.jobs,
                    progress.build_unit, step_ops.jail(opts.sandbox, wt, build_dir, False))
    if outcome.disk_full:
        step_ops.raise_disk_full(run_dir / rel)
    base["build"] = step_ops.prefix_paths(outcome.record, rel)
    if base["build"]["status"] != "pass":
        record.write(run_dir, rec)
        raise BadInput(f"the series' tip does not build ({run_dir / rel / 'build.log'}): "
                       "no hunk can be judged")
    earlier = None if opts.no_cache else keys.find_tip_baseline(tip_key, rec["run_id"])
    if earlier:
        base["boot"], base["tests"] = earlier[1]["boot"], earlier[1]["tests"]
        base["splats"] = earlier[1].get("splats", [])
        base["reused_from"] = earlier[1].get("reused_from") or earlier[0]
    else:
        pseudo = {"index": n_patches, "config": section["config"], "dir": rel,
                  "localversion": "-kpipe-ablate-tip", "tests": [], "splats": []}
        boot_step(opts, rec, pseudo, run_dir, progress)
        base["boot"], base["tests"] = pseudo["boot"], pseudo["tests"]
        base["splats"] = pseudo["splats"]
    record.write(run_dir, rec)
    if base["boot"]["status"] == "error":
        raise BadInput(f"the series' tip could not be booted ({run_dir / rel}): "
                       f"{base['boot'].get('detail', '')}; no hunk can be judged")
    failing = {f"{t['suite']}/{t['case']}" for t in base["tests"]
               if t["status"] not in ("pass", "skip")}
    reused = f" (reused from run {base['reused_from']})" if base["reused_from"] else ""
    progress.info(f"ablate: the tip {len(base['tests']) - len(failing)}/{len(base['tests'])} "
                  f"cases pass{reused}"
                  + (f"; left out of every hunk's result: {', '.join(sorted(failing))}"
                     if failing else ""))
    return failing


def _new_splats(found: list[dict], tip: dict) -> list[str]:
    """The splat checks a hunk's revert trips: kernel reports (a kmemleak leak, a lockdep or
    KASAN report, a warning) that are not allow-listed and that the tip's own boot did not
    have, each kind named once ("splat: kmemleak")."""
    at_tip = {(s["kind"], s["title"]) for s in tip.get("splats", [])}
    kinds = [s["kind"] for s in found
             if not s.get("allowed") and (s["kind"], s["title"]) not in at_tip]
    return [f"splat: {kind}" for kind in dict.fromkeys(kinds)]


def _restore(wt: Path) -> None:
    """Put the build place back at its HEAD (the tip) after a hunk's build."""
    proc = apply._git(wt, "checkout", "-q", "-f", "HEAD", "--", ".")
    if proc.returncode != 0:
        raise InfraError(f"could not restore the build place: {proc.stderr.strip()}")


def _done(progress: Progress, entry: dict, total: int) -> None:
    reused = f" (reused from run {entry['reused_from']})" if entry["reused_from"] else ""
    progress.info(f"hunk {entry['index']}/{total} {entry['file']} (patch "
                  f"{entry['patch'] or '?'}): {ablation.verdict(entry)}{reused}")
