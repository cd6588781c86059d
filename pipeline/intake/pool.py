"""Build places that outlive a run: a pool of worktree + O= pairs per kernel tree and compiler.

Reads configs/pool.toml (how many free places to keep, how large they may grow), the tree
repository and `gcc --version`; writes <pool>/<key>/<n>/ (a git worktree; the O= directory of
each config, o-<config>, sits inside it), <pool>/<key>/<n>.json (last use, whether the last run
left it in order) and holds the lock pool-<key>-<n> while a run has the place.

A run takes a free place, the most recently used one left in order (its objects are the
likeliest to match), and checks out its base with `git checkout`: git rewrites only the files
that differ, and their new mtimes tell make exactly what to rebuild. A second run at once takes
another place. A place whose last run did not end in order (killed, interrupted, an error) has
its O= directories removed before it is used again, so no half-written object is ever trusted.
After a run, free places beyond the limits are removed: those not left in order first, then
the least recently used.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pipeline import paths
from pipeline.errors import InfraError
from pipeline.intake import worktree
from pipeline.locking import locked, try_hold


class PoolError(InfraError):
    """A build place could not be made ready (git failed in it)."""


@dataclass(frozen=True)
class Limits:
    keep_free: int
    max_bytes: int


@dataclass
class Place:
    """A build place a run holds: its worktree, and whether it was made (or wiped) for it."""

    path: Path
    new: bool
    wiped: bool
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"path": str(self.path), "new": self.new, "wiped": self.wiped,
                "seconds": round(self.seconds, 1)}


def limits() -> Limits:
    data = tomllib.loads((paths.CONFIGS_DIR / "pool.toml").read_text())
    return Limits(int(data["keep_free"]), int(float(data["max_gb"]) * 1024**3))


def pool_key(tree: Path) -> str:
    """<tree dir name>-<hash of the tree's path and the compiler's version line>."""
    proc = subprocess.run(["gcc", "--version"], capture_output=True, text=True)
    compiler = proc.stdout.splitlines()[0] if proc.returncode == 0 and proc.stdout else "none"
    digest = hashlib.sha256(f"{tree.resolve()}\n{compiler}".encode()).hexdigest()[:12]
    return f"{tree.resolve().name.removesuffix('.git')}-{digest}"


def lock_key(root: Path) -> str:
    """The name the locks of the pool folder `root` go by: its key and a hash of its path, so
    that two pools of one tree ($KPIPE_POOL moves the pool, the locks stay in the cache) never
    take each other's place numbers."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    return f"{root.name}-{digest}"


def _meta(root: Path, n: int) -> dict:
    path = root / f"{n}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"last_used": 0.0, "in_order": False}


def _write_meta(root: Path, n: int, in_order: bool) -> None:
    tmp = root / f".{n}.json.tmp"
    tmp.write_text(json.dumps({"last_used": time.time(), "in_order": in_order}))
    tmp.replace(root / f"{n}.json")


def _numbers(root: Path) -> list[int]:
    return sorted(int(p.stem) for p in root.glob("*.json") if p.stem.isdigit())


def _rank(meta: dict) -> tuple[bool, float]:
    """Places left in order first (the others are wiped before use), then the latest used."""
    return bool(meta.get("in_order")), float(meta.get("last_used", 0.0))


def _take(root: Path, key: str) -> tuple[int, IO[str]]:
    """The most recently used free place of `root`, or a new number; its lock held."""
    with locked(f"pool-{key}"):  # choosing (and numbering) places is one run at a time
        known = _numbers(root)
        for n in sorted(known, key=lambda n: _rank(_meta(root, n)), reverse=True):
            if (held := try_hold(f"pool-{key}-{n}")) is not None:
                return n, held
        n = max(known, default=-1) + 1
        held = try_hold(f"pool-{key}-{n}")
        assert held is not None, "a new place's lock is free"
        _write_meta(root, n, in_order=False)  # taken, and not in order until released so
        return n, held


def _git(wt: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(wt), *args], capture_output=True, text=True)


def _usable(wt: Path) -> bool:
    return (wt / ".git").is_file() and _git(wt, "rev-parse", "--git-dir").returncode == 0


