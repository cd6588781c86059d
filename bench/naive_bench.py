#!/usr/bin/env python3
"""kpipe against the naive way: each figure of issue 16's table beside the same work done by
hand, with the ratio.

The naive way is what a maintainer does by hand: for each step a fresh checkout (`git worktree
add`), the step's .config, a clean `make` with ccache, and a `vng` boot of the suites (the same
guest runner and suites kpipe boots, through pipeline.boot.step). Cold means an empty
KPIPE_CACHE and ccache for each side (apt and pip are not timed here: scripts/setup.sh is run
before). Reads a series (default: patches/vhost-scsi-log-6.12) and the imported tree; writes
runs, checkouts and caches into a temporary directory, removed at the end unless --keep.

    .venv/bin/python bench/naive_bench.py [SERIES] [--no-boot] [--steps N] [--keep]

Prints one line per figure: kpipe's seconds, the naive seconds, naive / kpipe. Wall times on a
shared machine depend on its load: each line also gives the load average when it started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from build_bench import kpipe_run  # noqa: E402

from pipeline import paths  # noqa: E402
from pipeline.boot import step as bootstep  # noqa: E402
from pipeline.boot import suites as suitemod  # noqa: E402
from pipeline.build import make  # noqa: E402
from pipeline.intake import tree  # noqa: E402


def naive_step(tree_dir: Path, commit: str, config: Path, localversion: str, work: Path,
               cache: Path, boot: bool) -> tuple[float, float]:
    """(build seconds, boot seconds) of one step done by hand: checkout, clean make, vng."""
    wt = work / "linux"
    t0 = time.monotonic()
    subprocess.run(["git", "-C", str(tree_dir), "worktree", "add", "-q", "--detach", str(wt),
                    commit], check=True)
    out = wt / "o"
    out.mkdir()
    shutil.copyfile(config, out / ".config")
    env = dict(make.make_env(), CCACHE_DIR=str(cache / "ccache"))
    base = ["make", "-s", "-C", str(wt), f"O={out}"]
    subprocess.run([*base, "olddefconfig"], check=True, env=env, capture_output=True)
    proc = subprocess.run([*base, *make.make_args(localversion, os.cpu_count() or 2)],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"naive build of {commit[:12]} failed:\n{proc.stderr[-2000:]}")
    build_s = time.monotonic() - t0
    boot_s = 0.0
    if boot:
        t1 = time.monotonic()
        bootstep.boot_and_test(out / make.ARTIFACTS["bzImage"], out / "System.map",
                               out / ".config", localversion, suitemod.for_run(True, []),
                               work / "boot", bootstep.default_settings())
        boot_s = time.monotonic() - t1
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["git", "-C", str(tree_dir), "worktree", "prune"], check=True)
    return build_s, boot_s


def naive_series(rec: dict, run_dir: Path, tree_dir: Path, tmp: Path, cache: Path, boot: bool,
                 steps: int) -> list[tuple[float, float]]:
    out = []
    for step in rec["steps"][:steps]:
        config = run_dir / step["build"]["artifacts"][".config"]
        out.append(naive_step(tree_dir, step["commit"], config, step["localversion"],
                              tmp / f"naive-{step['index']}", cache, boot))
    return out


def line(label: str, kpipe_s: float, naive_s: float) -> None:
    ratio = naive_s / kpipe_s if kpipe_s else float("inf")
    print(f"{label:58} kpipe {kpipe_s:7.0f} s   naive {naive_s:7.0f} s   x{ratio:5.1f}   "
          f"(load {os.getloadavg()[0]:.1f})", flush=True)


def _boot_s(step: dict) -> float:
    return float(step.get("boot", {}).get("seconds") or 0.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("series", nargs="?", default=str(paths.DEFAULT_SERIES))
    ap.add_argument("--no-boot", action="store_true", help="builds only")
    ap.add_argument("--steps", type=int, default=99, help="naive side: only the first N steps")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    boot = not args.no_boot
    shared = tree.open_tree()
    tmp = Path(tempfile.mkdtemp(prefix="kpipe-naive-bench-"))
    kcache, ncache, reports = tmp / "kpipe-cache", tmp / "naive-cache", tmp / "reports"
    extra = [] if boot else ["--no-boot"]
    print(f"series {args.series}; tree {shared.describe}; {os.cpu_count()} CPUs; {tmp}")
    try:
        t0 = time.monotonic()
        cold = kpipe_run(args.series, kcache, reports, shared.path, "--no-cache", *extra)
        kpipe_cold = time.monotonic() - t0
        run_dir = reports / "runs" / cold["run_id"]
        n = min(args.steps, len(cold["steps"]))
        t0 = time.monotonic()
        naive = naive_series(cold, run_dir, shared.path, tmp, ncache, boot, n)
        naive_cold = time.monotonic() - t0
        steps = cold["steps"][:n]
        line("base build, cold ccache", steps[0]["build"]["seconds"], naive[0][0])
        if n > 1:
            line("each patch's build (median)",
                 statistics.median(s["build"]["seconds"] for s in steps[1:]),
                 statistics.median(b for b, _ in naive[1:]))
        if boot:
            line("each step's boot + suites (median)", statistics.median(map(_boot_s, steps)),
                 statistics.median(b for _, b in naive))
        line(f"the series cold, {n} of {len(cold['steps'])} steps on the naive side",
             kpipe_cold, naive_cold)
        t0 = time.monotonic()
        warm = kpipe_run(args.series, kcache, reports, shared.path, "--no-cache", *extra)
        kpipe_warm = time.monotonic() - t0
        t0 = time.monotonic()
        naive_series(warm, reports / "runs" / warm["run_id"], shared.path, tmp, ncache, boot, n)
        line("the series again, ccache warm (kpipe: --no-cache, pool warm)", kpipe_warm,
             time.monotonic() - t0)
        one = tmp / "one"
        one.mkdir()  # the series' first patch alone, as a new series
        first = sorted(p for p in Path(args.series).glob("*.patch")
                       if not p.name.startswith("0000"))[0]
        shutil.copyfile(first, one / first.name)
        t0 = time.monotonic()
        new = kpipe_run(str(one), kcache, tmp / "reports-new", shared.path, "--no-boot",
                        "--allow-partial")
        kpipe_new = time.monotonic() - t0
        tip = new["steps"][-1]
        t0 = time.monotonic()
        naive_step(shared.path, tip["commit"],
                   tmp / "reports-new" / "runs" / new["run_id"] / tip["build"]["artifacts"][
                       ".config"], tip["localversion"], tmp / "naive-new", ncache, False)
        line("a new one-patch series, --no-boot, end to end", kpipe_new,
             time.monotonic() - t0)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run(["git", "-C", str(shared.path), "worktree", "prune"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
