"""Step identity and reuse: what makes a step's result valid again in a later run.

Reads the run index (pipeline/record/index.py) and the earlier run's results.json it names;
writes hard links to the artifacts and logs of a reused step into the new run's step directory.
A step's key hashes everything its result depends on (tree commit, the patch ids up to it, the
config, suite files, kpipe's version, the boot settings: timeout, guest memory, --slow-steps),
so an unchanged step is reused and a changed one rebuilt. A second, build-only key lets a run
that boots reuse the build of a `--no-boot` run (or one whose suites changed) and boot it anew.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

from pipeline import paths
from pipeline.record import index, store
from pipeline.record.store import kpipe_version


def step_key(base_commit: str, patch_ids: list[str], config_hash: str, extra: dict) -> str:
    """The reuse key; `extra` holds what else the result depends on (boot settings, suites)."""
    payload = {**extra, "base": base_commit, "patches": patch_ids, "config_hash": config_hash,
               "kpipe": kpipe_version()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def boot_key(memory_mb: int | None, slow_steps: str) -> dict:
    """The boot settings a booted step's key holds besides the suites' files: the guest
    memory the suites ask for, and where slow suites run (--slow-steps)."""
    return {"guest_memory_mb": memory_mb, "slow_steps": slow_steps}


def suite_hashes(suite_dirs: list[Path]) -> dict[str, str]:
    out = {}
    for suite in suite_dirs:
        digest = hashlib.sha256()
        for path in sorted(p for p in suite.rglob("*") if p.is_file()
                           and "__pycache__" not in p.parts):
            digest.update(str(path.relative_to(suite)).encode())
            digest.update(path.read_bytes())
        out[suite.name] = digest.hexdigest()[:16]
    return out


def find_reusable(key: str, exclude_run: str, field: str = "key") -> tuple[str, dict] | None:
    """The newest earlier step whose `field` ("key", or "build_key" for its build alone) is
    `key` and whose result is not an infrastructure error (looked up in the run index; when
    SQLite cannot answer, a full disk say, in the records themselves)."""
    try:
        return index.find_step(paths.reports_dir(), key, exclude_run, field)
    except sqlite3.Error:
        return find_reusable_scan(key, exclude_run, field)


def find_reusable_scan(key: str, exclude_run: str,
                       field: str = "key") -> tuple[str, dict] | None:
    """find_reusable by reading every record (the index's answer must be the same; the bench
    measures both)."""
    runs = sorted((p for p in paths.runs_dir().iterdir() if p.is_dir()), reverse=True)
    for run in runs:
        if run.name == exclude_run:
            continue
        try:
            record = json.loads((run / "results.json").read_text())
        except (OSError, ValueError):
            continue
        for step in record.get("steps", []):
            if step.get(field) != key:
                continue
            if step["build"]["status"] in index.BAD_BUILD:
                continue
            if field == "key" and step["boot"]["status"] == "error":
                continue
            return run.name, step
    return None


def link_tree(src_dir: Path, dst_dir: Path, leave_out: tuple[str, ...] = ()) -> None:
    """Hard-link (or, across file systems, copy) every file below src_dir into dst_dir, but
    for the top-level entries named in leave_out."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    for path in src_dir.rglob("*"):
        if not path.is_file() or path.relative_to(src_dir).parts[0] in leave_out:
            continue
        target = dst_dir / path.relative_to(src_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)


def link_step_files(src_run: str, step: dict, dst_step_dir: Path, step_rel: str,
                    build_only: bool = False) -> dict:
    """Hard-link (or copy) an earlier step's files into this run; return the adjusted step.
    With build_only, the step's boot/ directory (consoles, test logs) is left behind."""
    link_tree(paths.runs_dir() / src_run / step["dir"], dst_step_dir,
              ("boot",) if build_only else ())
    reused = json.loads(json.dumps(step))
    reused["reused_from"] = step.get("reused_from") or src_run
    reused["dir"] = step_rel
    return reused


def earlier_config(run_id: str, name: str) -> dict | None:
    """The `configs` entry named `name` of an earlier run's record."""
    return store.config_entry(store.load(paths.runs_dir() / run_id), name)
