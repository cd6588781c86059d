"""Step identity and reuse: what makes a step's result valid again in a later run.

Reads the run index (pipeline/record/index.py) and the earlier run's results.json it names;
writes hard links to the artifacts and logs of a reused step into the new run's step directory.
A step's key hashes everything its result depends on (tree commit, the patch ids up to it, the
config, and by content: kpipe's code that applies, builds, boots, tests and judges, configs/
with the splat lists, virtme-tests/ with the guest runner, the QEMU and vng versions, the boot
settings: timeout, guest memory, --slow-steps), so an unchanged step is reused and a changed
one redone. A second, build-only key (the commit, patches, config, the compiler and kpipe's
apply and build code) lets a run reuse an earlier build and boot it anew: a `--no-boot` run's,
or one whose suites, splat lists or boot settings changed. A step whose boot timed out is
never reused.

Reads (for the content hashes) the files under pipeline/, configs/ and virtme-tests/ of
kpipe's home (pipeline/paths.py: $KPIPE_HOME moves configs/ and virtme-tests/) and the
`--version` of gcc, qemu-system-x86_64 and vng.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pipeline
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


CODE = Path(pipeline.__file__).resolve().parent
# kpipe's code a step's result depends on: everything but the renderers (report/), the
# command line and the terminal output; the build key takes only what applies and builds.
RESULT_CODE = ("intake", "build", "boot", "record", "run", "fanout", "options.py", "errors.py",
               "paths.py", "atomic.py", "locking.py")
BUILD_CODE = ("intake/apply.py", "intake/apply_series.py", "intake/worktree.py", "build")


def tree_hash(roots: list[Path], pattern: str = "*") -> str:
    """A content hash of the files under `roots` (a root may be a file), named relative to
    their root: the same content anywhere gives the same hash."""
    digest = hashlib.sha256()
    for root in roots:
        files = [root] if root.is_file() else sorted(
            p for p in root.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts)
        for path in files:
            digest.update(f"{root.name}/{path.relative_to(root)}".encode() if path != root
                          else root.name.encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


@cache
def tool_version(*cmd: str) -> str | None:
    """The first line a tool prints for `cmd` (its --version), None when it cannot run."""
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def build_inputs() -> dict:
    """What a build depends on besides its commit, patches and config."""
    return {"build_code": tree_hash([CODE / p for p in BUILD_CODE], "*.py"),
            "compiler": tool_version("gcc", "--version")}


def result_inputs(vng: Path) -> dict:
    """What a booted and tested step depends on besides its build, its suites and its boot
    settings: kpipe's judging code, configs/, virtme-tests/, QEMU and vng."""
    return {"code": tree_hash([CODE / p for p in RESULT_CODE], "*.py"),
            "configs": tree_hash([paths.CONFIGS_DIR]),
            "virtme_tests": tree_hash([paths.VIRTME_TESTS_DIR]),
            "qemu": tool_version("qemu-system-x86_64", "--version"),
            "vng": tool_version(str(vng), "--version")}


def timed_out(step: dict) -> bool:
    """The step's boot (or its guest run) ended in a timeout (its last attempt did)."""
    attempts = step["boot"].get("attempts") or [{}]
    return "timeout" in (attempts[-1].get("reason") or "")


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
        found = index.find_step(paths.reports_dir(), key, exclude_run, field)
    except sqlite3.Error:
        found = find_reusable_scan(key, exclude_run, field)
    if found and field == "key" and timed_out(found[1]):
        return None  # a timeout says more about the host's load than about the step
    if found and field == "key" and found[1]["boot"].get("interrupted"):
        return None  # built, but its boot was cut short (or never started): boot it again
    return found


def _earlier_records(exclude_run: str) -> Iterator[tuple[Path, dict]]:
    """Every readable run record but `exclude_run`'s, newest first (run ids start with their
    UTC time)."""
    runs = sorted((p for p in paths.runs_dir().iterdir() if p.is_dir()), reverse=True)
    for run in runs:
        if run.name != exclude_run and (record := store.load_or_none(run)) is not None:
            yield run, record


def find_reusable_scan(key: str, exclude_run: str,
                       field: str = "key") -> tuple[str, dict] | None:
    """find_reusable by reading every record (the index's answer must be the same; the bench
    measures both)."""
    for run, record in _earlier_records(exclude_run):
        for step in record.get("steps", []):
            if step.get(field) != key:
                continue
            if step["build"]["status"] in index.BAD_BUILD:
                continue
            if field == "key" and step["boot"]["status"] == "error":
                continue
            return run.name, step
    return None


def find_ablation(key: str, exclude_run: str) -> tuple[str, dict] | None:
    """The newest earlier ablated hunk (an `ablation` entry of a record, which the index does
    not hold) whose key is `key` and whose result is not an error: read from the records."""
    for run, record in _earlier_records(exclude_run):
        for entry in (record.get("ablation") or {}).get("hunks", []):
            if entry.get("key") == key and entry.get("status") in (
                    "needed", "needed-to-build", "unnoticed"):
                return run.name, entry
    return None


def find_tip_baseline(key: str, exclude_run: str) -> tuple[str, dict] | None:
    """An earlier result of the tip whose step key is `key` and which booted: a run's step
    (from the index) or an ablation's own tip baseline (from the records)."""
    found = find_reusable(key, exclude_run)
    if found and found[1]["boot"]["status"] == "pass":
        return found
    for run, record in _earlier_records(exclude_run):
        tip = (record.get("ablation") or {}).get("tip_baseline") or {}
        if tip.get("key") == key and tip.get("boot", {}).get("status") == "pass":
            return run.name, tip
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
