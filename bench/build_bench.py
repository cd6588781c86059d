#!/usr/bin/env python3
"""Build benchmark: prints a cold build, each patch step's build, and a warm re-run.

Reads a series (default: patches/vhost-scsi-log-6.12) and an imported tree (`--tree-name`,
default Debian's 6.12); writes runs into a temporary reports dir and uses a fresh ccache (in a
temporary KPIPE_CACHE) for the cold numbers, so the shared cache is not disturbed. Prints one
line per measurement and ccache's statistics after each phase; `--cold-only` stops after the
cold run (to set one tree's cold build beside another's).

    .venv/bin/python bench/build_bench.py [SERIES] [--tree-name NAME] [--cold-only] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import paths  # noqa: E402
from pipeline.intake import tree  # noqa: E402


def ccache_stats(cache: Path) -> str:
    env = dict(os.environ, CCACHE_DIR=str(cache / "ccache"))
    out = subprocess.run(["ccache", "-s"], capture_output=True, text=True, env=env).stdout
    keep = [line.strip() for line in out.splitlines()
            if line.strip().startswith(("Hits", "Misses", "Cacheable", "Direct", "Preprocessed"))]
    return "; ".join(keep)


def kpipe_run(series: str, cache: Path, reports: Path, tree_dir: Path, *extra: str,
              boot: bool = False) -> dict:
    """One `kpipe run` with its own cache and reports; its record, with the wall and CPU time
    and the load before and after (`_wall`, `_cpu`, `_load`). Builds only unless `boot`."""
    env = dict(os.environ, KPIPE_CACHE=str(cache), KPIPE_REPORTS=str(reports))
    start, cpu0, load0 = time.monotonic(), _children_cpu(), os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", series, "--tree",
                           str(tree_dir), "--json", "--boot" if boot else "--no-boot", *extra],
                          capture_output=True, text=True,
                          env=env, cwd=ROOT)
    wall = time.monotonic() - start
    try:
        rec = json.loads(proc.stdout)
    except ValueError:
        sys.exit(f"kpipe run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    rec["_wall"], rec["_cpu"], rec["_load"] = wall, _children_cpu() - cpu0, (load0,
                                                                          os.getloadavg()[0])
    return rec


def _children_cpu() -> float:
    """User + system CPU seconds of every finished child so far (make, gcc, ccache, git).

    The machine this runs on is often shared; CPU seconds divided by the CPU count is what the
    same work would take on an idle machine of that size (a lower bound: linking is serial)."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def report(label: str, rec: dict, cache: Path) -> None:
    ncpu = os.cpu_count() or 1
    print(f"\n== {label}: {rec['_wall']:.0f} s wall, {rec['_cpu']:.0f} CPU s "
          f"(= {rec['_cpu'] / ncpu:.0f} s on {ncpu} idle CPUs), load {rec['_load'][0]:.1f} -> "
          f"{rec['_load'][1]:.1f}, run {rec['run_id']}, exit {rec['exit_code']}")
    for step in rec["steps"]:
        name = "base" if step["index"] == 0 else f"patch {step['index']}"
        reused = f" (reused from {step['reused_from']})" if step["reused_from"] else ""
        print(f"   {name:9} build {step['build']['status']:5} "
              f"{step['build'].get('seconds') or 0:7.1f} s  "
              f"{step['build'].get('units_rebuilt', 0):5} files{reused}")
    print(f"   ccache: {ccache_stats(cache)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("series", nargs="?", default=str(paths.DEFAULT_SERIES))
    ap.add_argument("--keep", action="store_true", help="keep the temporary cache")
    ap.add_argument("--tree-name", help="a tree of configs/trees.toml (default: debian-6.12)")
    ap.add_argument("--cold-only", action="store_true", help="only the cold run")
    args = ap.parse_args()
    shared = tree.open_tree(name=args.tree_name)  # the imported tree (imports once if needed)
    tmp = Path(tempfile.mkdtemp(prefix="kpipe-bench-"))
    cache, reports = tmp / "cache", tmp / "reports"
    print(f"series {args.series}\ntree {shared.head} ({shared.describe}); cache {cache}; "
          f"{os.cpu_count()} CPUs")
    try:
        cold = kpipe_run(args.series, cache, reports, shared.path, "--no-cache")
        report("cold (empty ccache, every step built)", cold, cache)
        if args.cold_only:
            return 0
        warm = kpipe_run(args.series, cache, reports, shared.path)
        report("warm re-run of the unchanged series (steps reused)", warm, cache)
        rebuilt = kpipe_run(args.series, cache, reports, shared.path, "--no-cache")
        report("full re-run with --no-cache and a warm ccache", rebuilt, cache)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
