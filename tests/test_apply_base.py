"""Apply outcomes and base rules on real git, in a sparse worktree of the imported tree.

Each test makes real commits and real `git format-patch` output, then runs kpipe's apply and
base modules on them: applied, applied-3way, already-present, conflict (with hunks), and the
base rules explicit, trailer, blob-guess, head, plus fetching a missing base from a remote.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import git
from series_factory import _edit

from pipeline.intake import apply, base, series

SCSI = "drivers/vhost/scsi.c"


def _commit(wt: Path, message: str) -> str:
    git(wt, "commit", "-qam", message)
    return git(wt, "rev-parse", "HEAD")


def _patch(wt: Path, rev: str, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    name = git(wt, "format-patch", "-1", "--thread", "-o", str(out), rev)
    return Path(name.splitlines()[-1])


def test_applied_and_already_present(sparse_worktree: Path, tmp_path: Path) -> None:
    wt = sparse_worktree
    start = git(wt, "rev-parse", "HEAD")
    _edit(wt, SCSI, "#include <linux/module.h>", "#include <linux/module.h>\n/* one */")
    c1 = _commit(wt, "one")
    patch = _patch(wt, c1, tmp_path / "p")
    git(wt, "checkout", "-q", "--detach", start)
    result = apply.apply_one(wt, patch, tmp_path / "log1")
    assert result.status == "applied"
    assert git(wt, "show", "-s", "--format=%s", "HEAD") == "one"
    again = apply.apply_one(wt, patch, tmp_path / "log2")
    assert again.status == "already-present"
    assert again.commit == git(wt, "rev-parse", "HEAD")
    assert git(wt, "status", "--porcelain") == ""


def test_applied_3way_when_context_moved(sparse_worktree: Path, tmp_path: Path) -> None:
    wt = sparse_worktree
    start = git(wt, "rev-parse", "HEAD")
    _edit(wt, SCSI, "#include <linux/module.h>", "#include <linux/module.h>\n/* three */")
    c1 = _commit(wt, "change near the includes")
    patch = _patch(wt, c1, tmp_path / "p")
    git(wt, "checkout", "-q", "--detach", start)
    # Rewrite the lines right around the patch's context: plain apply fails, 3-way merges.
    _edit(wt, SCSI, "#include <linux/utsname.h>", "#include <linux/utsname.h> /* x */")
    _commit(wt, "other change in the context")
    result = apply.apply_one(wt, patch, tmp_path / "log")
    assert result.status == "applied-3way", (tmp_path / "log").read_text()


def test_conflict_names_the_failing_file(sparse_worktree: Path, tmp_path: Path) -> None:
    wt = sparse_worktree
    start = git(wt, "rev-parse", "HEAD")
    _edit(wt, SCSI, "#include <linux/module.h>", "#include <linux/module.h> /* mine */")
    c1 = _commit(wt, "mine")
    patch = _patch(wt, c1, tmp_path / "p")
    git(wt, "checkout", "-q", "--detach", start)
    _edit(wt, SCSI, "#include <linux/module.h>", "#include <linux/module.h> /* theirs */")
    before = _commit(wt, "theirs")
    result = apply.apply_one(wt, patch, tmp_path / "log")
    assert result.status == "conflict"
    assert result.commit is None
    assert any(SCSI in h for h in result.hunks), result.hunks
    assert git(wt, "rev-parse", "HEAD") == before
    assert git(wt, "status", "--porcelain", "--untracked-files=no") == ""


class _Series:
    """What base.choose reads from b4's LoreSeries, for a series made in the test."""

    def __init__(self, mbx: Path, tmp: Path) -> None:
        lser, _ = series.parse(mbx, None, True, [])
        self.lser = lser


