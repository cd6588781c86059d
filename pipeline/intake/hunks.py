"""A series' whole diff hunk by hunk, and the patch that brought each hunk.

Reads the worktree's git history (`git diff -U3 base tip`, `git blame` at the tip); writes
each hunk as its own one-hunk patch (the file's diff header and that hunk) into a folder, for
`git apply -R`. File names and old ranges come from apply.file_diffs, the one parser of a
patch's diff headers; only the new side's start is read from the @@ line here.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline.intake import apply

_NEW = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


@dataclass
class Hunk:
    index: int  # 1-based, in the order of the diff
    file: str  # the path at the tip (the old one for a deletion)
    old: tuple[int, int]  # (start, length) at the base
    new: tuple[int, int]  # (start, length) at the tip
    header: str  # the @@ line
    patch: Path  # the one-hunk patch

    def hunk_id(self) -> str:
        """What the hunk changes, whatever its number: a hash of its one-hunk patch."""
        return hashlib.sha256(self.patch.read_bytes()).hexdigest()[:16]


def split(wt: Path, base: str, tip: str, out: Path) -> list[Hunk]:
    """The hunks of `git diff -U3 base tip`, each written to out/<n>.patch."""
    proc = subprocess.run(["git", "-C", str(wt), "diff", "-U3", "--no-color", "--no-renames",
                           base, tip], capture_output=True, text=True, errors="replace",
                          check=True)
    out.mkdir(parents=True, exist_ok=True)
    whole = out / "whole.diff"
    whole.write_text(proc.stdout)
    files = apply.file_diffs(whole)
    sections = re.split(r"(?m)^(?=diff --git )", proc.stdout)
    sections = [s for s in sections if s.startswith("diff --git ")]
    hunks: list[Hunk] = []
    for fd, section in zip(files, sections, strict=True):
        lines = section.splitlines(keepends=True)
        starts = [i for i, line in enumerate(lines) if line.startswith("@@ ")]
        head = "".join(lines[:starts[0]]) if starts else section
        for n, (i, old) in enumerate(zip(starts, fd.hunks, strict=True)):
            end = starts[n + 1] if n + 1 < len(starts) else len(lines)
            m = _NEW.match(lines[i])
            new = (int(m[1]), int(m[2] or 1)) if m else (0, 0)
            path = out / f"{len(hunks) + 1}.patch"
            path.write_text(head + "".join(lines[i:end]))
            hunks.append(Hunk(len(hunks) + 1, fd.new or fd.old or "", old, new,
                              lines[i].rstrip("\n"), path))
    return hunks


def blamed(wt: Path, hunk: Hunk, commits: list[str]) -> dict[int, int]:
    """How many of the hunk's new lines `git blame` at the tip gives to each series patch
    (1-based); empty for a hunk that only removes lines."""
    start, length = hunk.new
    if length <= 0:
        return {}
    proc = subprocess.run(["git", "-C", str(wt), "blame", "--porcelain", "-L",
                           f"{start},+{length}", commits[-1], "--", hunk.file],
                          capture_output=True, text=True, errors="replace")
    counts: dict[int, int] = {}
    for line in proc.stdout.splitlines():
        sha = line.split(" ", 1)[0]
        if len(sha) == 40 and sha in commits and not line.startswith("\t"):
            k = commits.index(sha) + 1
            counts[k] = counts.get(k, 0) + 1
    return counts


def introduced_by(wt: Path, hunk: Hunk, commits: list[str],
                  patch_files: list[Path]) -> tuple[int | None, list[int]]:
    """The series patch (1-based) that brought the hunk, and every patch with a line in it.
    The first is the one `git blame` at the tip names for most of its new lines; for a hunk
    that only removes lines, the last patch touching its file; None when neither says. Blame
    names the last patch to write a line, so a hunk whose lines an earlier patch added and a
    later one rewrote is the later one's: the list says both when both left lines in it."""
    counts = blamed(wt, hunk, commits)
    if counts:
        return max(counts, key=lambda k: counts[k]), sorted(counts)
    touching = [k for k, p in enumerate(patch_files, start=1)
                if hunk.file in apply.touched_files(p)]
    return (touching[-1], touching[-1:]) if touching else (None, [])
