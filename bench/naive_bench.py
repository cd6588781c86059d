#!/usr/bin/env python3
"""kpipe against the naive way: each figure of issue 16's table beside the same work done by
hand, with the ratio.

The naive way is what a maintainer does by hand: for each step a fresh checkout (`git worktree
add`), a .config copied in and `make olddefconfig`, a clean `make` with ccache, and a `vng` boot
of the suites (the same guest runner and suites kpipe boots, through pipeline.boot.step). Which
config and which boot, --naive says:

- `by-hand` (the default, issue 16's definition): the config a maintainer had before kpipe's
  lean one, the named `defconfig-debug` (x86_64_defconfig, the tree's kvm_guest.config and
  configs/kconfig/{virtme,trim,vhost-scsi,debug}), merged once at the base with the tree's
  merge_config.sh (its seconds count in the base step's build); and vng as it boots by
  default: udev on, the root over 9p without cache=loose.
- `same-kernel`: each step's own .config from kpipe's run and kpipe's boot settings, so both
  sides build and boot the same kernels the same way and only the pipeline differs (how
  builds are reused and overlapped), not issue 16's items 2 and 4.

Cold means an empty KPIPE_CACHE and ccache for each side (apt and pip are not timed here:
scripts/setup.sh is run before). Reads a series (default: patches/vhost-scsi-log-6.12) and the
imported tree; writes runs, checkouts and caches into a temporary directory, removed at the end
unless --keep.

    .venv/bin/python bench/naive_bench.py [SERIES] [--no-boot] [--suite S ...] [--steps N]
                                          [--keep] [--kpipe-only]
                                          [--naive by-hand|same-kernel]

The suites default to smoke and vhost-scsi (issue 16's table was measured with them). After the
series cold and warm, a new one-patch series (bench.new_series: a reworded module description,
made with git and `git format-patch`, so nothing can reuse it) is run on the built tree, once
--no-boot and once booted, beside the same patch checked out, built and booted by hand.

Prints one line per figure: kpipe's seconds, the naive seconds, naive / kpipe. Wall times on a
shared machine depend on its load: each line also gives the load average when it started.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import git

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from build_bench import kpipe_run  # noqa: E402

from pipeline import paths  # noqa: E402
from pipeline.boot import step as bootstep  # noqa: E402
from pipeline.boot.vng import ROOT_FLAGS, BootSettings  # noqa: E402
from pipeline.build import kconfig, make  # noqa: E402
from pipeline.intake import tree  # noqa: E402

BY_HAND_CONFIG = "defconfig-debug"  # configs/configs.toml: the default before issue 16


def by_hand_settings() -> BootSettings:
    """vng's own boot: udev on and the root without kpipe's cache=loose (kept: the runner's
    devkmsg and nokaslr, which the suites' markers and traces need)."""
    settings = bootstep.default_settings()
    return replace(settings, udev=True, append=tuple(a for a in settings.append
                                                     if a != ROOT_FLAGS))


def by_hand_config(tree_dir: Path, base: str, work: Path) -> tuple[Path, float]:
    """The maintainer's own .config, merged once at the base: (its path, the seconds taken)."""
    t0 = time.monotonic()
    wt = work / "linux"
    subprocess.run(["git", "-C", str(tree_dir), "worktree", "add", "-q", "--detach", str(wt),
                    base], check=True)
    config = work / "by-hand.config"
    try:
        kconfig.merge(kconfig.load_spec(BY_HAND_CONFIG), wt, wt / "o" / ".config")
        shutil.copyfile(wt / "o" / ".config", config)
    finally:
        shutil.rmtree(wt, ignore_errors=True)
        subprocess.run(["git", "-C", str(tree_dir), "worktree", "prune"], check=True)
    return config, time.monotonic() - t0


def naive_step(tree_dir: Path, commit: str, config: Path, localversion: str, work: Path,
               cache: Path, suites: list[str], settings: BootSettings) -> tuple[float, float]:
    """(build seconds, boot seconds) of one step done by hand: checkout, clean make, vng."""
    wt = work / "linux"
    t0 = time.monotonic()
    subprocess.run(["git", "-C", str(tree_dir), "worktree", "add", "-q", "--detach", str(wt),
                    commit], check=True)
    out = wt / "o"
    out.mkdir()
    shutil.copyfile(config, out / ".config")
    # kbuild's stamps as kpipe sets them; ccache in its default mode, as a maintainer runs it
    env = dict(make.make_env(), CCACHE_DIR=str(cache / "ccache"))
    env.pop("CCACHE_DEPEND", None)
    base = ["make", "-s", "-C", str(wt), f"O={out}"]
    subprocess.run([*base, "olddefconfig"], check=True, env=env, capture_output=True)
    proc = subprocess.run([*base, *make.make_args(localversion, os.cpu_count() or 2)],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"naive build of {commit[:12]} failed:\n{proc.stderr[-2000:]}")
    build_s = time.monotonic() - t0
    boot_s = 0.0
    if suites:
        t1 = time.monotonic()
        bootstep.boot_and_test(out / make.ARTIFACTS["bzImage"], out / "System.map",
                               out / ".config", localversion, suites,
                               work / "boot", settings)
        boot_s = time.monotonic() - t1
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["git", "-C", str(tree_dir), "worktree", "prune"], check=True)
    return build_s, boot_s


