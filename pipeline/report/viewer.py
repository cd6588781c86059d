"""The viewer over all runs: an index page, each run's page, and two-run comparisons.

Reads every <reports>/runs/<run-id>/results.json; writes <reports>/index.html (runs listed
newest first, filterable by series and outcome), a run's report.html when it is missing or older
than its record, and <reports>/compare/<a>..<b>.html for each pair among the newest runs of a
series. `kpipe serve` renders any other pair on demand. All links are relative, so the viewer
works from file:// as well as over HTTP.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline import atomic
from pipeline.report import compare, html, model
from pipeline.report.env import render
from pipeline.report.text import one_line

INDEX_FILE = "index.html"
COMPARE_DIR = "compare"
COMPARE_RECENT = 6  # pairs are pre-rendered among this many newest runs of each series
RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$")


@dataclass
class Run:
    dir: Path
    rec: dict

    @property
    def id(self) -> str:
        return self.rec["run_id"]

    @property
    def series(self) -> str:
        ser = self.rec.get("series")
        return one_line(ser["subject"]) if ser else "(no series read)"

    @property
    def revision(self) -> int | None:
        return (self.rec.get("series") or {}).get("revision")


def load_runs(reports: Path) -> list[Run]:
    """Every readable run record, oldest first (run ids start with their UTC time)."""
    runs = []
    root = reports / "runs"
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            rec = json.loads((path / "results.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and RUN_ID.match(str(rec.get("run_id", ""))):
            runs.append(Run(path, rec))
    return runs


def compare_name(a: str, b: str) -> str:
    return f"{a}..{b}.html"


def pairs(runs: list[Run]) -> list[tuple[Run, Run]]:
    """(older, newer) pairs of runs of the same series among each series' newest runs."""
    out = []
    for _, group in itertools.groupby(sorted(runs, key=lambda r: (r.series, r.id)),
                                      key=lambda r: r.series):
        out += itertools.combinations(list(group)[-COMPARE_RECENT:], 2)
    return out


def verdict_summary(rec: dict) -> list[str]:
    """`fixed-by patch 3, 4, 5`-style lines, one per verdict kind."""
    steps: dict[str, set[int]] = {}
    for v in rec["verdicts"]:
        steps.setdefault(v["kind"], set()).add(v["step"])
    return [f"{kind} {', '.join(model.step_label(k) for k in sorted(found))}"
            for kind, found in steps.items()]


def render_index(runs: list[Run]) -> str:
    newest = list(reversed(runs))
    previous: dict[str, str] = {}
    prev_of: dict[str, str] = {}
    for run in runs:
        if run.series in previous:
            prev_of[run.id] = previous[run.series]
        previous[run.series] = run.id
    return render("index.html", runs=newest, prev_of=prev_of, model=model,
                  verdict_summary=verdict_summary, compare_name=compare_name,
                  series_names=sorted({r.series for r in runs}),
                  outcomes=sorted({model.outcome(r.rec) for r in runs}),
                  compare_pairs=[compare_name(a.id, b.id) for a, b in pairs(runs)])


def render_compare(a: Run, b: Run) -> str:
    return render("compare.html", a=a, b=b, diffs=compare.differences(a.rec, b.rec),
                  only_a=compare.verdicts_only_in(a.rec, b.rec),
                  only_b=compare.verdicts_only_in(b.rec, a.rec),
                  verdict_summary=verdict_summary,
                  matrices=[(r, [{"config": c, "rows": model.rows(r.rec, c),
                                  "tests": model.test_keys(r.rec)}
                                 for c in model.configs(r.rec)]) for r in (a, b)])


def ensure_run_page(run: Run) -> Path:
    """The run's report.html, rendered again when missing or older than the record."""
    page = run.dir / html.REPORT_FILE
    if _stale(page, run):
        html.write_run(run.dir, run.rec)
    return page


def _stale(page: Path, *runs: Run) -> bool:
    if not page.exists():
        return True
    return any(page.stat().st_mtime < (r.dir / "results.json").stat().st_mtime for r in runs)


def write_compare(reports: Path, a: Run, b: Run) -> Path:
    """The comparison page of two runs, rendered again when missing or older than a record."""
    target = reports / COMPARE_DIR / compare_name(a.id, b.id)
    if _stale(target, a, b):
        atomic.write_text(target, render_compare(a, b))
    return target


def write_viewer(reports: Path) -> Path:
    """Refresh the index, missing run pages and the comparisons; return the index path."""
    runs = load_runs(reports)
    for run in runs:
        ensure_run_page(run)
    for a, b in pairs(runs):
        write_compare(reports, a, b)
    return atomic.write_text(reports / INDEX_FILE, render_index(runs))
