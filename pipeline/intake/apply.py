"""Applying a series one patch at a time with `git am -3`.

Reads the am-ready mbox b4 wrote; writes one commit per applied patch into a worktree, and
each patch's am output to <run>/steps/<k>/apply.log. Classifies every patch (DESIGN.md):
applied, applied-3way, already-present (the patch reverse-applies, alone or together with the
patches after it), conflict (with the files and failing hunks from `git apply --check --reject
-v`, git's hint lines dropped) or blocked (after a conflict).
"""

from __future__ import annotations

import mailbox
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# Fixed committer so the same patches on the same base give the same commit ids.
COMMITTER = {"GIT_COMMITTER_NAME": "kpipe", "GIT_COMMITTER_EMAIL": "kpipe@localhost"}


@dataclass
class ApplyResult:
    status: str
    commit: str | None
    detail: str = ""
    hunks: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def split_mbox(mbx: Path, outdir: Path) -> list[Path]:
    """Write each message of the am-ready mbox to its own file; return them in order."""
    outdir.mkdir(parents=True, exist_ok=True)
    files = []
    box = mailbox.mbox(str(mbx), create=False)
    for i, key in enumerate(box.keys(), start=1):
        data = box.get_bytes(key)
        path = outdir / f"{i:04d}.patch"
        path.write_bytes(data)
        files.append(path)
    return files


def _git(wt: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **COMMITTER, **(env or {}))
    return subprocess.run(["git", "-C", str(wt), *args], capture_output=True, text=True,
                          env=full_env)


def head(wt: Path) -> str:
    return _git(wt, "rev-parse", "HEAD").stdout.strip()


_FAILED = re.compile(r"^(error: patch failed: .*|error: .*: patch does not apply|"
                     r"error: .*: does not exist in index|CONFLICT .*)$", re.M)


def apply_one(wt: Path, patch: Path, log: Path) -> ApplyResult:
    """`git am -3` one patch onto the worktree's HEAD and classify what happened."""
    forward = _git(wt, "apply", "--check", str(patch))
    if forward.returncode != 0 and _git(wt, "apply", "--check", "-R", str(patch)).returncode == 0:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ git apply --check -R {patch.name}\n(reverse-applies: not applied)\n")
        return ApplyResult("already-present", head(wt),
                           "the patch reverse-applies: its change is already in the tree")
    before = head(wt)
    proc = _git(wt, "am", "-3", "--committer-date-is-author-date", "--keep-non-patch",
                str(patch))
    output = proc.stdout + proc.stderr
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ git am -3 {patch.name}\n{output}")
    if proc.returncode == 0 and head(wt) == before:
        return ApplyResult("already-present", before, "git am: no changes, already applied")
    if proc.returncode == 0:
        status = "applied-3way" if "3-way merge" in output else "applied"
        return ApplyResult(status, head(wt), output.strip().splitlines()[-1] if output else "")
    hunks = _FAILED.findall(output)
    _git(wt, "am", "--abort")
    reverse = _git(wt, "apply", "--check", "-R", str(patch))
    if reverse.returncode == 0:
        return ApplyResult("already-present", head(wt),
                           "the patch reverse-applies: its change is already in the tree")
    if "Patch is empty" in output:
        return ApplyResult("conflict", None, "the patch is empty", hunks)
    where = conflict_where(wt, patch)
    if where.failing:
        return ApplyResult("conflict", None, where.detail(), where.failing, where.files)
    return ApplyResult("conflict", None, "; ".join(hunks) or _without_hints(output)[-300:],
                       hunks, sorted({h.split(":")[0] for h in hunks}))


_HINT = re.compile(r"^(hint: .*|When you have resolved this problem.*|If you prefer to skip.*|"
                   r"To restore the original branch.*|Use 'git am --show-current-patch.*|"
                   r"Patch failed at .*)$")


def _without_hints(output: str) -> str:
    """git am's output without its advice lines."""
    return "\n".join(line for line in output.strip().splitlines()
                     if not _HINT.match(line)).strip()


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@", re.M)
_PATCH_FAILED = re.compile(r"^error: patch failed: (.+):(\d+)$", re.M)


