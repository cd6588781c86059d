#!/usr/bin/env python3
"""Overlap benchmark: a series run with each step booted while the next builds, and the same
run with `--no-overlap` (each step boots before the next builds), side by side.

Reads a series (default: patches/vhost-scsi-log-6.12) and the shared cache (the imported tree,
ccache and the build places, so a warm ccache is used: say so beside the figures); writes its
runs into a temporary reports dir (so no step is reused from an earlier run, and none of these
runs feeds a later one). Every run is `--no-cache`; a `--no-boot` run of the series goes
first, unmeasured, so that the build place the measured runs take holds the series' tip (a
place left wiped by an interrupted run would otherwise make the first run rebuild it all;
`--no-warm-up` leaves it out when the place is known to hold the tip already).
Prints, for each mode and round, the wall
time, the load average before and after, the record's stage times (the walk, `boot-wait`,
confirm), the sum of the steps' build and boot seconds, and the ratio of the two modes' medians.
Rounds alternate the modes so that a change in the host's load falls on both.

    .venv/bin/python bench/overlap_bench.py [SERIES] [--rounds N] [--suite NAME ...]
                                            [--no-warm-up] [--only MODE]
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

from pipeline import paths  # noqa: E402

MODES = {"overlap": [], "no-overlap": ["--no-overlap"]}


def one_run(series: str, reports: Path, extra: list[str]) -> dict:
    env = dict(os.environ, KPIPE_REPORTS=str(reports))
    load0, start = os.getloadavg(), time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", series, "--no-cache",
                           "--json", *extra], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.monotonic() - start
    try:
        rec = json.loads(proc.stdout)
    except ValueError:
        sys.exit(f"kpipe run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    steps = rec["steps"]
    return {"wall": wall, "load": (load0[0], os.getloadavg()[0]), "exit": proc.returncode,
            "stages": rec["stages"], "overlap": rec.get("overlap"),
            "build": sum(s["build"].get("seconds") or 0 for s in steps),
            "boot": sum(s["boot"].get("total_seconds") or 0 for s in steps),
            "steps": len(steps), "place": (rec["host"].get("build_place") or {}).get("path")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("series", nargs="?", default=str(paths.DEFAULT_SERIES))
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--suite", action="append", default=[])
    ap.add_argument("--no-warm-up", dest="warm_up", action="store_false")
    ap.add_argument("--only", choices=list(MODES), help="run one mode only (no ratio)")
    args = ap.parse_args()
    extra = [a for s in args.suite for a in ("--suite", s)]
    modes = [args.only] if args.only else list(MODES)
    walls: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="kpipe-overlap-bench-") as tmp:
        if args.warm_up:
            warm = one_run(args.series, Path(tmp) / "warm", ["--no-boot"])
            print(f"warm-up (--no-boot, not measured): {warm['wall']:.0f} s, place "
                  f"{warm['place']}", flush=True)
        for n in range(args.rounds):
            order = modes if n % 2 == 0 else list(reversed(modes))
            for mode in order:
                got = one_run(args.series, Path(tmp) / f"{mode}-{n}", extra + MODES[mode])
                walls[mode].append(got["wall"])
                stages = ", ".join(f"{k} {v}" for k, v in got["stages"].items())
                print(f"{mode:>10} round {n + 1}: {got['wall']:.0f} s wall, exit {got['exit']}, "
                      f"{got['steps']} steps, builds {got['build']:.0f} s + boots "
                      f"{got['boot']:.0f} s summed; load {got['load'][0]:.2f} -> "
                      f"{got['load'][1]:.2f}; stages: {stages}; place {got['place']}",
                      flush=True)
    medians = {m: statistics.median(w) for m, w in walls.items()}
    if args.only:
        return
    print(f"median wall: overlap {medians['overlap']:.0f} s, no-overlap "
          f"{medians['no-overlap']:.0f} s; no-overlap / overlap = "
          f"{medians['no-overlap'] / medians['overlap']:.2f}")


if __name__ == "__main__":
    main()
