"""The default job end to end: `kpipe run` with no arguments on patches/vhost-scsi-log-6.12.

Every step (the 6.12.117 base and each of the six patches) is applied, built with lockdep and
kmemleak, booted under virtme-ng, and runs the smoke and vhost-scsi suites; the base and the
tip also run the vhost-scsi-migration suite (steps rule "ends": a real QEMU live migration of
an L2 guest on a vhost-scsi disk), which must find stale blocks at the base, none at the tip,
and give the verdict "fixed within patches 1-6". The vhost-scsi
cases must show the pattern of issue 5: the unfixed base fails the logging cases, patch 3 fixes
the I/O-queue cases, patch 4 the control queue, patch 5 the event queue; the two cases that
never depended on the fix pass everywhere; no step has a new warning or a splat other than
the one 6.12.117 lockdep report the allow list documents (present at the base, before any patch).

This is the project's costliest test (seven builds, seven TCG boots); the base build is shared
with the other end-to-end tests through the session's reports dir and ccache.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

IO_CASES = ("io-bitmap", "migration", "limit-logged", "log-toggle")
FIXED_BY = {**{c: 3 for c in IO_CASES}, "ctrl-log": 4, "event-log": 5}
ALWAYS_PASS = ("bad-target-split", "limit-refused")
PREEXISTING_LOCKDEP = ("possible circular locking dependency detected: &tpg->tv_tpg_mutex -> "
                       "&sb->s_type->i_mutex_key in configfs_depend_item")
DEBUG_OPTIONS = ("CONFIG_PROVE_LOCKING=y", "CONFIG_DEBUG_KMEMLEAK=y")


@pytest.fixture(scope="session")
def default_run(kernel_tree, shared_reports: Path, mixed_run: dict) -> dict:
    """`kpipe run` with no arguments, after the --no-boot mixed run in the same reports dir
    (whose base step it reuses the build of, and boots)."""
    env = dict(os.environ, KPIPE_REPORTS=str(shared_reports))
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--json"],
                          capture_output=True, text=True, env=env)
    try:
        rec = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"kpipe run printed no record (exit {proc.returncode}):\n"
                    f"{proc.stderr[-4000:]}")
    return {"proc": proc, "record": rec, "run_dir": shared_reports / "runs" / rec["run_id"]}


def _cases(step: dict) -> dict[str, str]:
    return {t["case"]: t["status"] for t in step["tests"] if t["suite"] == "vhost-scsi"}


MIGRATION = "vhost-scsi-migration"


def _migration(step: dict) -> list[dict]:
    return [t for t in step["tests"] if t["suite"] == MIGRATION]


def test_every_step_applies_builds_and_boots_cleanly(default_run: dict) -> None:
    rec = default_run["record"]
    assert rec["status"] == "complete", default_run["proc"].stderr[-3000:]
    assert [s["index"] for s in rec["steps"]] == list(range(7))
    for step in rec["steps"]:
        assert step["apply"]["status"] == "applied"
        assert step["build"]["status"] == "pass"
        if step["index"] > 0:  # the base's warnings are the tree's (6.12.118 has one)
            assert step["build"]["warnings_new"] == [], step["build"]["warnings_new"]
        assert step["boot"]["status"] == "pass", step["boot"]
        assert step["splats"] == [], step["splats"]
        allowed = {s["title"] for s in step["boot"]["allowed_splats"]}
        assert allowed <= {PREEXISTING_LOCKDEP}, allowed
        smoke = [t for t in step["tests"] if t["suite"] == "smoke"]
        assert smoke and all(t["status"] == "pass" for t in smoke), smoke


def test_lockdep_checks_every_case_at_every_step(default_run: dict) -> None:
    """The suite's configfs changes run with prove_locking 0 (virtme-tests/vhost-scsi/lio.py),
    so 6.12's tv_tpg_mutex/configfs report is never provoked and lockdep stays on: every
    smoke and vhost-scsi case is checked, at every step, and the record says so."""
    cases = {f"vhost-scsi/{c}" for c in (*FIXED_BY, *ALWAYS_PASS)}
    for step in default_run["record"]["steps"]:
        ld = step["boot"]["lockdep"]
        assert ld["built"] and ld["known"], (step["index"], ld)
        assert ld["off_from"] is None and ld["unchecked"] == [], (step["index"], ld)
        assert cases <= set(ld["checked"]), (step["index"], ld)
        assert any(c.startswith("smoke/") for c in ld["checked"]), ld


def test_the_base_build_of_a_no_boot_run_is_reused_and_booted(default_run: dict,
                                                               mixed_run: dict) -> None:
    base = default_run["record"]["steps"][0]
    assert base["build_reused_from"] == mixed_run["record"]["run_id"]
    assert base["reused_from"] is None
    assert base["boot"]["status"] == "pass" and base["tests"]
    for step in default_run["record"]["steps"][1:]:
        assert step.get("build_reused_from") is None, step["index"]


def test_every_step_runs_with_lockdep_and_kmemleak(default_run: dict) -> None:
    run_dir = default_run["run_dir"]
    for step in default_run["record"]["steps"]:
        config = (run_dir / step["build"]["artifacts"][".config"]).read_text().splitlines()
        missing = [opt for opt in DEBUG_OPTIONS if opt not in config]
        assert not missing, f"step {step['index']}: {missing}"


def test_vhost_scsi_pattern_matches_the_fix(default_run: dict) -> None:
    steps = default_run["record"]["steps"]
    for case, fixed_at in FIXED_BY.items():
        got = [_cases(s).get(case) for s in steps]
        want = ["fail" if k < fixed_at else "pass" for k in range(7)]
        assert got == want, f"{case}: {got}"
    for case in ALWAYS_PASS:
        assert [_cases(s).get(case) for s in steps] == ["pass"] * 7, case


def test_unfixed_cases_name_the_unlogged_pages(default_run: dict) -> None:
    base = default_run["record"]["steps"][0]
    for test in base["tests"]:
        if test["suite"] == "vhost-scsi" and test["case"] in FIXED_BY:
            assert "0x" in test["message"], test


def test_the_live_migration_loses_blocks_at_the_base_and_none_at_the_tip(
        default_run: dict) -> None:
    """A real QEMU migration in each end's guest: the unfixed base's destination holds stale
    page-cache blocks (named), the tip's none, with the migration's iteration counts in the
    case's log; the steps between are left out by the steps rule."""
    steps = default_run["record"]["steps"]
    run_dir = default_run["run_dir"]
    (base,), (tip,) = _migration(steps[0]), _migration(steps[-1])
    assert base["status"] == "fail", base
    stale = re.fullmatch(r"(\d+) of (\d+) blocks stale after migration \(first: [\d, .]+\)",
                         base["message"])
    # or the stale memory took the destination L2 down before it could say which blocks
    died = base["message"].startswith("the destination L2 did not survive the migration: ")
    assert (stale and 0 < int(stale.group(1)) <= int(stale.group(2))) or died, base["message"]
    assert tip["status"] == "pass", tip
    log = (run_dir / tip["log"]).read_text()
    counts = re.search(r"migration completed [^:]*: dirty-sync-count (\d+) "
                       r"\(at the cue (\d+),", log)
    assert counts, log[-3000:]
    assert int(counts.group(2)) >= 2 and int(counts.group(1)) > int(counts.group(2)), log
    assert re.search(r": 0 of \d+ blocks differ", log), log[-3000:]
    for step in steps[1:-1]:
        (left,) = _migration(step)
        assert left["status"] == "not-run" and left["message"].startswith(
            "not-run (steps rule)"), left