@dataclass
class Where:
    """Where a patch fails: per file its hunk count, and the failing hunks."""
    total: dict[str, int]
    failing: list[str]
    files: list[str]

    def detail(self) -> str:
        n_total = sum(self.total.values())
        n_fail = len(self.failing)
        return f"{n_total - n_fail} of {n_total} hunk(s) apply; failing: {'; '.join(self.failing)}"


@dataclass
class FileDiff:
    """One file's part of a patch: its old and new names (None for /dev/null) and its hunks
    as (old start, old length)."""
    old: str | None
    new: str | None
    hunks: list[tuple[int, int]]


def file_diffs(patch: Path) -> list[FileDiff]:
    """Each file a patch changes, from its ---/+++ headers and @@ lines. Written here: git
    has no machine-readable form of a patch's hunks that needs no tree, and this is the one
    parser kpipe has of them."""
    out: list[FileDiff] = []
    old: str | None = None
    for line in patch.read_text(errors="replace").splitlines():
        if line.startswith("--- "):
            old = _header_path(line[4:], "a/")
        elif line.startswith("+++ "):
            out.append(FileDiff(old, _header_path(line[4:], "b/"), []))
        elif out and (m := _HUNK.match(line)):
            out[-1].hunks.append((int(m[1]), int(m[2] or 1)))
    return out


def _header_path(name: str, prefix: str) -> str | None:
    name = name.split("\t")[0].strip()
    if name == "/dev/null":
        return None
    return name[len(prefix):] if name.startswith(prefix) else name


def _hunks_by_file(patch: Path) -> dict[str, list[tuple[int, int]]]:
    """Each file's hunks, keyed by the path git apply names (the new one, or the old one
    for a deletion)."""
    return {(f.new or f.old or ""): f.hunks for f in file_diffs(patch)}


def conflict_where(wt: Path, patch: Path) -> Where:
    """The failing hunks of a patch on the worktree as it stands (nothing is written)."""
    hunks = _hunks_by_file(patch)
    proc = _git(wt, "apply", "--check", "--reject", "-v", str(patch))
    failing, files = [], []
    for path, line in _PATCH_FAILED.findall(proc.stdout + proc.stderr):
        start = int(line)
        numbered = list(enumerate(hunks.get(path, []), start=1))
        number, length = next(((n, ln) for n, (s, ln) in numbered if s == start), (0, 1))
        label = f"hunk #{number}" if number else "hunk"
        failing.append(f"{path}: {label} at lines {start}-{start + max(length, 1) - 1}")
        if path not in files:
            files.append(path)
    return Where({f: len(h) for f, h in hunks.items()}, failing, files)


def present_together(wt: Path, patches: list[Path]) -> int:
    """How many of `patches` (from the first) are in the tree together: the longest run
    1..j that reverse-applies, last patch first, on the tree as it stands; 0 when none."""
    for j in range(len(patches), 1, -1):
        if _reverse_applies_in_order(wt, patches[:j]):
            return j
    return 0


def _reverse_applies_in_order(wt: Path, run: list[Path]) -> bool:
    """Reverse-apply `run` last-first in a scratch index; the worktree is not touched."""
    with tempfile.TemporaryDirectory(prefix="kpipe-rev-") as scratch:
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        if _git(wt, "read-tree", "HEAD", env=env).returncode != 0:
            return False
        for patch in reversed(run):
            if _git(wt, "apply", "--cached", "-R", str(patch), env=env).returncode != 0:
                return False
    return True


def touched_files(patch: Path) -> list[str]:
    """Paths a patch changes (old and new names, from its diff headers)."""
    return sorted({name for f in file_diffs(patch) for name in (f.old, f.new) if name})


def patch_id(patch: Path) -> str:
    """git's stable patch id: the same change gives the same id whatever its mail."""
    proc = subprocess.run(["git", "patch-id", "--stable"], input=patch.read_bytes(),
                          capture_output=True)
    out = proc.stdout.decode().split()
    return out[0] if out else ""