def _build_dirs(wt: Path) -> list[Path]:
    return [p for p in wt.glob("o-*") if p.is_dir()]


def _untrusted_mark(build_dir: Path) -> Path:
    """The file beside an O= directory that says posted code has built in it since it was
    made or wiped. It sits in the worktree, which a sandboxed build cannot write, so the build
    cannot remove it; `git clean -e /o-*` keeps it."""
    return build_dir.with_name(build_dir.name + ".untrusted")


def may_feed_the_cache(build_dir: Path) -> bool:
    """Whether no posted code has built in this O= since it was made or wiped: only then may
    a base build there write the shared ccache (objects made next to a patch's leftovers are
    not the tree's own)."""
    return not _untrusted_mark(build_dir).exists()


def mark_untrusted(build_dir: Path) -> None:
    """Say that posted code builds in this O= (before it runs)."""
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    _untrusted_mark(build_dir).touch()


def _ready(tree: Path, wt: Path, commit: str, in_order: bool) -> tuple[bool, bool]:
    """Bring the place to `commit`, clean; (made new, O= directories wiped)."""
    if not _usable(wt):
        worktree.add_at(tree, commit, wt)
        return True, False
    wiped = not in_order
    if wiped:
        for build_dir in _build_dirs(wt):
            shutil.rmtree(build_dir)
            _untrusted_mark(build_dir).unlink(missing_ok=True)
        for kept in wt.glob("o-*.warnings.json"):  # pipeline/build/make.py: what each O= held
            kept.unlink()
    rebase_apply = Path(_git(wt, "rev-parse", "--git-path", "rebase-apply").stdout.strip())
    if (wt / rebase_apply).exists():  # a run stopped inside `git am` (the path may be absolute)
        _git(wt, "am", "--abort")
    for args in (("checkout", "-q", "-f", "--detach", commit),
                 ("clean", "-ffdxq", "-e", "/o-*")):
        proc = _git(wt, *args)
        if proc.returncode != 0:
            raise PoolError(f"git {args[0]} in the build place {wt} failed: "
                            f"{proc.stderr.strip()[-400:]}")
    return False, wiped


@contextmanager
def place(tree: Path, commit: str) -> Iterator[Place]:
    """A build place of `tree` at `commit`, held until the block ends, then pruned around."""
    t0 = time.monotonic()
    key = pool_key(tree)
    root = paths.pool_dir() / key
    root.mkdir(parents=True, exist_ok=True)
    key = lock_key(root)
    n, held = _take(root, key)
    in_order = False
    try:
        wt = root / str(n)
        new, wiped = _ready(tree, wt, commit, _meta(root, n).get("in_order", False))
        _write_meta(root, n, in_order=False)  # until this run ends in order
        yield Place(wt, new, wiped, time.monotonic() - t0)
        in_order = True
    finally:
        _write_meta(root, n, in_order)
        held.close()
        prune(tree, root, key, limits())


def _size(path: Path) -> int:
    proc = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    return int(proc.stdout.split()[0]) if proc.returncode == 0 and proc.stdout else 0


def prune(tree: Path, root: Path, key: str, lim: Limits) -> list[Path]:
    """Remove free places beyond lim (count of free places, bytes of all), in _rank order."""
    removed: list[Path] = []
    with locked(f"pool-{key}"):
        free: list[tuple[int, IO[str]]] = []
        for n in _numbers(root):
            if (held := try_hold(f"pool-{key}-{n}")) is not None:
                free.append((n, held))
        free.sort(key=lambda item: _rank(_meta(root, item[0])))  # the first to go first
        try:
            sizes = {n: _size(root / str(n)) for n, _ in free}
            total = _size(root)
            while free and (len(free) > lim.keep_free or total > lim.max_bytes):
                n, held = free.pop(0)
                worktree.remove(tree, root / str(n))
                (root / f"{n}.json").unlink(missing_ok=True)
                total -= sizes[n]
                removed.append(root / str(n))
                held.close()
        finally:
            for _, held in free:
                held.close()
    return removed
