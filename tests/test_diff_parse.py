"""The one parser of a patch's diff headers (intake/apply.file_diffs), against git's own
reading of the same patches (git apply --numstat needs no tree) and their @@ lines."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline import paths
from pipeline.intake import apply

PATCHES = [p for p in sorted(Path(paths.DEFAULT_SERIES).glob("*.patch"))
           if "cover-letter" not in p.name]


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.name[:30])
def test_files_and_hunks_match_git(patch: Path) -> None:
    numstat = subprocess.run(["git", "apply", "--numstat", str(patch)], capture_output=True,
                             text=True, check=True).stdout.split("\n")
    git_files = sorted(line.split("\t")[2] for line in numstat if line)
    diffs = apply.file_diffs(patch)
    assert sorted(f.new or f.old for f in diffs) == git_files
    n_at = sum(1 for line in patch.read_text().splitlines() if line.startswith("@@ "))
    assert sum(len(f.hunks) for f in diffs) == n_at > 0
    assert apply.touched_files(patch) == git_files


def test_new_and_deleted_files(tmp_path: Path) -> None:
    patch = tmp_path / "x.patch"
    patch.write_text("--- /dev/null\n+++ b/new.c\n@@ -0,0 +1,2 @@\n+a\n+b\n"
                     "--- a/gone.c\n+++ /dev/null\n@@ -1,3 +0,0 @@\n-a\n-b\n-c\n")
    diffs = apply.file_diffs(patch)
    assert [(f.old, f.new, f.hunks) for f in diffs] == [(None, "new.c", [(0, 0)]),
                                                         ("gone.c", None, [(1, 3)])]
    assert apply.touched_files(patch) == ["gone.c", "new.c"]


def test_a_cover_letter_has_no_file() -> None:
    assert apply.file_diffs(Path(paths.DEFAULT_SERIES) / "0000-cover-letter.patch") == []
