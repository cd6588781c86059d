"""Confirming the failures that decide a verdict before the verdicts are written.

Reads the record's steps (which failing cases decide a verdict: pipeline/record/verdicts.py's
to_confirm) and each such step's bzImage, System.map and .config in its step directory; boots
the same kernel afresh with the suites of those cases, `opts.confirm` times at most (stopping
once the attempts disagree); the steps to confirm boot side by side, as many at once as the
boot workers run while nothing builds (pipeline/run/booter.py). Writes each re-run's console,
guest output and test logs into steps/<config>/<k>/confirm-<n>/ (n = 2, 3, ...: the attempt
number the guest runner passes to the programs as $KPIPE_ATTEMPT) and, into the record, every
attempt of each re-run case (`attempts`, the first run first) and its status: `flaky` when one
attempt passed and another failed. A case confirmed in an earlier run (it has attempts) is not
re-run.

In a shard, the first step of its range (but the base) and the last (but the tip) have a
neighbour another shard ran: a failing case there is re-run as if it decided, so the merge
(which boots nothing) finds every deciding result confirmed by the shard that ran it.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline.options import RunOptions
from pipeline.progress import Progress
from pipeline.record import store as record
from pipeline.record import verdicts
from pipeline.run.boot_steps import boot_once
from pipeline.run.booter import default_boots


def open_ends(ranges: dict[str, tuple[int, int]], tip: int) -> frozenset[tuple[str, int]]:
    """The (config, step) of a shard's range whose neighbour step lies in another shard."""
    out = set()
    for config, (first, last) in ranges.items():
        if first > 0:
            out.add((config, first))
        if last < tip:
            out.add((config, last))
    return frozenset(out)


def confirm_failures(opts: RunOptions, rec: dict, run_dir: Path, progress: Progress, tip: int,
                     ranges: dict[str, tuple[int, int]]) -> bool:
    """Re-run every deciding failure (until none is left unconfirmed); see the module doc.
    True when anything was re-run."""
    if not opts.boot or opts.confirm <= 0:
        return False
    ends = open_ends(ranges, tip) if opts.shard is not None else frozenset()
    ran = False
    while todo := verdicts.to_confirm(rec["steps"], tip, ends):
        ran = True
        _confirm_steps(opts, rec, run_dir, progress, [
            (next(s for s in rec["steps"] if s["config"] == config and s["index"] == index),
             sorted(names)) for (config, index), names in sorted(todo.items())])
    return ran


def _confirm_steps(opts: RunOptions, rec: dict, run_dir: Path, progress: Progress,
                   todo: list[tuple[dict, list[str]]]) -> None:
    """Re-run each step's deciding failures (step, case names) up to opts.confirm times, the
    steps side by side (as many guests at once as the boot workers run when nothing builds);
    results are written in step order."""
    from pipeline.boot import suites as suitemod

    given = {suitemod.suite_dir(n).name: n for n in suitemod.for_run(opts.boot, opts.suites)}
    work = []
    for step, names in todo:
        tests = [t for t in step["tests"] if f"{t['suite']}/{t['case']}" in names]
        for test in tests:
            test["attempts"] = [{"attempt": 1, "status": test["status"],
                                 "message": test.get("message", ""), "log": test.get("log")}]
        work.append((step, names, tests, sorted({given.get(t["suite"], t["suite"])
                                                 for t in tests})))
    left = work
    for n in range(2, opts.confirm + 2):
        left = [w for w in left if not all(t.get("flaky") for t in w[2])]
        if not left:
            break
        first = left[0][0]
        rec["current"] = {"step": first["index"], "config": first["config"], "stage": "confirm"}
        record.write(run_dir, rec)
        for step, names, _tests, _suites in left:
            progress.stage("confirm", f"step {step['index']} [{step['config']}]: re-running "
                                      f"{', '.join(names)} in a fresh boot (attempt {n})")
        results = _side_by_side(opts, rec, run_dir, progress, n,
                                [(step, suites) for step, _names, _tests, suites in left])
        for (_step, _names, tests, _suites), result in zip(left, results, strict=True):
            _add_attempt(tests, n, result)
        rec.pop("current", None)
        record.write(run_dir, rec)
    for step, _names, tests, _suites in work:
        for test in tests:
            seen = "/".join(a["status"] for a in test["attempts"])
            word = "flaky" if test.get("flaky") else "confirmed"
            progress.info(f"step {step['index']} [{step['config']}]: {test['suite']}/"
                          f"{test['case']} {word} ({seen})")


def _side_by_side(opts: RunOptions, rec: dict, run_dir: Path, progress: Progress, n: int,
                  boots: list[tuple[dict, list[str]]]) -> list[dict]:
    """Attempt n of each (step, suites), as many guests at once as booter.default_boots (or
    --boots); on Ctrl-C or an error every guest under way is killed before it goes on."""
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=opts.boots or default_boots(),
                              thread_name_prefix="kpipe-confirm")
    try:
        futures = [pool.submit(boot_once, step, run_dir / step["dir"],
                               f"{step['dir']}/confirm-{n}", suites, n, stop=stop,
                               base=rec.get("base"), sandboxed=opts.sandbox,
                               progress=progress.info) for step, suites in boots]
        return [f.result() for f in futures]
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _add_attempt(tests: list[dict], n: int, result: dict) -> None:
    again = {(t["suite"], t["case"]): t for t in result["tests"]}
    for test in tests:
        new = again.get((test["suite"], test["case"]), {})
        test["attempts"].append({"attempt": n, "status": new.get("status", "not-run"),
                                 "message": new.get("message", ""), "log": new.get("log"),
                                 "boot": result["boot"]["status"],
                                 "console": result["boot"].get("console"),
                                 "boot_started": result["boot"].get("started"),
                                 "boot_seconds": result["boot"].get("total_seconds")})
        verdicts.judge_attempts(test)
