"""Merging the partial records of a plan's shards into one run.

Reads partial run directories (each the --run-dir of `kpipe run --plan --shard N`: its
results.json, series/ and steps/); writes a new run directory (reports/runs/<run-id>/ or the
given one) whose results.json holds every step in the order a one-machine run walks them, the
verdicts computed over all of them, and the shards that ran them; the steps' logs and artifacts
are hard-linked (or copied) from the partials. Every check runs before anything is written, and
the partials are only read: bad input (a partial missing or from another plan or kpipe version,
a shard given twice or missing, a step missing or its files gone) is a MergeError (exit 2).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline import paths
from pipeline.errors import BadInput
from pipeline.record import keys as steps
from pipeline.record import store as record
from pipeline.record import verdicts
from pipeline.record.store import kpipe_version

# A failed shard makes the merged run fail the same way; the first such shard names the status.
FAILED = {"bad-input": 2, "infra-error": 3, "interrupted": 130, "running": 3}


class MergeError(BadInput):
    """The partials cannot be merged as given (exit code 2)."""


@dataclass
class Partial:
    path: Path
    record: dict

    @property
    def shard(self) -> int:
        return self.record["plan"]["shard"]


def read_partial(arg: Path) -> Partial:
    run_dir = arg.parent if arg.name == "results.json" else arg
    try:
        rec = record.load(run_dir)
    except OSError as exc:
        raise MergeError(f"{arg}: no partial record here ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise MergeError(f"{arg}: results.json is not JSON: {exc}") from exc
    if rec.get("schema") != record.SCHEMA:
        raise MergeError(f"{arg}: record schema {rec.get('schema')!r}, this kpipe reads "
                         f"{record.SCHEMA!r}")
    if rec.get("kpipe_version") != kpipe_version():
        raise MergeError(f"{arg}: made by kpipe {rec.get('kpipe_version')}, this is kpipe "
                         f"{kpipe_version()}")
    if "shard" not in rec.get("plan", {}):
        raise MergeError(f"{arg}: not a shard's record (made without --plan ... --shard)")
    return Partial(run_dir, rec)


def check(partials: list[Partial]) -> None:
    """Same plan, each shard once, all shards there, each complete shard with all its steps."""
    if not partials:
        raise MergeError("no partial records given")
    ids = {p.record["plan"]["id"] for p in partials}
    if len(ids) > 1:
        raise MergeError("the partials come from different plans: "
                         + ", ".join(f"{p.path} (plan {p.record['plan']['id']})"
                                     for p in partials))
    seen: dict[int, Path] = {}
    for p in partials:
        if p.shard in seen:
            raise MergeError(f"shard {p.shard} given twice: {seen[p.shard]} and {p.path}")
        seen[p.shard] = p.path
    table = partials[0].record["plan"]["shards"]
    missing = [s["n"] for s in table if s["n"] not in seen]
    if missing:
        raise MergeError(f"shard(s) {', '.join(map(str, missing))} of {len(table)} missing: "
                         "each shard's partial record is needed")
    for p in partials:
        if p.record["status"] == "complete":
            _check_steps(p, next(s for s in table if s["n"] == p.shard))


def _check_steps(p: Partial, shard: dict) -> None:
    want = {(r["config"], k) for r in shard["ranges"] for k in range(r["first"], r["last"] + 1)}
    have = [(s["config"], s["index"]) for s in p.record["steps"]]
    if sorted(have) != sorted(want):
        raise MergeError(f"{p.path}: shard {p.shard} should hold steps "
                         f"{_steps_text(want)}, it holds {_steps_text(set(have))}")
    for s in p.record["steps"]:
        for rel in [s["build"].get("log"), *s["build"].get("artifacts", {}).values()]:
            if rel and not (p.path / rel).is_file():
                raise MergeError(f"{p.path}: {rel} is missing (was the partial uploaded "
                                 "whole, hidden files such as .config included?)")


def _steps_text(pairs: set[tuple[str, int]]) -> str:
    return ", ".join(f"{c}/{k}" for c, k in sorted(pairs)) or "none"


def _config_order(partials: list[Partial]) -> list[str]:
    order: list[str] = []
    for s in partials[0].record["plan"]["shards"]:
        order += [r["config"] for r in s["ranges"] if r["config"] not in order]
    return order


def merged_record(partials: list[Partial], run_id: str, argv: list[str]) -> dict:
    """One record from the partials (checked by `check`), as a one-machine run writes it."""
    partials = sorted(partials, key=lambda p: p.shard)
    first = partials[0].record
    rec = record.new_record(run_id, argv)
    rec["series"], rec["base"] = first["series"], first["base"]
    rec["plan"] = {k: v for k, v in first["plan"].items() if k != "shard"}
    if all("overlap" in p.record for p in partials):  # each shard's boots overlapped its builds
        rec["overlap"] = all(p.record["overlap"] for p in partials)
    order = _config_order(partials)
    configs: dict[str, dict] = {}
    for p in partials:
        for c in p.record["configs"]:
            if c["name"] in configs and configs[c["name"]] != c:
                raise MergeError(f"config {c['name']}: shard {p.shard} has another final "
                                 "config than an earlier shard (different trees or configs/?)")
            configs.setdefault(c["name"], c)
    rec["configs"] = [configs[name] for name in order if name in configs]
    all_steps = [s for p in partials for s in p.record["steps"]]
    rec["steps"] = sorted(all_steps, key=lambda s: (order.index(s["config"]), s["index"]))
    for p in partials:
        for name, seconds in p.record.get("stages", {}).items():
            rec["stages"][name] = round(rec["stages"].get(name, 0) + seconds, 1)
        if p.record["host"].get("accel") and not rec["host"].get("accel"):
            for key in ("accel", "accel_reason", "cpu_model"):
                rec["host"][key] = p.record["host"].get(key)
    rec["shards"] = [{"n": p.shard, "run_id": p.record["run_id"], "status": p.record["status"],
                      "error": p.record.get("error"), "host": p.record["host"],
                      "stages": p.record.get("stages", {}),
                      "ranges": next(s["ranges"] for s in first["plan"]["shards"]
                                     if s["n"] == p.shard)} for p in partials]
    failed = [p for p in partials if p.record["status"] != "complete"]
    rec["verdicts"] = verdicts.compute(rec["steps"]) if rec["steps"] else []
    if failed:
        rec["status"] = failed[0].record["status"]
        rec["exit_code"] = FAILED.get(rec["status"], 3)
        rec["error"] = "; ".join(f"shard {p.shard}: {p.record.get('error') or p.record['status']}"
                                 for p in failed)
    else:
        rec["status"] = "complete"
        rec["exit_code"] = verdicts.exit_code(rec)
    return rec


def merge(args: list[Path], run_dir: Path | None, argv: list[str]) -> tuple[int, Path]:
    """Check and merge the partials into a new run directory; return its exit code and path."""
    partials = [read_partial(a) for a in args]
    check(partials)
    run_id = record.new_run_id()
    rec = merged_record(partials, run_id, argv)
    run_dir = run_dir or paths.runs_dir() / run_id
    if run_dir.exists() and any(run_dir.iterdir()):
        raise MergeError(f"{run_dir} is not empty: the merged run needs a new directory")
    try:
        _link_files(sorted(partials, key=lambda p: p.shard), run_dir)
        record.write(run_dir, rec)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return rec["exit_code"], run_dir


def _link_files(partials: list[Partial], run_dir: Path) -> None:
    """The series and apply logs (the same in every shard) once; each step's own directory."""
    run_dir.mkdir(parents=True, exist_ok=True)
    steps.link_tree(partials[0].path / "series", run_dir / "series")
    for p in partials:
        apply_logs = p.path / "steps" / "apply"
        if apply_logs.is_dir() and not (run_dir / "steps" / "apply").exists():
            steps.link_tree(apply_logs, run_dir / "steps" / "apply")
        for s in p.record["steps"]:
            src = p.path / s["dir"]
            if src.is_dir():
                steps.link_tree(src, run_dir / s["dir"])
