#!/usr/bin/env python3
"""Run-history benchmark: reuse look-up, viewer refresh and index page size over N records.

Reads a real record from tests/golden/records/ (default: default-series) and makes N synthetic
runs of it (tests/synthetic_runs.py) in a temporary reports dir per N; writes only there.
Prints, for each N, the index beside the code before it: the full scan of every results.json
(keys.find_reusable_scan, kept for this comparison) and, with --old, the viewer of a checkout
of the commit before the index, run on the same records:
- look-up: one reuse look-up that finds nothing (the worst case, median of 5; the index's
  after it is up to date), and one that finds the oldest run;
- index build: a first refresh from the records (`kpipe index --rebuild`'s work);
- refresh: the viewer's refresh (viewer.write_viewer: index page, stale run pages,
  comparisons) once every run page is rendered, and the index refresh after one new record;
- page: the size of the first index page written (before: every run listed).

    .venv/bin/python bench/index_bench.py [-n 100 1000 10000] [--record default-series]
        [--old /tmp/kpipe-old]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import synthetic_runs  # noqa: E402

from pipeline.record import index, keys  # noqa: E402
from pipeline.report import html, viewer  # noqa: E402


def timed(fn, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def mark_pages_fresh(reports: Path) -> None:
    """Give every run a report.html newer than its record (as a history of rendered runs has),
    so a viewer refresh renders only what changed; one real page, hard-linked."""
    runs = sorted((reports / "runs").iterdir())
    first = runs[0] / html.REPORT_FILE
    html.write_run(runs[0])
    for run in runs[1:]:
        os.link(first, run / html.REPORT_FILE)
    now = time.time() + 1
    for run in runs:
        os.utime(run / html.REPORT_FILE, (now, now))


def bench(n: int, record: str, old: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="kpipe-index-bench-") as tmp:
        reports = Path(tmp) / "reports"
        os.environ["KPIPE_REPORTS"] = str(reports)
        synthetic_runs.make_runs(reports, n, record)
        mark_pages_fresh(reports)
        oldest = synthetic_runs.step_key(0, 0)

        scan_miss = timed(lambda: keys.find_reusable_scan("no-such-key", "none"), 3)
        scan_hit = timed(lambda: keys.find_reusable_scan(oldest, "none"), 3)
        build = timed(lambda: index.rebuild(reports))
        miss = timed(lambda: keys.find_reusable("no-such-key", "none"), 5)
        hit = timed(lambda: keys.find_reusable(oldest, "none"), 5)
        assert keys.find_reusable(oldest, "none")[0] == synthetic_runs.run_id(0)

        viewer.write_viewer(reports)  # the first call renders the comparisons
        refresh = timed(lambda: viewer.write_viewer(reports))
        page = (reports / viewer.INDEX_FILE).stat().st_size
        synthetic_runs.make_runs(reports, 1)  # run 0 written again: one changed record
        one_new = timed(lambda: index.refresh(reports))

        old_refresh, old_page = old_viewer(reports, old) if old else (None, None)
        before = (f"{old_refresh:6.2f} s", f"{old_page / 1024:8.1f} KB") if old_refresh \
            is not None and old_page is not None else ("not run (no --old)",) * 2

        print(f"N={n:>6}  look-up miss {miss * 1e3:8.2f} ms (scan {scan_miss * 1e3:9.1f} ms)"
              f"  hit {hit * 1e3:6.2f} ms (scan {scan_hit * 1e3:9.1f} ms)")
        print(f"{'':9}index build {build:6.2f} s  refresh after one record {one_new * 1e3:6.1f}"
              f" ms  viewer refresh {refresh:6.3f} s (before: {before[0]})")
        print(f"{'':9}first index page {page / 1024:7.1f} KB (before, every run listed: "
              f"{before[1]})", flush=True)


OLD_VIEWER = """
import sys, time
from pathlib import Path
from pipeline.report import viewer
reports = Path(sys.argv[1])
viewer.write_viewer(reports)  # the first call renders the comparisons
start = time.perf_counter()
page = viewer.write_viewer(reports)
print(time.perf_counter() - start, page.stat().st_size)
"""


def old_viewer(reports: Path, old: Path) -> tuple[float, int]:
    """(seconds, index page bytes) of the viewer refresh of the kpipe checkout `old`."""
    out = subprocess.run([sys.executable, "-c", OLD_VIEWER, str(reports)], cwd=old,
                         env=dict(os.environ, PYTHONPATH=str(old)), check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, nargs="+", default=[100, 1000, 10_000])
    ap.add_argument("--record", default="default-series")
    ap.add_argument("--old", type=Path, help="a checkout of the kpipe before the index (e.g. "
                    "`git worktree add /tmp/kpipe-old 68f8278`): its viewer refresh and page")
    args = ap.parse_args()
    size = len(json.dumps(json.loads(
        (synthetic_runs.RECORDS / args.record / "results.json").read_text()), indent=1))
    print(f"records: synthetic copies of tests/golden/records/{args.record} "
          f"({size / 1024:.0f} KB each)")
    for n in args.n:
        bench(n, args.record, args.old)
    return 0


if __name__ == "__main__":
    sys.exit(main())
