"""Known kernel trees (configs/trees.toml): which remote a run falls back to.

Reads configs/trees.toml; writes nothing.
"""

from __future__ import annotations

import tomllib

from pipeline import paths


def known_trees() -> dict[str, dict]:
    return tomllib.loads((paths.CONFIGS_DIR / "trees.toml").read_text())["tree"]


def default_remote(series_source: str) -> str | None:
    """The git remote for a series' missing base: the `msgid` tree for a fetched series."""
    if not series_source.startswith("msgid:"):
        return None
    for tree in known_trees().values():
        if tree.get("default_for") == "msgid":
            return tree["url"]
    return None
