#!/usr/bin/env python3
"""Boot benchmark: boots one built step N times the way `kpipe run` does, prints where the time
goes and how many boots failed before the guest runner started.

Reads a step directory of a kpipe run (bzImage, System.map, .config; default: step 0 of the
newest run in the reports dir that built one) and boots it with pipeline.boot.step (the run's
default settings, the smoke suite unless told otherwise), each boot in a temporary directory.
Prints one line per boot: from the console's timestamps (guest clock) kernel start to init,
vng's init (systemd-tmpfiles, udev coldplug and settle when a suite asks for udev), the guest
runner's own start, the first test and the tests; then the host-clock time from starting vng
to the first test, and the wall time; then the minimum, median and maximum of each column and
the early-failure count (boots whose first attempt never reached the runner, the flake the
retry rule absorbs).

    .venv/bin/python bench/boot_bench.py [STEP_DIR] [-n 10] [--suite smoke] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import paths  # noqa: E402
from pipeline.boot import step as bootstep  # noqa: E402
from pipeline.boot import vng as boot  # noqa: E402
from pipeline.record import store as record  # noqa: E402

STAMP = re.compile(r"^\[\s*(\d+\.\d+)\]\s*(.*)$")
# console line -> phase boundary it marks (virtme-ng-init's own log lines, the runner's marks)
MARKS = {
    "init": re.compile(r"Run \S+ as init process"),
    "tmpfiles": re.compile(r"virtme-ng-init: running systemd-tmpfiles"),
    "udev": re.compile(r"virtme-ng-init: Starting systemd-udevd"),
    "udev_done": re.compile(r"virtme-ng-init: udev is done"),
    "udev_skip": re.compile(r"virtme-ng-init: unable to find udevd"),  # udev off (vng.py)
    "script": re.compile(r"virtme-ng-init: starting script"),
    "runner": re.compile(re.escape(boot.RUNNER_START)),
    "first_case": re.compile(re.escape(boot.FIRST_CASE)),
    "runner_end": re.compile(re.escape(boot.RUNNER_END)),
}
# (label, from marks, to marks): guest-clock seconds between two console lines, each the first
# of its marks found (a boot without udev has udev_skip where udev's two marks would be)
COLUMNS = [
    ("kernel", (), ("init",)),
    ("init+tmpfiles", ("init",), ("udev", "udev_skip")),
    ("udev", ("udev",), ("udev_done",)),
    ("to script", ("udev_done", "udev_skip"), ("script",)),
    ("runner start", ("script",), ("runner",)),
    ("to 1st test", ("runner",), ("first_case",)),
    ("tests", ("first_case",), ("runner_end",)),
]


def marks(console: Path) -> dict[str, float]:
    """Guest-clock time of the first console line of each mark."""
    found: dict[str, float] = {}
    for line in console.read_text(errors="replace").splitlines():
        m = STAMP.match(line)
        if not m:
            continue
        for name, pattern in MARKS.items():
            if name not in found and pattern.search(m.group(2)):
                found[name] = float(m.group(1))
    return found


def phases(found: dict[str, float]) -> list[float | None]:
    out: list[float | None] = []
    def first(names: tuple[str, ...]) -> float | None:
        return next((found[n] for n in names if n in found), None)

    for _, start, end in COLUMNS:
        a = 0.0 if not start else first(start)
        b = first(end)
        out.append(round(b - a, 1) if a is not None and b is not None else None)
    return out


def newest_step_dir() -> Path:
    runs = sorted((p for p in paths.runs_dir().glob("*") if p.is_dir()), reverse=True)
    for run in runs:
        for step in sorted(run.glob("steps/*/0")):
            if (step / "bzImage").is_file():
                return step
    sys.exit(f"no built step in {paths.runs_dir()}: pass a step directory")


def step_localversion(step: Path) -> str:
    """The step's LOCALVERSION from its run's record (the smoke suite checks `uname -r`)."""
    run_dir = step.resolve().parents[2]
    rel = str(step.resolve().relative_to(run_dir))
    rec = record.load(run_dir)
    return next(s["localversion"] for s in rec["steps"] if s["dir"] == rel)


def fmt(value: float | None) -> str:
    return f"{value:7.1f}" if value is not None else "      -"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step_dir", nargs="?", type=Path)
    ap.add_argument("-n", type=int, default=10, help="boots (default 10)")
    ap.add_argument("--suite", action="append", help="suite to run (default: smoke)")
    ap.add_argument("--keep", type=Path, help="keep each boot's directory under KEEP")
    args = ap.parse_args()
    step = args.step_dir or newest_step_dir()
    suites = args.suite or ["smoke"]
    settings = bootstep.default_settings()
    localversion = step_localversion(step)
    print(f"step {step}\n{args.n} boots, suites {', '.join(suites)}, {settings.cpus} vCPU, "
          f"{settings.memory_mb} MiB, {os.cpu_count()} host CPUs, load "
          f"{os.getloadavg()[0]:.1f}")
    head = " ".join(f"{label:>13}" for label, _, _ in COLUMNS)
    print(f"{'boot':>4} {'accel':>5} {'status':>6} {'tries':>5} {head} {'1st test':>8} "
          f"{'wall':>7}")
    rows: list[list[float | None]] = []
    early, failed, walls, firsts = 0, 0, [], []
    scratch = Path(tempfile.mkdtemp(prefix="kpipe-boot-bench-"))
    try:
        for n in range(1, args.n + 1):
            out = (args.keep or scratch) / f"boot-{n:03d}"
            t0 = time.monotonic()
            result = bootstep.boot_and_test(step / "bzImage", step / "System.map",
                                            step / ".config", localversion, suites, out,
                                            settings)
            wall = time.monotonic() - t0
            booted = result["boot"]
            attempts = booted.get("attempts", [])
            early += len(attempts) > 1  # only a failure before the runner is retried
            failed += booted["status"] != "pass"
            console = out / booted["console"] if booted.get("console") else None
            row = (phases(marks(console)) if console and console.exists()
                   else [None] * len(COLUMNS))
            rows.append(row)
            walls.append(wall)
            first = booted.get("first_test_seconds")  # host clock, from vng's start
            if first is not None:
                firsts.append(first)
            cells = " ".join(f"{fmt(v):>13}" for v in row)
            print(f"{n:>4} {booted.get('accel', ''):>5} {booted['status']:>6} {len(attempts):>5} "
                  f"{cells} {fmt(first):>8} {wall:7.1f}", flush=True)
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for label, pick in (("min", min), ("median", statistics.median), ("max", max)):
        cells = []
        for col in range(len(COLUMNS)):
            values = [r[col] for r in rows if r[col] is not None]
            cells.append(f"{fmt(pick(values) if values else None):>13}")
        first = fmt(pick(firsts)) if firsts else fmt(None)
        print(f"{label:>18} {'':>5} {' '.join(cells)} {first:>8} {fmt(pick(walls))}")
    if firsts:
        print(f"boot to first test (host clock, from starting vng): min {min(firsts):.1f} s, "
              f"median {statistics.median(firsts):.1f} s, max {max(firsts):.1f} s")
    print(f"first attempt failed before the runner: {early} of {args.n}; "
          f"boots that failed after the retry: {failed} of {args.n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
