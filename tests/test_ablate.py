"""`kpipe ablate` end to end: a two-hunk series on the real imported 6.12 tree, each hunk
reverted on the tip, built (warm ccache) and booted under virtme-ng with the smoke suite.

Reads the imported tree and the suites; writes a series, two ablation runs and their pages
under the test's temporary reports directory. Costs the tip's build in the build place's O=
directory (ccache hits) and its boot (the baseline), one failing build, one hunk build and
boot; the second run reuses the tip and both hunks. Measured on
2 shared cores with a warm ccache, after the build place pool: 158 s (failing build 55 s,
build 21 s, one TCG boot; the second, all-reused run a few seconds). Before the pool (a
fresh worktree created and removed per run) it took 545 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Kernel
from series_factory import ablate_series

from pipeline.intake import tree

pytestmark = pytest.mark.e2e  # builds the tip twice (one failing build) and boots it once


def _ablate(series: Path, reports: Path) -> tuple[subprocess.CompletedProcess, dict]:
    env = dict(os.environ, KPIPE_REPORTS=str(reports))
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "ablate", str(series),
                           "--suite", "smoke", "--json"], capture_output=True, text=True,
                          env=env)
    try:
        return proc, json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"kpipe ablate printed no record (exit {proc.returncode}):\n"
                    f"{proc.stderr[-3000:]}")


def test_ablate_two_hunks(kernel_tree: tree.TreeInfo, base_kernel: Kernel,
                          tmp_path: Path) -> None:
    # base_kernel first: a base build in a new place fills the shared ccache, and an
    # ablation's builds (posted code, pipeline/intake/pool.py) only read it; without it the
    # session's first cold build was this one's and the next new place compiled cold again
    series = ablate_series(kernel_tree.path, kernel_tree.head, tmp_path / "series")
    reports = tmp_path / "reports"
    proc, rec = _ablate(series, reports)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert rec["status"] == "complete" and rec["steps"] == [] and rec["verdicts"] == []
    ab = rec["ablation"]
    assert ab["suites"] == ["smoke"] and ab["config"] == "default"
    hunks = ab["hunks"]
    assert [(h["index"], h["file"], h["patch"]) for h in hunks] == [
        (1, "drivers/vhost/scsi.c", 1), (2, "drivers/vhost/scsi.c", 2)]
    assert [h["patches"] for h in hunks] == [[1], [2]]
    define, check = hunks
    assert define["status"] == "needed-to-build", define
    assert define["build"]["status"] == "fail" and define["boot"]["status"] == "not-run"
    assert check["status"] == "unnoticed", check
    assert check["build"]["status"] == "pass" and check["boot"]["status"] == "pass"
    assert {t["suite"] for t in check["tests"]} == {"smoke"}
    assert all(t["status"] == "pass" for t in check["tests"])
    tip = ab["tip_baseline"]  # the tip itself, booted once: the baseline of every hunk
    assert tip["commit"] == ab["tip"] and tip["reused_from"] is None
    assert tip["build"]["status"] == "pass" and tip["boot"]["status"] == "pass"
    assert {t["suite"] for t in tip["tests"]} == {"smoke"}
    assert "ablate: the tip 3/3 cases pass" in proc.stderr
    run_dir = reports / "runs" / rec["run_id"]
    assert "KPIPE_ABLATE" in (run_dir / define["hunk_patch"]).read_text()
    assert "KPIPE_ABLATE" in (run_dir / define["dir"] / "build.log").read_text()
    for line in ("hunk 1/2 drivers/vhost/scsi.c (patch 1): needed to build",
                 "hunk 2/2 drivers/vhost/scsi.c (patch 2): no test notices it"):
        assert line in proc.stderr
    page = (run_dir / "ablation.html").read_text()
    assert "Patch 1: vhost-scsi: define KPIPE_ABLATE" in page
    assert 'data-hunk="1" data-status="needed-to-build"' in page
    assert 'data-hunk="2" data-status="unnoticed"' in page
    assert "needed to build" in page and "no test notices it" in page

    # the same series again: both hunks are reused by their keys, nothing is built
    proc2, rec2 = _ablate(series, reports)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    again = rec2["ablation"]["hunks"]
    assert [h["key"] for h in again] == [h["key"] for h in hunks]
    assert [h["reused_from"] for h in again] == [rec["run_id"]] * 2
    assert [h["status"] for h in again] == ["needed-to-build", "unnoticed"]
    assert "reverted" not in proc2.stderr  # no hunk was built again
    assert "the tip, as the baseline" not in proc2.stderr  # nor the tip
    assert (reports / "runs" / rec2["run_id"] / "ablation.html").is_file()
