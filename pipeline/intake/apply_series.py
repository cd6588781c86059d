"""Applying a whole series in order, each patch onto the one before.

Reads the patch files split from b4's am-ready mbox; writes the commits into the worktree (through
apply.py) and each patch's log to <run>/steps/apply/<k>.log. Returns one entry per step (step 0
is the base) with its commit and apply result: a conflict blocks the patches after it, unless
the conflicting patch and those after it are already in the tree together.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.intake.apply import apply_one, head, present_together
from pipeline.progress import Progress


def apply_all(wt: Path, patch_files: list[Path], run_dir: Path, base_commit: str,
              progress: Progress) -> list[dict]:
    """Apply every patch; return per step {commit, apply} (step 0 is the base)."""
    out = [{"commit": base_commit, "apply": {"status": "applied", "detail": "base", "log": None}}]
    blocked_by = None
    together_until = 0
    for k, patch in enumerate(patch_files, start=1):
        log_rel = f"steps/apply/{k}.log"
        if k <= together_until:
            continue
        if blocked_by is not None:
            out.append({"commit": None, "apply": {
                "status": "blocked", "detail": f"not tried: patch {blocked_by} did not apply",
                "log": None}})
            continue
        progress.stage("apply", f"patch {k}/{len(patch_files)}")
        result = apply_one(wt, patch, run_dir / log_rel)
        if result.status == "conflict":
            together = _present_together(wt, patch_files, k, run_dir)
            if together:
                out += together
                together_until = k + len(together) - 1
                progress.info(f"patches {k}..{together_until} are already in the tree together")
                continue
        entry = {"status": result.status, "detail": result.detail, "log": log_rel}
        if result.hunks:
            entry["hunks"] = result.hunks
        if result.files:
            entry["files"] = result.files
        out.append({"commit": result.commit, "apply": entry})
        if result.status == "conflict":
            blocked_by = k
            progress.error(f"patch {k} does not apply: {result.detail} (log: {log_rel})")
    return out


def _present_together(wt: Path, patch_files: list[Path], k: int, run_dir: Path) -> list[dict]:
    """Steps k..j as already-present when patches k..j reverse-apply together (k does not
    apply and does not reverse-apply alone); [] when they do not."""
    count = present_together(wt, patch_files[k - 1:])
    if not count:
        return []
    last = k + count - 1
    detail = f"together with patches {k}..{last}: their changes are already in the tree"
    out = []
    for i in range(k, last + 1):
        log_rel = f"steps/apply/{i}.log"
        log = run_dir / log_rel
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ git apply --cached -R (patches {last}..{k}, last first)\n"
                       f"(reverse-apply together: not applied)\n")
        out.append({"commit": head(wt),
                    "apply": {"status": "already-present", "detail": detail, "log": log_rel}})
    return out
