"""End-to-end on a kernel with LKDTM: provoked faults end up where issue 3 says they must.

- a panic ends the step with boot `fail`, the console kept, the case failed with the panic
  attached, no QEMU left, and the next step still runs:
- there a provoked WARNING fails the case that provoked it, with the splat attached, and only
  that case; the step's boot passes and the smoke suite passes after it;
- a soft lockup (a wedged guest) is killed at the run timeout: boot `fail` ("guest hung"),
  the soft-lockup splat on the case, no QEMU left;
(A hung task, a test stuck in D state that the runner abandons at its timeout, is in the golden
corpus: tests/golden/dmesg/survivable.log.)

Each guest program prints `ok N` for the provoking case itself: it is the splat scan that
must turn it into a failure. Programs sleep a moment before provoking: the runner writes the
case's start marker when it reads the previous result line, so work started within
milliseconds of that line could fall in the previous case's window.

Needs the LKDTM kernel (fixture `lkdtm_kernel`): build it as the README of
tests/golden/dmesg describes.
"""

from __future__ import annotations

import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.boot.step import boot_and_test
from pipeline.boot.vng import BootSettings
from pipeline.paths import VIRTME_TESTS_DIR

pytestmark = pytest.mark.e2e  # boots the LKDTM kernel

PROGRAM = textwrap.dedent("""\
    #!/bin/sh
    # KTAP: 'before' passes, 'provoke_{lower}' provokes LKDTM {crash}, 'after' passes.
    echo "KTAP version 1"
    echo "1..3"
    echo "ok 1 before"
    sleep 1
    [ -d /sys/kernel/debug/provoke-crash ] || mount -t debugfs none /sys/kernel/debug
    {pre}
    echo "# provoking {crash}"
    echo {crash} > /sys/kernel/debug/provoke-crash/DIRECT
    echo "ok 2 provoke_{lower}"
    sleep 1
    echo "ok 3 after"
""")


def make_suite(root: Path, crash: str, pre: str = "", timeout: int = 30) -> str:
    name = f"lkdtm-{crash.lower().replace('_', '-')}"
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    prog = d / "provoke.sh"
    prog.write_text(PROGRAM.format(crash=crash, lower=crash.lower(), pre=pre))
    prog.chmod(0o755)
    (d / "suite.toml").write_text(
        f'name = "{name}"\ndescription = "provoke LKDTM {crash}"\n'
        f'requires = ["CONFIG_LKDTM", "CONFIG_DEBUG_FS"]\n\n'
        f'[[program]]\npath = "provoke.sh"\ntimeout = {timeout}\n')
    return name


def qemu_pids(out: Path) -> set[int]:
    """QEMUs serving this step's results directory (its path is in QEMU's -fsdev argument)."""
    res = subprocess.run(["pgrep", "-f", f"qemu-system-x86_64 .*path={out.resolve()}/guest-"],
                         capture_output=True, text=True)
    return {int(p) for p in res.stdout.split()}


def run(k, suites: list[str], out: Path, root: Path | None, **kw) -> dict:
    settings = BootSettings(**{"run_margin": 20.0, **kw})
    res = boot_and_test(k.bzimage, k.system_map, k.config, k.localversion, suites, out,
                        settings, suites_root=root)
    time.sleep(0.5)
    assert not qemu_pids(out), "a QEMU outlived boot_and_test"
    assert res["boot"].get("leftover_qemu") is False
    return res


def by_case(res: dict) -> dict[str, dict]:
    return {t["case"]: t for t in res["tests"]}


def test_panic_ends_the_step_and_the_next_step_runs(lkdtm_kernel, tmp_path):
    """Two steps in run order: the first panics, the second provokes a WARNING and runs smoke."""
    root = tmp_path / "suites"
    panic = make_suite(root, "PANIC")
    warning = make_suite(root, "WARNING")
    (root / "smoke").symlink_to(VIRTME_TESTS_DIR / "smoke")

    res = run(lkdtm_kernel, [panic], tmp_path / "step1", root)
    assert res["boot"]["status"] == "fail" and "died" in res["boot"]["detail"], res["boot"]
    assert len(res["boot"]["attempts"]) == 1  # a panic after the runner started: no retry
    console = (tmp_path / "step1" / res["boot"]["console"]).read_text()
    assert "Kernel panic - not syncing" in console
    cases = by_case(res)
    assert cases["before"]["status"] == "pass"
    hit = cases["provoke.sh#2"]
    assert hit["status"] == "fail"
    assert any(s["kind"] == "panic" for s in hit["splats"]), hit
    assert cases["provoke.sh#3"]["status"] == "not-run"
    assert any(s["kind"] == "panic" and s["test"] == f"{panic}/provoke.sh#2"
               for s in res["splats"])

    # the next step still runs; its WARNING fails only the case that provoked it
    res = run(lkdtm_kernel, [warning, "smoke"], tmp_path / "step2", root)
    assert res["boot"]["status"] == "pass", res["boot"]
    cases = by_case(res)
    assert cases["before"]["status"] == "pass"
    assert cases["after"]["status"] == "pass"
    hit = cases["provoke_warning"]
    assert hit["status"] == "fail" and "splat: WARNING in lkdtm_WARNING" in hit["message"]
    assert [s["title"] for s in hit["splats"]] == ["WARNING in lkdtm_WARNING"]
    assert "lkdtm_WARNING" in hit["splats"][0]["trace"]
    assert [s["test"] for s in res["splats"] if s["kind"] == "warning"] == [
        f"{warning}/provoke_warning"]
    assert {c: cases[c]["status"] for c in ("uname_localversion", "vhost_scsi_open",
                                            "lio_configfs")} == dict.fromkeys(
        ("uname_localversion", "vhost_scsi_open", "lio_configfs"), "pass")


def test_soft_lockup_hang_is_killed_at_the_run_timeout(lkdtm_kernel, tmp_path):
    name = make_suite(tmp_path / "suites", "SOFTLOCKUP",
                      pre="echo 1 > /proc/sys/kernel/watchdog_thresh", timeout=10)
    res = run(lkdtm_kernel, [name], tmp_path / "out", tmp_path / "suites", run_margin=40.0)
    assert res["boot"]["status"] == "fail" and "hung" in res["boot"]["detail"], res["boot"]
    assert [a["reason"] for a in res["boot"]["attempts"]] == ["run-timeout"]
    # killed 50 s (10 s program timeout + 40 s margin) after the runner started
    assert 50 <= res["boot"]["total_seconds"] - res["boot"]["seconds"] < 50 + 15
    hit = by_case(res)["provoke.sh#2"]
    assert hit["status"] == "fail"
    assert any(s["kind"] == "soft-lockup" for s in hit["splats"]), hit
