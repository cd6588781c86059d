"""A booting `kpipe run` over steps that an earlier run only built: no checkout, no make.

The LKDTM kernel's run (fixture `lkdtm_kernel`: a one-patch series, `--no-boot`) built both
steps. Running the same series and config again with boot on finds every step's build by its
build key, links it in and boots it: no worktree is made (no apply stage in the record), each
step says which run built it, and both guests pass the smoke suite (which checks `uname -r`
against the step's LOCALVERSION).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pipeline import paths

pytestmark = pytest.mark.e2e  # boots the LKDTM kernel twice


def test_boot_only_run_reuses_every_build_without_a_checkout(lkdtm_kernel) -> None:
    reports = lkdtm_kernel.run_dir.parent.parent
    built = json.loads((lkdtm_kernel.run_dir / "results.json").read_text())
    assert [s["build"]["status"] for s in built["steps"]] == ["pass", "pass"]
    env = dict(os.environ, KPIPE_REPORTS=str(reports))
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(lkdtm_kernel.series),
                           "--fragment", "lkdtm", "--suite", "smoke", "--json"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads(proc.stdout)
    assert "all 2 steps reused from earlier runs (2 built there, booted here)" in proc.stderr
    assert "apply" not in rec["stages"]  # the apply stage runs only in a worktree
    assert not (paths.worktrees_dir() / f"run-{rec['run_id']}").exists()
    for step, before in zip(rec["steps"], built["steps"], strict=True):
        assert step["build_reused_from"] == built["run_id"]
        assert step["reused_from"] is None
        assert step["localversion"] == before["localversion"]
        assert step["boot"]["status"] == "pass", step["boot"]
        assert [t["status"] for t in step["tests"]] == ["pass"] * 3, step["tests"]
        assert (reports / "runs" / rec["run_id"] / step["dir"] / "bzImage").is_file()
