"""Confirmation re-runs and the honest reuse key, on the LKDTM kernel's two steps.

The `lkdtm_kernel` fixture's run built both steps of a one-patch series (`--no-boot`). Every
run here boots those builds (found by their build key: nothing is rebuilt) under a kpipe home
of the test's own (a copy of configs/ and virtme-tests/, $KPIPE_HOME), with the test-only
guest suites of tests/suites/: `flaky` fails on the first attempt at the patched step and
passes on the next; `regress` fails there on every attempt. Eight boots in all.

Reads the repository's configs/ and virtme-tests/ (copied, never edited); writes the copy and
the runs under the test's tmp dir and the shared reports dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import paths

pytestmark = pytest.mark.e2e  # boots the LKDTM kernel eight times

SUITES = Path(__file__).parent / "suites"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kpipe home of this test's own: copies of configs/ and virtme-tests/."""
    top = tmp_path_factory.mktemp("home")
    shutil.copytree(paths.CONFIGS_DIR, top / "configs")
    shutil.copytree(paths.VIRTME_TESTS_DIR, top / "virtme-tests")
    (top / "patches").symlink_to(paths.PATCHES_DIR)
    return top


class Run:
    """One `kpipe run --json` of the LKDTM series under the test's home."""

    def __init__(self, kernel, home: Path, suite: str, *extra: str) -> None:
        self.reports = kernel.run_dir.parent.parent
        env = dict(os.environ, KPIPE_REPORTS=str(self.reports), KPIPE_HOME=str(home))
        proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(kernel.series),
                               "--fragment", "lkdtm", "--suite", str(SUITES / suite), "--json",
                               *extra], capture_output=True, text=True, env=env)
        self.code, self.err = proc.returncode, proc.stderr
        try:
            self.rec = json.loads(proc.stdout)
        except ValueError:
            pytest.fail(f"no record (exit {proc.returncode}): {proc.stderr[-3000:]}")
        self.dir = self.reports / "runs" / self.rec["run_id"]

    def case(self, index: int) -> dict:
        (test,) = self.rec["steps"][index]["tests"]
        return test

    def verdicts(self) -> list[tuple[str, int]]:
        return [(v["kind"], v["step"]) for v in self.rec["verdicts"]]


@pytest.fixture(scope="module")
def flaky_run(lkdtm_kernel, home: Path) -> Run:
    return Run(lkdtm_kernel, home, "flaky")


def test_a_case_that_fails_once_then_passes_is_flaky_not_a_regression(flaky_run: Run) -> None:
    r = flaky_run
    assert r.code == 0, r.err[-3000:]
    assert r.case(0)["status"] == "pass" and "attempts" not in r.case(0)  # it decides nothing
    test = r.case(1)
    assert test["status"] == "flaky" and test["flaky"] is True
    assert [(a["attempt"], a["status"]) for a in test["attempts"]] == [(1, "fail"), (2, "pass")]
    for attempt in test["attempts"]:  # every attempt's log stays
        assert (r.dir / attempt["log"]).is_file()
    assert "/confirm-2/" in test["attempts"][1]["log"]
    assert r.verdicts() == [("flaky", 1)]
    assert "flaky/settles flaky (fail/pass)" in r.err
    assert all(s["build_reused_from"] for s in r.rec["steps"])  # booted here, built before


def test_a_case_that_fails_every_time_is_a_regression_after_its_rerun(lkdtm_kernel,
                                                                      home: Path) -> None:
    r = Run(lkdtm_kernel, home, "regress")
    assert r.code == 1, r.err[-3000:]
    test = r.case(1)
    assert test["status"] == "fail" and not test.get("flaky")
    assert [(a["attempt"], a["status"]) for a in test["attempts"]] == [(1, "fail"), (2, "fail")]
    assert r.verdicts() == [("regressed-at", 1)]


def test_an_unchanged_run_reuses_every_step_and_one_allow_line_reboots_without_a_build(
        lkdtm_kernel, home: Path, flaky_run: Run) -> None:
    again = Run(lkdtm_kernel, home, "flaky")
    assert again.code == 0, again.err[-3000:]
    assert [s["reused_from"] for s in again.rec["steps"]] == [flaky_run.rec["run_id"]] * 2
    assert "all 2 steps reused from earlier runs" in again.err and "booted here" not in again.err
    assert again.case(1)["status"] == "flaky"  # the reused step keeps its attempts

    allow = home / "configs" / "splats" / "allow.txt"
    allow.write_text(allow.read_text() + "warning kpipe-test-only-pattern # this test's line\n")
    changed = Run(lkdtm_kernel, home, "flaky", "--confirm", "0")
    assert "apply" not in changed.rec["stages"]  # no worktree, no make
    for step, before in zip(changed.rec["steps"], flaky_run.rec["steps"], strict=True):
        assert step["reused_from"] is None and step["key"] != before["key"]
        assert step["build_key"] == before["build_key"]
        assert step["build_reused_from"] == before["build_reused_from"]
        assert step["boot"]["status"] == "pass"
    # --confirm 0: the first attempt's failure stands, unconfirmed
    assert changed.case(1)["status"] == "fail" and "attempts" not in changed.case(1)
    assert changed.verdicts() == [("regressed-at", 1)] and changed.code == 1