class Naive:
    """The naive side: which config each step builds and how it boots (--naive)."""

    def __init__(self, mode: str, tree_dir: Path, tmp: Path, cache: Path, suites: list[str]):
        self.mode, self.tree_dir, self.tmp, self.cache, self.suites = (mode, tree_dir, tmp,
                                                                       cache, suites)
        self.settings = (by_hand_settings() if mode == "by-hand"
                         else bootstep.default_settings())
        self.config: Path | None = None  # by-hand: made at the first step

    def step(self, step: dict, run_dir: Path, name: str,
             suites: list[str] | None = None) -> tuple[float, float]:
        """(build seconds, boot seconds) of one of kpipe's steps done the naive way."""
        made = 0.0
        if self.mode == "same-kernel":
            config = run_dir / step["build"]["artifacts"][".config"]
        else:
            if self.config is None:
                self.config, made = by_hand_config(self.tree_dir, step["commit"],
                                                   self.tmp / "naive-config")
            config = self.config
        build_s, boot_s = naive_step(self.tree_dir, step["commit"], config,
                                     step["localversion"], self.tmp / name, self.cache,
                                     self.suites if suites is None else suites, self.settings)
        return build_s + made, boot_s

    def series(self, rec: dict, run_dir: Path, steps: int) -> list[tuple[float, float]]:
        return [self.step(step, run_dir, f"naive-{step['index']}")
                for step in rec["steps"][:steps]]


def new_series(tree_dir: Path, base: str, out_dir: Path, tag: str) -> Path:
    """A one-patch series nobody has built, as `git format-patch` writes it: the base's
    drivers/vhost/scsi.c with its module description reworded (code, so the objects change
    and the step boots). Made with git's plumbing into a private index: no checkout."""
    repo = git.Repo(tree_dir)
    path = "drivers/vhost/scsi.c"
    text = repo.git.show(f"{base}:{path}", strip_newline_in_stdout=False)
    changed, n = re.subn(r'MODULE_DESCRIPTION\("([^"]*)"\)',
                         lambda m: f'MODULE_DESCRIPTION("{m.group(1)} ({tag})")', text, count=1)
    if not n:
        sys.exit(f"{path} at {base[:12]} has no MODULE_DESCRIPTION to reword")
    out_dir.mkdir(parents=True)
    scratch = out_dir / "scsi.c"
    scratch.write_text(changed)
    env = {"GIT_INDEX_FILE": str(out_dir / "index"), "GIT_AUTHOR_NAME": "kpipe bench",
           "GIT_AUTHOR_EMAIL": "bench@kpipe.invalid", "GIT_COMMITTER_NAME": "kpipe bench",
           "GIT_COMMITTER_EMAIL": "bench@kpipe.invalid"}
    blob = repo.git.hash_object("-w", f"--path={path}", str(scratch))
    repo.git.read_tree(base, env=env)
    repo.git.update_index("--cacheinfo", f"100644,{blob},{path}", env=env)
    commit = repo.git.commit_tree(repo.git.write_tree(env=env), "-p", base, "-m",
                                  f"vhost/scsi: reword the module description ({tag})", env=env)
    scratch.unlink()
    (out_dir / "index").unlink()
    repo.git.format_patch("-1", commit, "-o", str(out_dir))
    return out_dir


def line(label: str, kpipe_s: float, naive_s: float | None = None) -> None:
    """One figure: kpipe's seconds and, where the naive way does the same work, its seconds
    and the ratio."""
    theirs = ""
    if naive_s is not None:
        ratio = naive_s / kpipe_s if kpipe_s else float("inf")
        theirs = f"naive {naive_s:7.0f} s   x{ratio:5.1f}   "
    print(f"{label:60} kpipe {kpipe_s:7.0f} s   {theirs}(load {os.getloadavg()[0]:.1f})",
          flush=True)


def _boot_s(step: dict) -> float:
    """The whole boot and its suites, as the naive side times it (the record's `seconds` is
    the time to the guest runner's start only)."""
    boot = step.get("boot") or {}
    return float(boot.get("total_seconds") or boot.get("seconds") or 0.0)