def _series_mbox(wt: Path, tmp: Path, base_arg: str | None) -> Path:
    start = git(wt, "rev-parse", "HEAD")
    _edit(wt, SCSI, "#include <linux/module.h>", "#include <linux/module.h>\n/* base test */")
    _commit(wt, "vhost-scsi: base test")
    out = tmp / "s"
    args = ["format-patch", "-q", "--thread", "--cover-letter", "-o", str(out)]
    if base_arg:
        args.append(f"--base={base_arg}")
    git(wt, *args, f"{start}..HEAD")
    git(wt, "checkout", "-q", "--detach", start)
    mbx = tmp / "s.mbox"
    mbx.write_bytes(b"".join(p.read_bytes() for p in sorted(out.iterdir())))
    return mbx


def test_base_rules(sparse_worktree: Path, kernel_tree, tmp_path: Path) -> None:
    wt = sparse_worktree
    head = git(wt, "rev-parse", "HEAD")
    tree = kernel_tree.path
    # trailer: base-commit: names a commit the tree has
    lser = _Series(_series_mbox(wt, tmp_path / "a", head), tmp_path).lser
    got = base.choose(tree, lser)
    assert (got["rule"], got["commit"]) == ("trailer", head)
    # explicit wins over the trailer
    got = base.choose(tree, lser, explicit=head)
    assert got["rule"] == "explicit"
    with pytest.raises(base.BaseError, match="no such commit"):
        base.choose(tree, lser, explicit="0" * 40)
    # blob-guess: no trailer, the index lines match the imported commit
    lser = _Series(_series_mbox(wt, tmp_path / "b", None), tmp_path).lser
    got = base.choose(tree, lser)
    assert got["rule"] == "blob-guess"
    # the guess is the import or a commit with the very same files (a fetched base, say)
    assert git(tree, "rev-parse", f"{got['commit']}^{{tree}}") == git(
        tree, "rev-parse", f"{head}^{{tree}}")
    # head: an unknown trailer and index lines that match nothing
    mbx = _series_mbox(wt, tmp_path / "c", head)
    text = mbx.read_text().replace(f"base-commit: {head}", "base-commit: " + "1" * 40)
    text = re.sub(r"^index [0-9a-f]+\.\.([0-9a-f]+)", r"index 1234567..\1", text, flags=re.M)
    mbx.write_text(text)
    lser = _Series(mbx, tmp_path).lser
    got = base.choose(tree, lser)
    assert got["rule"] == "head"
    assert "warning" in got


def test_base_fetched_from_remote(sparse_worktree: Path, kernel_tree, tmp_path: Path) -> None:
    """A base commit the tree lacks is fetched from a file:// remote (a real git remote).

    The remote borrows the tree's objects through git's alternates and adds one commit of its
    own, so it is cheap to make but really has a commit the tree does not.
    """
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    (remote / "objects" / "info" / "alternates").write_text(
        str(kernel_tree.path / "objects") + "\n")
    # A fresh commit each time: an earlier test run fetched (and kept) its own one.
    new_base = git(remote, "commit-tree", f"{kernel_tree.head}^{{tree}}", "-p", kernel_tree.head,
                   "-m", f"only on the remote ({uuid.uuid4()})")
    git(remote, "update-ref", "refs/heads/next", new_base)
    assert base.resolve(kernel_tree.path, new_base) is None
    lser = _Series(_series_mbox(sparse_worktree, tmp_path / "d", None), tmp_path).lser
    lser.base_commit = new_base
    no_remote = base.choose(kernel_tree.path, lser)
    assert no_remote["rule"] == "blob-guess"
    try:
        got = base.choose(kernel_tree.path, lser, remote=f"file://{remote}")
        assert (got["rule"], got["commit"]) == ("trailer", new_base)
        assert base.resolve(kernel_tree.path, new_base) == new_base
    finally:  # leave the shared tree as it was
        git(kernel_tree.path, "update-ref", "-d", f"refs/kpipe/bases/{new_base}")


def test_known_trees_give_the_vhost_remote_for_fetched_series() -> None:
    from pipeline.intake import trees

    assert trees.default_remote("msgid:x@y").endswith("mst/vhost.git")
    assert trees.known_trees()["vhost"]["branch"] == "linux-next"
    assert trees.default_remote("folder:/tmp/x") is None
