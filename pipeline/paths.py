"""Where kpipe keeps things on disk.

Reads the environment (KPIPE_CACHE, KPIPE_REPORTS) and the project layout; writes nothing.
The cache holds the imported kernel tree, ccache and run worktrees (with their O= build
directories inside); the reports directory holds one directory per run.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = PROJECT_ROOT / "configs"
PATCHES_DIR = PROJECT_ROOT / "patches"
DEFAULT_SERIES = PATCHES_DIR / "vhost-scsi-log-6.12"
VIRTME_TESTS_DIR = PROJECT_ROOT / "virtme-tests"
DEBIAN_TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")


def cache_dir() -> Path:
    """The shared cache: $KPIPE_CACHE, else ~/.cache/kpipe."""
    env = os.environ.get("KPIPE_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "kpipe"
    path.mkdir(parents=True, exist_ok=True)
    return path


def reports_dir() -> Path:
    """Where runs go: $KPIPE_REPORTS, else reports/ in the project."""
    env = os.environ.get("KPIPE_REPORTS")
    return Path(env) if env else PROJECT_ROOT / "reports"


def runs_dir() -> Path:
    path = reports_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_tree_dir() -> Path:
    return cache_dir() / "tree.git"


def _cache_subdir(name: str) -> Path:
    path = cache_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def ccache_dir() -> Path:
    return _cache_subdir("ccache")


def worktrees_dir() -> Path:
    return _cache_subdir("worktrees")


def locks_dir() -> Path:
    return _cache_subdir("locks")
