"""Applying a series one patch at a time with `git am -3`.

Reads the am-ready mbox b4 wrote; writes one commit per applied patch into a worktree, and
each patch's am output to <run>/steps/<k>/apply.log. Classifies every patch (DESIGN.md):
applied, applied-3way, already-present (the patch reverse-applies), conflict (with the failing
hunks) or blocked (after a conflict).
"""

from __future__ import annotations

import mailbox
import os
import re
import subprocess
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
    return ApplyResult("conflict", None, "; ".join(hunks) or output.strip()[-300:], hunks)


def touched_files(patch: Path) -> list[str]:
    """Paths a patch changes (from its diff headers)."""
    text = patch.read_text(errors="replace")
    return sorted(set(re.findall(r"^\+\+\+ b/(\S+)", text, re.M))
                  | set(re.findall(r"^--- a/(\S+)", text, re.M)))


def patch_id(patch: Path) -> str:
    """git's stable patch id: the same change gives the same id whatever its mail."""
    proc = subprocess.run(["git", "patch-id", "--stable"], input=patch.read_bytes(),
                          capture_output=True)
    out = proc.stdout.decode().split()
    return out[0] if out else ""
