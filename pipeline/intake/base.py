"""Choosing the base commit a series applies to.

Reads the tree (git) and the parsed series; may fetch a missing base commit from a remote into
the tree. Returns {commit, rule, detail}: rule is explicit | trailer | blob-guess | head, in that
order of preference (DESIGN.md). The blob guess is b4's own (`LoreSeries.find_base`), which looks
for the commit whose blobs match the patches' `index` lines.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import b4

from pipeline.errors import BadInput
from pipeline.intake import series, trees
from pipeline.intake import tree as treemod
from pipeline.locking import locked


class BaseError(BadInput):
    """An explicit base cannot be found (bad input: exit code 2)."""


def _git(tree: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True)


def resolve(tree: Path, rev: str) -> str | None:
    proc = _git(tree, "rev-parse", "-q", "--verify", f"{rev}^{{commit}}")
    return proc.stdout.strip() if proc.returncode == 0 else None


def fetch(tree: Path, remote: str, rev: str) -> bool:
    """Fetch `rev` (a commit id or ref) from `remote` into the tree; True when it worked."""
    with locked("tree-fetch"):
        proc = _git(tree, "fetch", "--no-tags", "-q", remote, rev)
        if proc.returncode != 0:
            return False
        commit = resolve(tree, rev) or resolve(tree, "FETCH_HEAD")
        if commit is None:
            return False
        # A ref keeps the fetched base from being garbage-collected.
        _git(tree, "update-ref", f"refs/kpipe/bases/{commit}", commit)
        return True


def choose(tree: Path, lser, explicit: str | None = None,  # noqa: ANN001 - b4.LoreSeries
           remote: str | None = None) -> dict:
    """The base for the series `lser` in `tree`, and the rule that chose it."""
    if explicit:
        commit = resolve(tree, explicit)
        if commit is None and remote and fetch(tree, remote, explicit):
            commit = resolve(tree, explicit) or resolve(tree, "FETCH_HEAD")
        if commit is None:
            raise BaseError(f"--base {explicit}: no such commit in {tree}"
                            + (f" nor at {remote}" if remote else ""))
        return {"commit": commit, "rule": "explicit", "detail": f"--base {explicit}"}
    trailer = getattr(lser, "base_commit", None)
    if trailer:
        commit = resolve(tree, trailer)
        if commit is None and remote and fetch(tree, remote, trailer):
            commit = resolve(tree, trailer)
        if commit is not None:
            return {"commit": commit, "rule": "trailer", "detail": f"base-commit: {trailer}"}
    guess = _blob_guess(tree, lser)
    if guess is not None:
        detail = f"blobs of the patches' index lines match {guess[:12]}"
        if trailer:
            detail += f" (base-commit: {trailer} is not in the tree)"
        return {"commit": guess, "rule": "blob-guess", "detail": detail}
    head = resolve(tree, "HEAD")
    why = f"base-commit: {trailer} is not in the tree" if trailer else "no base-commit: trailer"
    return {"commit": head, "rule": "head",
            "detail": f"{why} and no commit matches the index lines: using HEAD",
            "warning": f"base guessed as the tree's HEAD ({head[:12]}): {why}"}


def _blob_guess(tree: Path, lser) -> str | None:  # noqa: ANN001
    """b4's guess at the base from the patches' blob indexes, when every blob matches."""
    try:
        base, nblobs, mismatches = lser.find_base(str(tree), branches=None, maxdays=3650)
    except (IndexError, ValueError, b4.AmConflictError):
        return None
    if mismatches:
        return None
    return resolve(tree, base)


def for_series(info, raw_thread: Path, revision: int, source: str,  # noqa: ANN001 - TreeInfo
               explicit: str | None = None, remote: str | None = None) -> dict:
    """The base record of a run: the chosen commit, its rule, the remote, the tree it is in
    (its name, and the kernel version at the chosen commit).

    `raw_thread` is the series' thread.mbox; `source` the series' source label, which picks
    the default remote for a series fetched by message-id (configs/trees.toml).
    """
    lser, _ = series.parse(raw_thread, revision, True, [])
    remote = remote or trees.default_remote(source)
    chosen = choose(info.path, lser, explicit, remote)
    chosen["remote"] = remote
    chosen["tree"] = {"path": str(info.path), "describe": info.describe, "source": info.source,
                      "name": info.name,
                      "version": treemod.commit_version(info.path, chosen["commit"])}
    return chosen
