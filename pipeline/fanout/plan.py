"""The plan of a fanned-out run: the series, its base and configs frozen, split into shards.

`kpipe plan` reads the series (through b4, as a run does), the kernel tree and configs/; it
writes one JSON file (schema `kpipe-plan/1`, pipeline/plan.schema.json) holding everything a
shard needs on another machine: the files b4 wrote for the series (base64), the series summary,
the tree's name (configs/trees.toml; a shard imports that tree), the chosen base with its rule
and remote, each config's name, fragments and hash, the boot and
suite choice, and the shards: ranges of steps per config, in the order a one-machine run walks
them. `kpipe run --plan` reads it back (load, restore_series, ensure_base, shard_ranges).
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import jsonschema

from pipeline import atomic
from pipeline.build import kconfig
from pipeline.errors import BadInput
from pipeline.intake import base, series, tree
from pipeline.record.store import kpipe_version

if TYPE_CHECKING:
    from pipeline.options import RunOptions

SCHEMA = "kpipe-plan/1"
SCHEMA_FILE = Path(__file__).with_name("plan.schema.json")
SERIES_FILES = ("thread.mbox", "series.mbx", "series.cover", "b4-am.log")


class PlanError(BadInput):
    """The plan cannot be made or used as it is: bad input (exit code 2)."""


def split(configs: list[str], steps: int, shards: int) -> list[dict]:
    """Cut the walk (config by config, step 0..steps-1) into at most `shards` even pieces.

    Each shard is {"n": 1-based number, "ranges": [{"config", "first", "last"}]}: one
    contiguous range per config it touches.
    """
    if shards < 1:
        raise PlanError(f"--shards {shards}: at least one shard is needed")
    units = [(name, k) for name in configs for k in range(steps)]
    count = min(shards, len(units))
    out = []
    for i in range(count):
        piece = units[i * len(units) // count:(i + 1) * len(units) // count]
        ranges: list[dict] = []
        for name, k in piece:
            if ranges and ranges[-1]["config"] == name:
                ranges[-1]["last"] = k
            else:
                ranges.append({"config": name, "first": k, "last": k})
        out.append({"n": i + 1, "ranges": ranges})
    return out


def _digest(plan: dict) -> str:
    body = {k: v for k, v in plan.items() if k not in ("id", "created")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def make(req: RunOptions, shards: int) -> dict:
    """Read the series, choose the base, hash the configs and split the steps into shards.

    `req` holds what a run of the series would be given (pipeline.run.main.RunOptions).
    """
    from pipeline.boot import suites as suitemod

    if shards < 1:
        raise PlanError(f"--shards {shards}: at least one shard is needed")
    with tempfile.TemporaryDirectory(prefix="kpipe-plan-") as tmp:
        workdir = Path(tmp)
        ser = series.intake(req.series, workdir, req.revision, req.allow_partial, req.lore)
        files = {name: base64.b64encode((workdir / "series" / name).read_bytes()).decode()
                 for name in SERIES_FILES if (workdir / "series" / name).is_file()}
        info = tree.open_tree(req.tree, name=req.tree_name)
        chosen = base.for_series(info, workdir / "series" / "thread.mbox", ser.revision,
                                 ser.source, req.base, req.base_remote)
    read = kconfig.git_reader(info.path, chosen["commit"])
    configs = []
    for name in req.configs:
        spec = kconfig.load_spec(name, req.fragments)
        configs.append({"name": name, "fragments": spec.fragments,
                        "hash": kconfig.spec_hash(spec, read)})
    steps = len(ser.patches) + 1
    plan = {
        "schema": SCHEMA, "kpipe_version": kpipe_version(),
        "series": ser.to_dict(), "series_files": files, "base": chosen, "base_ref": req.base,
        "options": {"configs": list(req.configs), "fragments": list(req.fragments),
                    "tree_name": None if req.tree else info.name,
                    "boot": req.boot,
                    "suites": suitemod.for_run(req.boot, req.suites),
                    "slow_steps": req.slow_steps},
        "configs": configs, "steps": steps,
        "shards": split(list(req.configs), steps, shards),
    }
    plan["id"] = _digest(plan)
    plan["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    return plan


def write(plan: dict, path: Path) -> None:
    atomic.write_text(path, json.dumps(plan, indent=1) + "\n")


def load(path: Path) -> dict:
    """Read and check a plan: readable, this schema, made by this kpipe version, not altered."""
    try:
        plan = json.loads(path.read_text())
    except OSError as exc:
        raise PlanError(f"plan {path}: cannot read it: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise PlanError(f"plan {path}: not JSON: {exc}") from exc
    if not isinstance(plan, dict) or plan.get("schema") != SCHEMA:
        found = plan.get("schema") if isinstance(plan, dict) else type(plan).__name__
        raise PlanError(f"plan {path}: schema {found!r}, this kpipe reads {SCHEMA!r}")
    if plan.get("kpipe_version") != kpipe_version():
        raise PlanError(f"plan {path} was made by kpipe {plan.get('kpipe_version')}, this is "
                        f"kpipe {kpipe_version()}: make the plan again with this version")
    try:
        jsonschema.validate(plan, json.loads(SCHEMA_FILE.read_text()))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise PlanError(f"plan {path}: invalid at {where}: {exc.message}") from exc
    if _digest(plan) != plan["id"]:
        raise PlanError(f"plan {path}: its content does not match its id {plan['id']} "
                        "(edited or truncated?)")
    return plan


def shard_ranges(plan: dict, n: int | None) -> dict[str, tuple[int, int]]:
    """config -> (first, last) step of shard n; every step of every config when n is None."""
    if n is None:
        return {c["name"]: (0, plan["steps"] - 1) for c in plan["configs"]}
    known = [s["n"] for s in plan["shards"]]
    if n not in known:
        raise PlanError(f"--shard {n}: the plan has shards {known[0]}..{known[-1]}")
    shard = next(s for s in plan["shards"] if s["n"] == n)
    return {r["config"]: (r["first"], r["last"]) for r in shard["ranges"]}


def summary(plan: dict, n: int | None) -> dict:
    """What a record says about the plan it ran (and the shard, when it ran one)."""
    out = {"id": plan["id"], "steps": plan["steps"], "shards": plan["shards"]}
    if n is not None:
        out["shard"] = n
    return out


def restore_series(plan: dict, run_dir: Path) -> dict:
    """Write the plan's series files into run_dir/series/; return the series summary."""
    outdir = run_dir / "series"
    outdir.mkdir(parents=True, exist_ok=True)
    for name, data in plan["series_files"].items():
        (outdir / Path(name).name).write_bytes(base64.b64decode(data))
    return plan["series"]


def ensure_base(plan: dict, tree_path: Path) -> dict:
    """The plan's base record, after making sure its commit is in this machine's tree.

    A commit the tree lacks is fetched from the plan's remote, by id and else by the ref the
    plan was asked for (a branch that has not moved since).
    """
    chosen = plan["base"]
    commit, remote = chosen["commit"], chosen.get("remote")
    if base.resolve(tree_path, commit) == commit:
        return chosen
    for rev in (commit, plan.get("base_ref")):
        if remote and rev and base.fetch(tree_path, remote, rev) \
                and base.resolve(tree_path, commit) == commit:
            return chosen
    raise base.BaseError(f"the plan's base {commit[:12]} is not in {tree_path}"
                         + (f" and could not be fetched from {remote}" if remote else
                            " (the plan names no remote to fetch it from)"))
