"""The ablation page of a `kpipe ablate` run: each patch's hunks and what covers them.

Reads the run's record (its `ablation` and `series` sections); writes ablation.html in the
run directory (templates/ablation.html).
"""

from __future__ import annotations

from pathlib import Path

from pipeline import atomic
from pipeline.report.env import environment

PAGE = "ablation.html"

WORDS = {"needed-to-build": "needed to build", "unnoticed": "no test notices it"}


def verdict(entry: dict) -> str:
    """A hunk's result in words: "needed by a/b, c/d", "needed to build", ..."""
    if entry["status"] == "needed":
        return "needed by " + ", ".join(entry["needed_by"])
    if entry["status"] == "error":
        return "could not tell: " + str(entry["boot"].get("detail") or entry["boot"]["status"])
    return WORDS[entry["status"]]


def patches(rec: dict) -> list[dict]:
    """Each series patch with its hunks (and one group for hunks no patch claims)."""
    hunks = rec["ablation"]["hunks"]
    out = [{"number": k, "subject": p.get("subject", ""),
            "hunks": [h for h in hunks if h["patch"] == k]}
           for k, p in enumerate(rec["series"]["patches"], start=1)]
    if stray := [h for h in hunks if h["patch"] is None]:
        out.append({"number": None, "subject": "(no patch found)", "hunks": stray})
    return out


def render(rec: dict) -> str:
    ablation = rec["ablation"]
    counts = {s: sum(h["status"] == s for h in ablation["hunks"])
              for s in ("needed", "needed-to-build", "unnoticed", "error")}
    return environment().get_template(PAGE).render(
        rec=rec, ablation=ablation, patches=patches(rec), verdict=verdict, counts=counts)


def write(run_dir: Path, rec: dict) -> Path:
    return atomic.write_text(run_dir / PAGE, render(rec))
