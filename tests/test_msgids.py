"""Series without Message-Ids, as `git format-patch` writes them by default, on real git and b4.

A folder from `git format-patch --cover-letter` (no --thread, the cover still reading
`*** SUBJECT HERE ***`) and one file from `git format-patch -1` go through kpipe's intake and
apply in a sparse worktree of the imported tree: kpipe makes the ids, b4 threads the series,
the patches apply, and a second intake of the same files gives the same ids.
"""

from __future__ import annotations

from pathlib import Path

from conftest import git
from series_factory import SCSI, VHOST, _edit

from pipeline.intake import apply, msgids, series
from pipeline.intake.apply_series import apply_all
from pipeline.progress import Progress


def _two_commits(wt: Path) -> str:
    start = git(wt, "rev-parse", "HEAD")
    _edit(wt, SCSI, "#include <linux/module.h>\n", "#include <linux/module.h>\n/* no id 1 */\n")
    git(wt, "commit", "-qam", "vhost-scsi: no id one")
    _edit(wt, VHOST, "void vhost_dev_init(struct vhost_dev *dev,\n",
          "/* no id 2 */\nvoid vhost_dev_init(struct vhost_dev *dev,\n")
    git(wt, "commit", "-qam", "vhost: no id two")
    return start


def _ids(got: series.Series) -> list[str]:
    return [got.msgid] + [p.msgid for p in got.patches]


def _applies(wt: Path, got: series.Series, run: Path, base: str) -> list[str]:
    files = apply.split_mbox(run / got.mbox, run / "patches")
    steps = apply_all(wt, files, run, base, Progress(quiet=True))
    return [s["apply"]["status"] for s in steps[1:]]


def test_folder_and_single_file_without_message_id(sparse_worktree: Path,
                                                   tmp_path: Path) -> None:
    wt = sparse_worktree
    start = _two_commits(wt)
    folder = tmp_path / "folder"
    git(wt, "format-patch", "-q", "--cover-letter", "-o", str(folder), f"{start}..HEAD")
    single = Path(git(wt, "format-patch", "-1", "-o", str(tmp_path / "single"), "HEAD~1"))
    assert "Message-Id" not in single.read_text()
    git(wt, "checkout", "-q", "--detach", start)

    got = series.intake(str(folder), tmp_path / "run1")
    assert [p.subject for p in got.patches] == ["vhost-scsi: no id one", "vhost: no id two"]
    assert got.subject == "vhost-scsi: no id one"  # the cover's placeholder gave way
    assert all(i.endswith("@" + msgids.DOMAIN) for i in _ids(got))
    assert len(set(_ids(got))) == 3
    assert any("kpipe made them" in w for w in got.warnings)
    assert _applies(wt, got, tmp_path / "run1", start) == ["applied", "applied"]
    again = series.intake(str(folder), tmp_path / "run2")
    assert _ids(again) == _ids(got)

    git(wt, "checkout", "-q", "--detach", start)
    one = series.intake(str(single), tmp_path / "run3")
    assert [p.subject for p in one.patches] == ["vhost-scsi: no id one"]
    assert one.patches[0].msgid.endswith("@" + msgids.DOMAIN)
    assert _applies(wt, one, tmp_path / "run3", start) == ["applied"]
    assert _ids(series.intake(str(single), tmp_path / "run4")) == _ids(one)
