#!/usr/bin/env python3
"""Repeated runs of the vhost-scsi-migration suite on a finished run's base and tip kernels.

Reads a run (its directory, or its id under the reports dir): the record, the base and tip
steps' bzImage, System.map and .config, and the run's base commit (the L2 kernel is built
from it, or taken from the cache). Boots each kernel N times as `kpipe run` does
(pipeline/run/boot_steps.boot_once), with the migration suite only; each boot's output goes
into the step's directory as bench-migration-<n>/. Prints one line per attempt (status, the
case's seconds, the boot's wall time, the case's message) and one with the case's phases as
its log gives them (L2 boot to ready, destination start, first pass, reads, completion,
destination check), and, per step, how many attempts passed and failed and the case's and
each phase's minimum, median and maximum seconds. Exit 1 when a step's attempts disagree (a
flake).

    .venv/bin/python bench/migration_runs.py RUN [-n 5] [--suite vhost-scsi-migration]
        [--step base|tip]
"""

from __future__ import annotations

import argparse
import re
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
# phase -> the case log's wording of its seconds (virtme-tests/vhost-scsi-migration/migration.py)
PHASES = {
    "l2-boot": r"source L2 booted to ready in ([\d.]+) s",
    "dest-start": r"destination QEMU started \(-incoming\) in ([\d.]+) s",
    "first-pass": r"first pass done after ([\d.]+) s",
    "reads": r"through it in ([\d.]+) s",
    "completion": r"migration completed ([\d.]+) s after the cap was raised",
    "check": r"compared its page cache with O_DIRECT reads in ([\d.]+) s",
}


def phases(log: Path) -> dict[str, float]:
    """The seconds of each phase the case's log names."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return {}
    return {name: float(m.group(1)) for name, rx in PHASES.items()
            if (m := re.search(rx, text))}


def spread(values: list[float]) -> str:
    return (f"{min(values):.1f}/{statistics.median(values):.1f}/{max(values):.1f}"
            if values else "-")


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
    ap.add_argument("--step", choices=("base", "tip"), help="one end only (default both)")
    args = ap.parse_args()
    rdir = run_dir(args.run)
    rec = record.load(rdir)
    tip = len(rec["series"]["patches"])
    wanted = {"base": (0,), "tip": (tip,), None: (0, tip)}[args.step]
    ends = [s for s in rec["steps"] if s["index"] in wanted
            and s["build"].get("status") == "pass"]
    if not ends:
        sys.exit(f"{rdir}: neither the base nor the tip was built")
    flaky = False
    for step in ends:
        statuses, seconds = [], []
        times: dict[str, list[float]] = {name: [] for name in PHASES}
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
                got = phases(rdir / t["log"]) if t.get("log") else {}
                for name, value in got.items():
                    times[name].append(value)
                print(f"  phases (s): {', '.join(f'{k} {v:.1f}' for k, v in got.items())}",
                      flush=True)
        counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
        case_spread = (f"case {min(seconds):.0f}/{statistics.median(seconds):.0f}/"
                  f"{max(seconds):.0f} s (min/median/max)" if seconds else "no case times")
        print(f"step {step['index']}: {', '.join(f'{v} {k}' for k, v in counts.items())} of "
              f"{len(statuses)}; {case_spread}", flush=True)
        print(f"  phases min/median/max (s): "
              f"{', '.join(f'{k} {spread(v)}' for k, v in times.items())}", flush=True)
        flaky |= len(counts) > 1
    return 1 if flaky else 0


if __name__ == "__main__":
    sys.exit(main())
