"""Known kernel trees (configs/trees.toml): which one a run uses, where each is kept, which
remote a run falls back to.

Reads configs/trees.toml; writes nothing. A tree whose `source` is `debian-tarball` (a
linux-source tarball installed by apt) or `debian-package` (a linux-source package fetched by
pipeline/intake/debpkg.py) can be imported by `kpipe tree NAME`; a `git` tree is a remote only.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from pipeline import paths
from pipeline.errors import BadInput

IMPORTABLE = ("debian-tarball", "debian-package")


class UnknownTree(BadInput):
    """A tree name configs/trees.toml does not know, or one kpipe cannot import (exit 2)."""


def known_trees() -> dict[str, dict]:
    return tomllib.loads((paths.CONFIGS_DIR / "trees.toml").read_text())["tree"]


def default_name() -> str:
    """The tree a run uses when given neither --tree nor --tree-name (`default_for = offline`)."""
    return next(name for name, t in known_trees().items() if t.get("default_for") == "offline")


def importable(name: str) -> dict:
    """The trees.toml entry of `name`, which `kpipe tree` can import; else UnknownTree."""
    known = known_trees()
    if name not in known:
        raise UnknownTree(f"no tree {name!r} in configs/trees.toml (known: "
                          f"{', '.join(known)}); `kpipe tree --list` shows them")
    entry = known[name]
    if entry.get("source") not in IMPORTABLE:
        raise UnknownTree(f"tree {name!r} is a {entry.get('source')} remote, not importable: "
                          f"use it as --base-remote {entry.get('url')}")
    return entry


def repo_dir(name: str) -> Path:
    """Where tree `name` is imported: tree.git for the default tree, else its own repository."""
    return paths.default_tree_dir() if name == default_name() else paths.named_tree_dir(name)


def default_remote(series_source: str) -> str | None:
    """The git remote for a series' missing base: the `msgid` tree for a fetched series."""
    if not series_source.startswith("msgid:"):
        return None
    for tree in known_trees().values():
        if tree.get("default_for") == "msgid":
            return tree["url"]
    return None