def _build_s(step: dict) -> float:
    return float(step["build"].get("seconds") or 0.0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("series", nargs="?", default=str(paths.DEFAULT_SERIES))
    ap.add_argument("--no-boot", action="store_true", help="builds only")
    ap.add_argument("--suite", action="append", dest="suites",
                    help="guest suite (repeatable; default: smoke and vhost-scsi, the suites "
                         "of issue 16's table)")
    ap.add_argument("--steps", type=int, default=99, help="naive side: only the first N steps")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--naive", choices=("by-hand", "same-kernel"), default="by-hand",
                    help="the naive side's config and boot (see the module's text)")
    ap.add_argument("--kpipe-only", action="store_true",
                    help="kpipe's side only (the naive side does not depend on kpipe's code: "
                         "compare with an earlier whole run's naive figures)")
    args = ap.parse_args()
    suites = [] if args.no_boot else (args.suites or ["smoke", "vhost-scsi"])
    boot = bool(suites)
    shared = tree.open_tree()
    tmp = Path(tempfile.mkdtemp(prefix="kpipe-naive-bench-"))
    kcache, ncache, reports = tmp / "kpipe-cache", tmp / "naive-cache", tmp / "reports"
    chosen = [arg for name in suites for arg in ("--suite", name)]
    naive_side = Naive(args.naive, shared.path, tmp, ncache, suites)
    print(f"series {args.series}; tree {shared.describe}; suites {suites or 'none'}; "
          f"naive {'(none)' if args.kpipe_only else args.naive}; {os.cpu_count()} CPUs; {tmp}",
          flush=True)
    try:
        t0 = time.monotonic()
        cold = kpipe_run(args.series, kcache, reports, shared.path, "--no-cache", *chosen,
                         boot=boot)
        kpipe_cold = time.monotonic() - t0
        run_dir = reports / "runs" / cold["run_id"]
        n = min(args.steps, len(cold["steps"]))
        t0 = time.monotonic()
        naive = naive_side.series(cold, run_dir, n) if not args.kpipe_only else None
        naive_cold = time.monotonic() - t0 if naive else None
        steps = cold["steps"][:n]
        line("base build, cold ccache", _build_s(steps[0]), naive and naive[0][0])
        if n > 1:
            line("each patch's build (median)", statistics.median(map(_build_s, steps[1:])),
                 naive and statistics.median(b for b, _ in naive[1:]))
        if boot:
            line("each step's boot + suites (median)", statistics.median(map(_boot_s, steps)),
                 naive and statistics.median(b for _, b in naive))
            if n > 1:
                line("each patch step, build + boot + suites (median)",
                     statistics.median(_build_s(s) + _boot_s(s) for s in steps[1:]),
                     naive and statistics.median(b + t for b, t in naive[1:]))
        print(f"  stages: {cold['stages']}", flush=True)
        line(f"the series cold, {n} of {len(cold['steps'])} steps on the naive side",
             kpipe_cold, naive_cold)
        t0 = time.monotonic()
        warm = kpipe_run(args.series, kcache, reports, shared.path, "--no-cache", *chosen,
                         boot=boot)
        kpipe_warm = time.monotonic() - t0
        t0 = time.monotonic()
        if not args.kpipe_only:
            naive_side.series(warm, reports / "runs" / warm["run_id"], n)
        line("the series again, ccache warm (kpipe: --no-cache, pool warm)", kpipe_warm,
             None if args.kpipe_only else time.monotonic() - t0)
        print(f"  stages: {warm['stages']}", flush=True)
        base = cold["steps"][0]["commit"]
        for label, booted in (("--no-boot", False), ("booted", boot)):
            if label == "booted" and not boot:
                break
            one = new_series(shared.path, base, tmp / f"new-{label}", f"bench {label} {tmp.name}")
            t0 = time.monotonic()
            new = kpipe_run(str(one), kcache, tmp / f"reports-new-{label}", shared.path,
                            *(chosen if booted else []), boot=booted)
            kpipe_new = time.monotonic() - t0
            tip = new["steps"][-1]
            t0 = time.monotonic()
            if not args.kpipe_only:
                naive_side.step(tip, tmp / f"reports-new-{label}" / "runs" / new["run_id"],
                                f"naive-new-{label}", suites if booted else [])
            line(f"a new one-patch series, {label}, end to end", kpipe_new,
                 None if args.kpipe_only else time.monotonic() - t0)
            line(f"  its patch step's build (step 1, {tip['build'].get('units_rebuilt', 0)} "
                 f"files)", _build_s(tip))
            print(f"  stages: {new['stages']}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run(["git", "-C", str(shared.path), "worktree", "prune"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
