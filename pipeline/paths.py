"""Where kpipe keeps things on disk.

Reads the environment (KPIPE_HOME, KPIPE_CACHE, KPIPE_POOL, KPIPE_REPORTS, XDG_DATA_HOME) and
the project layout; writes nothing. The home holds what kpipe is given, not made: configs/,
virtme-tests/ and patches/ (the default series). It is $KPIPE_HOME, else the source checkout
this module sits in, else the copy a non-editable install ships (<prefix>/share/kpipe,
setuptools data-files of pyproject.toml). The cache holds the imported kernel trees (tree.git
for the default, trees/<name>.git for the others), downloaded packages, ccache and the build
places that outlive a run (worktrees with their O= build directories inside; $KPIPE_POOL puts
them elsewhere); the reports directory holds everything kpipe generates: one directory per
run, the viewer index and comparisons.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the checkout, when run from one
IN_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "configs").is_dir()
INSTALLED_HOME = Path(sys.prefix) / "share" / "kpipe"


def _home() -> Path:
    env = os.environ.get("KPIPE_HOME")
    if env:
        return Path(env)
    return PROJECT_ROOT if IN_CHECKOUT else INSTALLED_HOME


HOME = _home()
CONFIGS_DIR = HOME / "configs"
PATCHES_DIR = HOME / "patches"
DEFAULT_SERIES = PATCHES_DIR / "vhost-scsi-log-6.12"
VIRTME_TESTS_DIR = HOME / "virtme-tests"
DEBIAN_TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")


def cache_dir() -> Path:
    """The shared cache: $KPIPE_CACHE, else ~/.cache/kpipe."""
    env = os.environ.get("KPIPE_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "kpipe"
    path.mkdir(parents=True, exist_ok=True)
    return path


def reports_dir() -> Path:
    """Where everything kpipe generates goes: $KPIPE_REPORTS, else reports/ of the checkout,
    else (an installed kpipe) $XDG_DATA_HOME/kpipe/reports, ~/.local/share/kpipe/reports by
    default; never into the installed package."""
    env = os.environ.get("KPIPE_REPORTS")
    if env:
        return Path(env)
    if IN_CHECKOUT:
        return PROJECT_ROOT / "reports"
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "kpipe" / "reports"


def runs_dir() -> Path:
    path = reports_dir() / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_tree_dir() -> Path:
    """The repository of the offline default tree (Debian's 6.12): where it always was."""
    return cache_dir() / "tree.git"


def named_tree_dir(name: str) -> Path:
    """The repository of another named tree: its own, so importing it moves nothing of the
    default tree's."""
    return cache_dir() / "trees" / f"{name}.git"


def downloads_dir() -> Path:
    return _cache_subdir("downloads")


def _cache_subdir(name: str) -> Path:
    path = cache_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def ccache_dir() -> Path:
    return _cache_subdir("ccache")


def worktrees_dir() -> Path:
    return _cache_subdir("worktrees")


def pool_dir() -> Path:
    """Build places kept between runs (pipeline/intake/pool.py): $KPIPE_POOL, else <cache>/pool."""
    env = os.environ.get("KPIPE_POOL")
    path = Path(env) if env else cache_dir() / "pool"
    path.mkdir(parents=True, exist_ok=True)
    return path


def locks_dir() -> Path:
    return _cache_subdir("locks")
