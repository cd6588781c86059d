"""Git worktrees for runs: made at a commit, always removed.

Reads the tree repository; writes a worktree under <cache>/worktrees/ and removes it (and
anything built inside it) when the with-block ends, on errors and Ctrl-C included.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import paths
from pipeline.errors import InfraError
from pipeline.locking import locked


class WorktreeError(InfraError):
    """git could not make the worktree (an infrastructure error)."""


def add(tree: Path, commit: str, name: str) -> Path:
    return add_at(tree, commit, paths.worktrees_dir() / name)


def add_at(tree: Path, commit: str, path: Path) -> Path:
    """A worktree of `tree` at `commit` in `path` (whatever was there is removed first)."""
    if path.exists():
        remove(tree, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked("tree-worktrees"):
        proc = subprocess.run(["git", "-C", str(tree), "worktree", "add", "-q", "--detach",
                               str(path), commit], capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(path, ignore_errors=True)
        raise WorktreeError(f"git worktree add {path} {commit[:12]} failed: {proc.stderr.strip()}")
    return path


def remove(tree: Path, path: Path) -> None:
    # rm -rf is several times faster than shutil.rmtree on a 1.5 GB tree plus its O= dirs.
    rm = shutil.which("rm")
    if rm:
        subprocess.run([rm, "-rf", "--one-file-system", str(path)], check=False)
    shutil.rmtree(path, ignore_errors=True)
    with locked("tree-worktrees"):
        subprocess.run(["git", "-C", str(tree), "worktree", "prune"], capture_output=True)


@contextmanager
def worktree(tree: Path, commit: str, name: str) -> Iterator[Path]:
    """A worktree of `tree` at `commit`, removed when the block exits for any reason."""
    path = add(tree, commit, name)
    try:
        yield path
    finally:
        remove(tree, path)
