"""The viewer over all runs: an index page, each run's page, and two-run comparisons.

Reads the run index (pipeline/record/index.py) and the records of the runs it renders; writes
<reports>/index.html (the newest PER_PAGE runs; `kpipe serve` renders any page and filter by
series, outcome, tree and date, each one query of the index), a run's report.html when it is
missing or older than its record, and <reports>/compare/<a>..<b>.html for each pair among the
newest runs of a series. `kpipe serve` renders any other pair on demand. All links are
relative, so the viewer works from file:// as well as over HTTP.
"""

from __future__ import annotations

import itertools
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from pipeline import atomic
from pipeline.record import index
from pipeline.record import store as record
from pipeline.report import compare, html, model
from pipeline.report.env import render
from pipeline.report.text import one_line

INDEX_FILE = "index.html"
COMPARE_DIR = "compare"
COMPARE_RECENT = 6  # pairs are pre-rendered among this many newest runs of each series
PER_PAGE = 50
FILTERS = ("series", "outcome", "tree", "date")
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
        return one_line(index.series_name(self.rec))

    @property
    def revision(self) -> int | None:
        return (self.rec.get("series") or {}).get("revision")


def load_runs(reports: Path) -> list[Run]:
    """Every readable run record, oldest first (run ids start with their UTC time)."""
    runs = []
    root = reports / "runs"
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        rec = record.load_or_none(path)
        if rec is not None and RUN_ID.match(str(rec.get("run_id", ""))):
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


def load_run(reports: Path, run_id: str) -> Run | None:
    """One run by id, read from its record, or None."""
    if not RUN_ID.match(run_id):
        return None
    rec = record.load_or_none(reports / "runs" / run_id)
    return Run(reports / "runs" / run_id, rec) if rec is not None else None


def render_index(reports: Path, filters: dict[str, str] | None = None, page: int = 1) -> str:
    """One page of the index (PER_PAGE runs, newest first), filtered by the index's query."""
    filters = {k: v for k, v in (filters or {}).items() if k in FILTERS and v}
    runs, total = index.list_runs(reports, filters, page, PER_PAGE)
    pages = max(1, -(-total // PER_PAGE))
    pre = [compare_name(a, b) for ids in index.newest_per_series(reports, COMPARE_RECENT)
           for a, b in itertools.combinations(ids, 2)]

    def href(to_page: int) -> str:
        return "?" + urllib.parse.urlencode({**filters, "page": to_page})

    return render("index.html", runs=runs, total=total, page=page, pages=pages,
                  filters=filters, choices=index.choices(reports), href=href,
                  compare_name=compare_name, compare_pairs=pre)


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
    """Refresh the index, stale run pages and the comparisons; return the index page's path.
    Only records whose page is missing or older than the record are read."""
    mtimes = index.run_mtimes(reports)
    for run_id, mtime in mtimes.items():
        page = reports / "runs" / run_id / html.REPORT_FILE
        if not page.exists() or page.stat().st_mtime_ns < mtime:
            if run := load_run(reports, run_id):
                ensure_run_page(run)
    for ids in index.newest_per_series(reports, COMPARE_RECENT):
        for a_id, b_id in itertools.combinations(ids, 2):
            target = reports / COMPARE_DIR / compare_name(a_id, b_id)
            if target.exists() and target.stat().st_mtime_ns >= max(mtimes[a_id],
                                                                   mtimes[b_id]):
                continue
            a, b = load_run(reports, a_id), load_run(reports, b_id)
            if a and b:
                write_compare(reports, a, b)
    return atomic.write_text(reports / INDEX_FILE, render_index(reports))