def test_verdicts_say_fixed_by_and_exit_zero(default_run: dict) -> None:
    rec = default_run["record"]
    fixed = {v["test"]: v["step"] for v in rec["verdicts"] if v["kind"] == "fixed-by"}
    migration = fixed.pop(f"{MIGRATION}/live-migration", None)
    assert migration == 6, rec["verdicts"]
    (verdict,) = [v for v in rec["verdicts"] if v["test"] == f"{MIGRATION}/live-migration"]
    assert verdict["range"] == [1, 6] and "fixed within patches 1\u20136" in verdict["detail"]
    assert fixed == {f"vhost-scsi/{c}": k for c, k in FIXED_BY.items()}
    assert [v for v in rec["verdicts"] if v["kind"] != "fixed-by"] == []
    assert default_run["proc"].returncode == 0


def test_it_builds_in_the_sandbox_and_confirms_each_fix_before_the_verdict(
        default_run: dict) -> None:
    """The whole default series built inside bubblewrap; the failing side of each fix (the
    step before it; for the migration, run at the ends only, the base) was re-run in a fresh
    boot and failed again, so the fixed-by verdicts above stand on two attempts; no other
    result was re-run."""
    rec = default_run["record"]
    assert rec["host"]["sandbox"]["used"] is True, rec["host"]["sandbox"]
    for step in rec["steps"]:
        for test in step["tests"]:
            rerun = test["suite"] == "vhost-scsi" and FIXED_BY.get(test["case"]) == \
                step["index"] + 1
            rerun |= test["suite"] == MIGRATION and step["index"] == 0
            if rerun:
                assert [a["status"] for a in test["attempts"]] == ["fail", "fail"], test
            else:
                assert "attempts" not in test, (step["index"], test["case"])
    assert "confirm" in rec["stages"]


def _guest_runs(rec: dict) -> list[tuple[float, float, str]]:
    """(start, end, what) of every guest the run booted: each step's boot and each re-run,
    from the record's `started` and seconds."""
    from datetime import datetime

    def span(started: str, seconds: float, what: str) -> tuple[float, float, str]:
        t = datetime.fromisoformat(started).timestamp()
        return t, t + seconds, what

    out = []
    for step in rec["steps"]:
        boot = step["boot"]
        if boot.get("started") and "reused_from_step" not in boot:
            out.append(span(boot["started"], boot["total_seconds"], f"step {step['index']}"))
        seen = set()
        for test in step["tests"]:
            for a in test.get("attempts", [])[1:]:
                if a["console"] not in seen:
                    seen.add(a["console"])
                    out.append(span(a["boot_started"], a["boot_seconds"], a["console"]))
    return out


def test_guests_run_side_by_side_two_at_most(default_run: dict) -> None:
    """Once no build runs, two guests boot at once (this 2-core host's default): the four
    confirmations (steps 0, 2, 3 and 4) ran two at a time, and no moment had three guests."""
    from pipeline.run.booter import default_boots

    assert default_boots() == 2, "the check needs a host with 2 cores or more"
    runs = _guest_runs(default_run["record"])
    confirms = [r for r in runs if "confirm-" in r[2]]
    assert len(confirms) == 4 and len(runs) == 11, runs
    slack = 0.25  # started is the wall clock and seconds a monotonic one: both at vng's start
    inner = [(a + slack, b - slack, w) for a, b, w in runs]

    def at_once(t: float) -> list[str]:
        return [w for a, b, w in inner if a <= t < b]

    assert any(len(at_once(a)) == 2 for a, _b, w in inner if "confirm-" in w), confirms
    worst = max((at_once(a) for a, _b, _w in inner), key=len)
    assert len(worst) <= 2, worst
