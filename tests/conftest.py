"""Shared fixtures: the imported tree, a sparse worktree for quick git work, isolated dirs.

Session-scoped fixtures share one imported kernel tree and one ccache (the cache in
$KPIPE_CACHE, default ~/.cache/kpipe) across every test, so CI imports and cold-builds once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline import tree

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test writes its runs and b4's cache under its own tmp dir."""
    monkeypatch.setenv("KPIPE_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture(scope="session")
def kernel_tree() -> tree.TreeInfo:
    """The Debian 6.12 tree imported into the shared cache (imported once per cache)."""
    return tree.open_tree()


@pytest.fixture
def sparse_worktree(kernel_tree: tree.TreeInfo, tmp_path: Path):
    """A worktree of the imported tree with only drivers/vhost checked out (fast git work)."""
    path = tmp_path / "sparse"
    git = ["git", "-C", str(kernel_tree.path)]
    sparse_checkout(kernel_tree.path, path, kernel_tree.head)
    yield path
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([*git, "worktree", "prune"], check=True)


def sparse_checkout(repo: Path, path: Path, commit: str, cone: str = "/drivers/vhost/") -> None:
    """A worktree with only `cone` checked out.

    `git sparse-checkout` would turn on extensions.worktreeConfig in the shared repository
    (which GitPython misreads as non-bare), so the sparse file is written by hand and
    core.sparseCheckout is given to the one checkout that needs it.
    """
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "--no-checkout",
                    "--detach", str(path), commit], check=True)
    gitdir = Path(subprocess.run(["git", "-C", str(path), "rev-parse", "--absolute-git-dir"],
                                 check=True, capture_output=True, text=True).stdout.strip())
    (gitdir / "info").mkdir(exist_ok=True)
    (gitdir / "info" / "sparse-checkout").write_text(cone + "\n")
    subprocess.run(["git", "-C", str(path), "-c", "core.sparseCheckout=true", "checkout", "-q"],
                   check=True)


IDENTITY = {"GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "test@example.org",
            "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "test@example.org",
            "GIT_AUTHOR_DATE": "2026-11-20T10:00:00Z",
            "GIT_COMMITTER_DATE": "2026-11-20T10:00:00Z"}


def git(wt: Path, *args: str, env: dict | None = None) -> str:
    full = dict(os.environ, **IDENTITY, **(env or {}))
    return subprocess.run(["git", "-C", str(wt), *args], check=True, capture_output=True,
                          text=True, env=full).stdout.strip()


@pytest.fixture(scope="session")
def full_worktree(kernel_tree: tree.TreeInfo, tmp_path_factory: pytest.TempPathFactory):
    """A full checkout of the imported tree at its commit (for Kconfig work), shared."""
    path = tmp_path_factory.mktemp("full") / "linux"
    subprocess.run(["git", "-C", str(kernel_tree.path), "worktree", "add", "-q", "--detach",
                    str(path), kernel_tree.head], check=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["git", "-C", str(kernel_tree.path), "worktree", "prune"], check=True)
