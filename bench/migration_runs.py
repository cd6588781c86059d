#!/usr/bin/env python3
"""Repeated runs of the vhost-scsi-migration suite on a finished run's base and tip kernels.

Reads a run (its directory, or its id under the reports dir): the record, the base and tip
steps' bzImage, System.map and .config, and the run's base commit (the L2 kernel is built
from it, or taken from the cache). Boots each kernel N times as `kpipe run` does
(pipeline/run/boot_steps.boot_once), with the migration suite only; each boot's output goes
into the step's directory as bench-migration-<n>/. Prints one line per attempt (status, the
case's seconds, the boot's wall time, the case's message) and, per step, how many attempts
passed and failed and the case's minimum, median and maximum seconds. Exit 1 when a step's
attempts disagree (a flake).

    .venv/bin/python bench/migration_runs.py RUN [-n 5] [--suite vhost-scsi-migration]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import paths  # noqa: E402
from pipeline.record import store as record  # noqa: E402
from pipeline.run.boot_steps import boot_once  # noqa: E402

SUITE = "vhost-scsi-migration"


def run_dir(arg: str) -> Path:
    path = Path(arg)
    if not path.is_dir():
        path = paths.runs_dir() / arg
    if not (path / "results.json").is_file():
        sys.exit(f"{arg}: not a run directory (no results.json)")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("-n", type=int, default=5, help="attempts per kernel (default 5)")
    ap.add_argument("--suite", default=SUITE, help=f"suite to run (default {SUITE})")
    args = ap.parse_args()
    rdir = run_dir(args.run)
    rec = record.load(rdir)
    tip = len(rec["series"]["patches"])
    ends = [s for s in rec["steps"] if s["index"] in (0, tip)
            and s["build"].get("status") == "pass"]
    if not ends:
        sys.exit(f"{rdir}: neither the base nor the tip was built")
    flaky = False
    for step in ends:
        statuses, seconds = [], []
        for n in range(1, args.n + 1):
            t0 = time.monotonic()
            result = boot_once(step, rdir / step["dir"], f"{step['dir']}/bench-migration-{n}",
                               [args.suite], n, base=rec["base"])
            wall = time.monotonic() - t0
            tests = [t for t in result["tests"] if t["suite"] == Path(args.suite).name]
            for t in tests or [{"case": "-", "status": result["boot"]["status"],
                                "seconds": None, "message": result["boot"].get("detail")}]:
                statuses.append(t["status"])
                if t["seconds"] is not None:
                    seconds.append(t["seconds"])
                secs = f"{t['seconds']:.0f} s" if t["seconds"] is not None else "-"
                print(f"step {step['index']} attempt {n}: {t['case']} {t['status']} "
                      f"(case {secs}, boot wall {wall:.0f} s): {t.get('message', '')}",
                      flush=True)
        counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
        spread = (f"case {min(seconds):.0f}/{statistics.median(seconds):.0f}/"
                  f"{max(seconds):.0f} s (min/median/max)" if seconds else "no case times")
        print(f"step {step['index']}: {', '.join(f'{v} {k}' for k, v in counts.items())} of "
              f"{len(statuses)}; {spread}", flush=True)
        flaky |= len(counts) > 1
    return 1 if flaky else 0


if __name__ == "__main__":
    sys.exit(main())
