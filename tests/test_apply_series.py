"""Series-wise apply on real git, in a sparse worktree of the imported 6.12 tree (apply only).

Patches already in the tree together (the first no longer reverse-applies alone) are
already-present "together with patches k..j" and the walk goes on; a patch with two failing
hunks out of five is a conflict that names its file, hunks and line ranges, without git's hints.
"""

from __future__ import annotations

from pathlib import Path

from conftest import git
from series_factory import SCSI, _edit

from pipeline.intake import apply
from pipeline.intake.apply_series import apply_all
from pipeline.progress import Progress


def _commit(wt: Path, rel: str, old: str, new: str, message: str) -> str:
    _edit(wt, rel, old, new)
    git(wt, "commit", "-qam", message)
    return git(wt, "rev-parse", "HEAD")


def _format(wt: Path, rev_range: str, out: Path) -> list[Path]:
    names = git(wt, "format-patch", "-q", "--thread", "-o", str(out), rev_range)
    return [Path(n) for n in names.splitlines()] or sorted(out.glob("*.patch"))


def _records(wt: Path, patches: list[Path], run_dir: Path) -> list[dict]:
    return apply_all(wt, patches, run_dir, git(wt, "rev-parse", "HEAD"), Progress(quiet=True))


def test_patches_in_the_tree_together_then_one_that_applies(sparse_worktree: Path,
                                                            tmp_path: Path) -> None:
    wt = sparse_worktree
    start = git(wt, "rev-parse", "HEAD")
    line = "#include <linux/module.h>\n"
    _commit(wt, SCSI, line, line + "/* merged: one */\n", "merged one")
    second = _commit(wt, SCSI, "/* merged: one */\n", "/* merged: one, then two */\n",
                     "merged two")
    _commit(wt, SCSI, "#include <linux/utsname.h>\n",
            "#include <linux/utsname.h>\n/* new three */\n", "new three")
    patches = _format(wt, f"{start}..HEAD", tmp_path / "p")
    assert len(patches) == 3
    git(wt, "checkout", "-q", "--detach", second)
    # Patch 1 alone neither applies nor reverse-applies: patch 2 rewrote its line.
    alone = apply.apply_one(wt, patches[0], tmp_path / "alone.log")
    assert alone.status == "conflict"
    assert apply.present_together(wt, patches[:1]) == 0
    steps = _records(wt, patches, tmp_path / "run")
    statuses = [s["apply"]["status"] for s in steps[1:]]
    assert statuses == ["already-present", "already-present", "applied"]
    for s in steps[1:3]:
        assert s["apply"]["detail"].startswith("together with patches 1..2")
        assert s["commit"] == second
    assert git(wt, "show", "-s", "--format=%s", "HEAD") == "new three"
    assert (tmp_path / "run" / steps[1]["apply"]["log"]).is_file()


ANCHORS = ["#include <linux/module.h>\n", "static int vhost_scsi_to_tcm_attr(int attr)\n",
           "static u16 vhost_buf_to_lun(u8 *lun_buf)\n",
           "static int vhost_scsi_open(struct inode *inode, struct file *f)\n",
           "static int __init vhost_scsi_init(void)\n"]


def test_two_failing_hunks_out_of_five(sparse_worktree: Path, tmp_path: Path) -> None:
    wt = sparse_worktree
    text = (wt / SCSI).read_text()
    anchors = [a for a in ANCHORS if a in text]
    assert len(anchors) == 5, "the 6.12 vhost-scsi.c lost an anchor line"
    positions = sorted(text.index(a) for a in anchors)
    gaps = [b - a for a, b in zip(positions, positions[1:], strict=False)]
    assert min(gaps) > 400, "anchors too close"
    start = git(wt, "rev-parse", "HEAD")
    for n, anchor in enumerate(anchors):
        _edit(wt, SCSI, anchor, f"/* five hunks: {n} */\n{anchor}")
    git(wt, "commit", "-qam", "five hunks")
    patch = _format(wt, "-1", tmp_path / "p")[0]
    assert patch.read_text().count("\n@@ ") == 5
    git(wt, "checkout", "-q", "--detach", start)
    for anchor in (anchors[1], anchors[3]):
        _edit(wt, SCSI, anchor, f"/* upstream got here first */\n{anchor}")
    git(wt, "commit", "-qam", "upstream")
    before = git(wt, "rev-parse", "HEAD")
    steps = _records(wt, [patch], tmp_path / "run")
    entry = steps[1]["apply"]
    assert entry["status"] == "conflict", entry
    assert entry["files"] == [SCSI]
    assert len(entry["hunks"]) == 2 and all(h.startswith(f"{SCSI}: hunk #") for h in
                                             entry["hunks"]), entry["hunks"]
    assert [h.split()[2] for h in entry["hunks"]] == ["#2", "#4"]
    assert "3 of 5 hunk(s) apply" in entry["detail"]
    assert " at lines " in entry["detail"]
    assert "hint:" not in entry["detail"] and "git am --skip" not in entry["detail"]
    assert git(wt, "rev-parse", "HEAD") == before
