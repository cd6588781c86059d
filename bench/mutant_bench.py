#!/usr/bin/env python3
"""Mutant benchmark: do the vhost-scsi checks catch the wrong fixes kept in tests/mutants/, and
pass on the default series, run after run?

`kpipe run --no-boot` builds the default series, then one longer series made by real git in
a scratch clone of the imported tree: the series, then each mutant (a patch on the series'
tip) followed by its revert, so that every mutant's tree is a step of one run and is built
incrementally after the one before (a run whose first steps are reused starts from an empty
O= directory: one full compile, from ccache, instead of one per mutant). Then the series' tip
and each mutant's step are booted N times the way a run boots a step (pipeline.boot.step,
the vhost-scsi suite), the targets taking turns so that host load falls on all of them alike.
Each boot prints the status of the case that must notice the mutant and the first line of its
message; the end prints "caught k of N" per mutant and "passed k of N" for the series.

Reads the series in patches/vhost-scsi-log-6.12/ and tests/mutants/*.patch; writes its runs
under $KPIPE_REPORTS (set it to keep them apart) and boot output into a scratch directory.

    .venv/bin/python bench/mutant_bench.py [-n 5] [--mutant NAME ...] [--no-series]
        [--series-step STEP_DIR] [--parallel N] [--keep DIR] [--build-only]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import paths  # noqa: E402
from pipeline.boot import step as bootstep  # noqa: E402

MUTANTS = ROOT / "tests" / "mutants"
# the case that must fail on each mutant, and a phrase its failure must contain
CATCHES = {
    "log-eventfd": ("io-bitmap", "log eventfd"),
    "inflight-at-log-all": ("log-toggle", "in flight at LOG_ALL"),
}
SERIES_CASES = ("io-bitmap", "log-toggle")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def kpipe_build(series: Path) -> dict:
    """`kpipe run SERIES --no-boot --json`; the record."""
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(series),
                           "--no-boot", "--json"], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode not in (0, 1):
        sys.exit(f"kpipe run {series} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def mutant_series(record: dict, mutants: list[Path], out: Path) -> Path:
    """The default series, then each of `mutants` and its revert, formatted by git on the base
    the series ran on; the mutant of `mutants[i]` is step 7 + 2i."""
    base = record["base"]["commit"]
    clone = out / "tree"
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout",
                    record["base"]["tree"]["path"], str(clone)], check=True)
    git(clone, "checkout", "-q", "-b", "mutant", base)
    for key, value in (("user.name", "kpipe bench"), ("user.email", "bench@kpipe.invalid")):
        git(clone, "config", key, value)
    patches = sorted(str(p) for p in paths.DEFAULT_SERIES.glob("0*.patch")
                     if not p.name.startswith("0000-"))
    git(clone, "am", "-q", *patches)
    for i, mutant in enumerate(mutants):
        git(clone, "am", "-q", str(mutant))
        if i < len(mutants) - 1:
            git(clone, "revert", "--no-edit", "HEAD")
    series = out / "series"
    git(clone, "format-patch", "-q", "--thread", "--cover-letter", f"--base={base}",
        "-o", str(series), f"{base}..HEAD")
    cover = next(series.glob("0000-*.patch"))
    cover.write_text(cover.read_text().replace(
        "*** SUBJECT HERE ***", "vhost-scsi log series + mutants "
        + ", ".join(m.stem for m in mutants)))
    shutil.rmtree(clone)
    return series


def built_step(record: dict, index: int | None = None) -> tuple[Path, str]:
    """The directory and LOCALVERSION of step `index` (default: the tip), which must build."""
    run_dir = paths.runs_dir() / record["run_id"]
    seq = sorted(record["steps"], key=lambda s: s["index"])
    step = seq[-1] if index is None else seq[index]
    if step["build"]["status"] != "pass":
        sys.exit(f"run {record['run_id']}: step {step['index']} did not build")
    return run_dir / step["dir"], step["localversion"]


def verdict(name: str, tests: dict[str, dict]) -> tuple[bool, str]:
    """(as wanted, what the boot showed) for target `name` ('series' or a mutant)."""
    if name == "series":
        bad = [f"{c} {tests.get(c, {}).get('status', 'missing')}" for c in SERIES_CASES
               if tests.get(c, {}).get("status") != "pass"]
        return not bad, "; ".join(bad) or " ".join(f"{c} pass" for c in SERIES_CASES)
    case, phrase = CATCHES[name]
    t = tests.get(case, {})
    msg = (t.get("message") or "").splitlines()[0][:110] if t.get("message") else ""
    return (t.get("status") == "fail" and phrase in (t.get("message") or "")), \
        f"{case} {t.get('status', 'missing')}: {msg}"


def boot_once(name: str, n: int, step: Path, localversion: str, out: Path,
              settings: bootstep.BootSettings) -> tuple[str, bool, str]:
    """One boot of target `name`; (name, as wanted, the line to print)."""
    t0 = time.monotonic()
    res = bootstep.boot_and_test(step / "bzImage", step / "System.map", step / ".config",
                                 localversion, ["vhost-scsi"], out, settings)
    ok, shown = verdict(name, {t["case"]: t for t in res.get("tests", [])})
    return name, ok, (f"{n} {name:20} {'as wanted' if ok else 'NOT AS WANTED':13} "
                      f"boot {res['boot']['status']} {time.monotonic() - t0:5.0f} s  {shown}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5, help="boots per target (default 5)")
    ap.add_argument("--mutant", action="append", choices=sorted(CATCHES),
                    help="mutants to run (default: all)")
    ap.add_argument("--no-series", action="store_true",
                    help="boot only the mutants (the series is still built: they need it)")
    ap.add_argument("--series-step", type=Path,
                    help="boot this built step of a kpipe run as the series' tip, and build "
                         "and boot no mutant")
    ap.add_argument("--parallel", type=int, default=1, help="boots at a time (default 1)")
    ap.add_argument("--keep", type=Path, help="keep each boot's directory under KEEP")
    ap.add_argument("--build-only", action="store_true", help="build the tips, boot nothing")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="kpipe-mutant-bench-"))
    t_start = time.monotonic()
    targets: dict[str, tuple[Path, str]] = {}
    try:
        if args.series_step:
            targets["series"] = (args.series_step, bootstep_localversion(args.series_step))
        else:
            t0 = time.monotonic()
            base_rec = kpipe_build(paths.DEFAULT_SERIES)
            if not args.no_series:
                targets["series"] = built_step(base_rec)
            print(f"series: run {base_rec['run_id']} ({time.monotonic() - t0:.0f} s)",
                  flush=True)
            names = args.mutant or sorted(CATCHES)
            t0 = time.monotonic()
            rec = kpipe_build(mutant_series(base_rec, [MUTANTS / f"{n}.patch" for n in names],
                                            scratch / "mutants"))
            tip_index = len(base_rec["steps"]) - 1
            for i, name in enumerate(names):
                targets[name] = built_step(rec, tip_index + 1 + 2 * i)
            print(f"mutants {', '.join(names)}: run {rec['run_id']} "
                  f"({time.monotonic() - t0:.0f} s)", flush=True)
        if args.build_only:
            return 0
        settings = bootstep.default_settings()
        good = {name: 0 for name in targets}
        jobs = [(name, n, *targets[name], (args.keep or scratch) / f"{name}-{n}", settings)
                for n in range(1, args.n + 1) for name in targets]
        with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
            for name, ok, line in pool.map(lambda j: boot_once(*j), jobs):
                good[name] += ok
                print(line, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for name, k in good.items():
        word = "passed" if name == "series" else "caught"
        print(f"{name}: {word} {k} of {args.n}")
    print(f"wall time {time.monotonic() - t_start:.0f} s, {args.parallel} boot(s) at a time, "
          f"host CPUs {os.cpu_count()}")
    return 0 if all(k == args.n for k in good.values()) else 1


def bootstep_localversion(step: Path) -> str:
    """A built step's LOCALVERSION, from its run's record."""
    run_dir = step.resolve().parents[2]
    rel = str(step.resolve().relative_to(run_dir))
    rec = json.loads((run_dir / "results.json").read_text())
    return next(s["localversion"] for s in rec["steps"] if s["dir"] == rel)


if __name__ == "__main__":
    sys.exit(main())
