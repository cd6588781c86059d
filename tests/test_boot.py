"""Boot launcher: process group, timeouts, console capture, the retry-once rule.

The first tests drive pipeline.boot.vng with a stand-in for vng (a script written to tmp_path that
behaves like vng in one way: boots fine, hangs, prints nothing, panics, ignores SIGTERM...)
and a background `sleep` standing in for QEMU, so the kill-the-group logic is checked for
real. The last tests boot the real base kernel (fixture `base_kernel`); reading a finished
guest's results is tests/test_guest_results.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.boot import vng as boot

FAKE_VNG = textwrap.dedent("""\
    #!{python}
    import os, signal, subprocess, sys, time
    mode = os.environ["FAKE_VNG_MODE"]
    state = os.environ.get("FAKE_VNG_STATE")
    n = 1
    if state:
        n = int(open(state).read()) + 1 if os.path.exists(state) else 1
        open(state, "w").write(str(n))
    if mode == "flaky":
        mode = "early-oops" if n == 1 else "ok"
    if mode in ("kvm-fault", "kvm-slow", "kvm-silent"):  # what a nested KVM does here
        mode = "ok" if "--disable-kvm" in sys.argv else mode
    # the stand-in for QEMU: a child in vng's process group
    qemu = subprocess.Popen(["sleep", "300"])
    open(os.environ["FAKE_VNG_PIDS"], "a").write(f"{{qemu.pid}}\\n")
    def say(line):
        print(line, flush=True)
    if mode == "silent":
        sys.exit(255)
    if mode == "kvm-silent":  # its first line 86 s after the start, as this host's nested KVM
        time.sleep(300)
    say("[    0.000000] Linux version 6.12.117-kpipe-base")
    say("[    0.500000] Run /init as init process")
    if mode == "kvm-fault":
        say("KVM internal error. Suberror: 1")
        say("emulation failure")
        time.sleep(300)
    if mode == "kvm-slow":  # its clock at a twentieth of real time, as this host's nested KVM
        start = time.monotonic()
        while True:
            time.sleep(0.2)
            say(f"[{{(time.monotonic() - start) / 20:13.6f}}] ACPI: slowly")
    if mode == "early-oops":
        say("[    0.600000] Oops: int3: 0000 [#1] PREEMPT SMP")
        say("[    0.600001] RIP: 0010:enqueue_timer+0x10/0x40")
        sys.exit(255)
    if mode == "hang-boot":
        time.sleep(300)
    if mode.startswith("no-ports"):  # no udev: virtme-ng-init runs the script on the console
        say("[    0.900000] virtme-ng-init: virtme-init: cannot find script I/O ports; make sure "
            "virtio-serial is available")
    say("[    1.000000] kpipe: runner start")
    if mode in ("no-ports", "rc-255"):  # the runner ends, and vng has no exit code to give
        say("[    3.000000] kpipe: runner end")
        sys.exit(255)
    if mode == "hang-run":
        time.sleep(300)
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(300)
    if mode == "panic":
        say("[    2.000000] Kernel panic - not syncing: dumptest")
        sys.exit(255)
    say("[    3.000000] kpipe: runner end")
    sys.exit(0)
""")


@pytest.fixture
def fake_vng(tmp_path, monkeypatch):
    script = tmp_path / "vng"
    script.write_text(FAKE_VNG.format(python=sys.executable))
    script.chmod(0o755)
    pids = tmp_path / "pids"
    pids.write_text("")
    monkeypatch.setenv("FAKE_VNG_PIDS", str(pids))
    monkeypatch.setenv("FAKE_VNG_STATE", str(tmp_path / "state"))

    def settings(mode: str, **kw) -> boot.BootSettings:
        monkeypatch.setenv("FAKE_VNG_MODE", mode)
        return boot.BootSettings(vng=script, accel="tcg", **kw)

    settings.pids = pids
    return settings


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _run(tmp_path, settings, run_timeout=5.0):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return boot.boot(Path("/nonexistent/bzImage"), lambda d: f"true {d}", work, run_timeout,
                     settings)


def _assert_no_leftovers(fake_vng):
    pids = [int(p) for p in fake_vng.pids.read_text().split()]
    assert pids, "the stand-in never started"
    time.sleep(0.2)
    assert not [p for p in pids if _alive(p)], "a QEMU stand-in outlived boot()"


def test_ok_boot_keeps_console_and_kills_group(tmp_path, fake_vng):
    out = _run(tmp_path, fake_vng("ok"))
    assert len(out.attempts) == 1
    a = out.final
    assert a.reason == "ok" and a.rc == 0 and a.runner_started is not None and a.runner_ended
    assert "kpipe: runner start" in a.console.read_text()
    assert not a.leftover
    cmd = (tmp_path / "work" / "command-1.txt").read_text()
    assert "--disable-kvm" in cmd and "--force-9p" in cmd and "--verbose" in cmd
    _assert_no_leftovers(fake_vng)


def test_without_udev_the_runner_end_is_the_result_and_vng_hides_udevd(tmp_path, fake_vng):
    out = _run(tmp_path, fake_vng("no-ports"))
    assert out.final.script_on_console and out.final.reason == "ok", out.final
    cmd = (tmp_path / "work" / "command-1.txt").read_text()
    if Path(boot.UDEVD_DIR, "systemd-udevd").exists():
        assert boot.can_hide_udev() == "", "root on Debian 12: unshare --mount must work"
        assert cmd.startswith("unshare --mount") and f"kpipe-hidden {boot.UDEVD_DIR}" in cmd
    assert boot.udev_state(fake_vng("ok")) == "off: no suite asks for it"
    with_udev = fake_vng("rc-255", udev=True)
    assert boot.udev_state(with_udev) == "on: a suite asks for it"
    # with the ports (udev on), vng's 255 after the runner's end is a failure, not an ok
    work = tmp_path / "udev"
    work.mkdir()
    out = boot.boot(Path("/nonexistent/bzImage"), lambda d: f"true {d}", work, 5.0, with_udev)
    assert out.final.reason == "rc-255" and not out.final.script_on_console
    assert not (work / "command-1.txt").read_text().startswith("unshare")
    _assert_no_leftovers(fake_vng)


def test_early_oops_is_retried_once_and_retry_wins(tmp_path, fake_vng):
    out = _run(tmp_path, fake_vng("flaky"))
    assert [a.reason for a in out.attempts] == ["early-fault", "ok"]
    assert "Oops" in out.attempts[0].console.read_text()
    _assert_no_leftovers(fake_vng)


def test_kvm_fault_ends_the_attempt_and_the_retry_runs_under_tcg(tmp_path, fake_vng,
                                                                monkeypatch):
    from pipeline.boot import accel

    monkeypatch.setenv("KPIPE_CACHE", str(tmp_path / "cache"))
    qemu = accel.shutil.which(accel.QEMU)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "accel.json").write_text(json.dumps(
        {"key": accel._cache_key(qemu), "result": {"accel": "kvm", "reason": "probe passed",
                                                  "cpu_model": "host", "ok": True}}))
    settings = fake_vng("kvm-fault", retry_early_failures=False)
    settings.accel = "auto"
    start = time.monotonic()
    out = _run(tmp_path, settings)
    assert time.monotonic() - start < 30, "a paused QEMU was waited for until the timeout"
    assert [a.reason for a in out.attempts] == ["kvm-fault", "ok"]
    assert out.accel == "tcg" and "KVM internal error" in out.accel_reason
    assert accel.probe()["accel"] == "tcg", "later boots must not try KVM again"
    _assert_no_leftovers(fake_vng)


@pytest.mark.parametrize(("mode", "says"), [("kvm-slow", "% of real time"),
                                             ("kvm-silent", "no kernel output 1 s after")])
def test_kvm_far_slower_than_real_time_is_a_kvm_fault(tmp_path, fake_vng, monkeypatch, mode,
                                                      says):

    monkeypatch.setenv("KPIPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(boot, "KVM_SLOW_AFTER", 1.0)
    settings = fake_vng(mode, retry_early_failures=False)
    settings.accel = "kvm"  # as set in the run's settings: the probe's cache is not touched
    start = time.monotonic()
    out = _run(tmp_path, settings)
    assert time.monotonic() - start < 30, "a guest far slower than real time was waited for"
    assert [a.reason for a in out.attempts] == ["kvm-fault", "ok"]
    assert says in out.accel_reason and out.accel == "tcg"
    assert not (tmp_path / "cache" / "accel.json").exists()
    _assert_no_leftovers(fake_vng)


@pytest.mark.parametrize(("line", "wall", "slow"), [
    ("[    0.612000] ACPI: FACP", 16.0, True),  # this host's nested KVM: 5.9 s after 94 s
    ("[    0.000000] Linux version 6.12.117", 86.0, True),  # its first line, 86 s in
    ("[    2.100000] Run /init as init process", 2.8, False),  # a working KVM, early
    ("[   15.300000] virtme-ng-init: mounting", 16.1, False),  # a working KVM, late
    ("[    0.400000] ACPI: FACP", 12.0, False),  # too early to tell
    ("kpipe: case 1", 60.0, False),  # not a kernel line
])
def test_slow_kvm_rule(line: str, wall: float, slow: bool) -> None:
    kernel = boot.KERNEL_LINE_RE.match(line)
    assert bool(kernel and boot._slow_kvm(float(kernel.group(1)), wall)) is slow


def test_silent_guest_twice_is_an_infrastructure_error(tmp_path, fake_vng):
    from pipeline.boot.step import boot_status

    out = _run(tmp_path, fake_vng("silent"))
    assert [a.reason for a in out.attempts] == ["no-console-rc-255"] * 2
    status, detail = boot_status(out)
    assert status == "error" and "never started" in detail
    _assert_no_leftovers(fake_vng)


def test_boot_hang_times_out_kills_and_retries(tmp_path, fake_vng):
    t0 = time.monotonic()
    out = _run(tmp_path, fake_vng("hang-boot", boot_timeout=1.5))
    assert time.monotonic() - t0 < 20
    assert [a.reason for a in out.attempts] == ["boot-timeout", "boot-timeout"]
    assert all(a.timed_out == "boot" and a.rc is None for a in out.attempts)
    assert "Run /init" in out.final.console.read_text()
    _assert_no_leftovers(fake_vng)


def test_run_hang_is_not_retried(tmp_path, fake_vng):
    out = _run(tmp_path, fake_vng("hang-run"), run_timeout=1.5)
    assert [a.reason for a in out.attempts] == ["run-timeout"]
    _assert_no_leftovers(fake_vng)


def test_panic_during_tests_is_not_retried(tmp_path, fake_vng):
    from pipeline.boot.step import boot_status

    out = _run(tmp_path, fake_vng("panic"))
    assert [a.reason for a in out.attempts] == ["guest-died"]
    assert boot_status(out)[0] == "fail"
    _assert_no_leftovers(fake_vng)


def test_sigterm_ignored_still_killed(tmp_path, fake_vng):
    t0 = time.monotonic()
    out = _run(tmp_path, fake_vng("ignore-term"), run_timeout=1.0)
    assert out.final.reason == "run-timeout" and not out.final.leftover
    assert time.monotonic() - t0 < 15
    _assert_no_leftovers(fake_vng)


def test_missing_vng_is_an_error(tmp_path):
    settings = boot.BootSettings(vng=tmp_path / "no-vng", accel="tcg")
    with pytest.raises(boot.BootError):
        _run(tmp_path, settings)


def test_vng_gets_venv_bin_on_path():
    env = boot.child_env()
    assert env["PATH"].split(os.pathsep)[0] == str(boot.VENV_BIN)
    assert (boot.VENV_BIN / "vng").exists()


def test_accel_probe_reports_a_choice(tmp_path):
    from pipeline.boot import accel

    res = accel.probe(refresh=True, cache_file=tmp_path / "accel.json")
    assert res["accel"] in ("kvm", "tcg") and res["reason"] and res["cpu_model"]
    assert res["cached"] is False
    again = accel.probe(cache_file=tmp_path / "accel.json")
    assert again["cached"] is True and again["accel"] == res["accel"]
    if not os.path.exists("/dev/kvm"):
        assert res["accel"] == "tcg"


def _qemu_pids(out: Path) -> set[int]:
    """QEMUs serving this step's results directory (its path is in QEMU's -fsdev argument)."""
    res = subprocess.run(["pgrep", "-f", f"qemu-system-x86_64 .*path={out.resolve()}/guest-"],
                         capture_output=True, text=True)
    return {int(p) for p in res.stdout.split()}


# --- real kernel -------------------------------------------------------------------------
@pytest.mark.e2e  # boots the real base kernel
def test_smoke_on_the_base_kernel(base_kernel, tmp_path):
    from pipeline.boot.step import boot_and_test

    res = boot_and_test(base_kernel.bzimage, base_kernel.system_map, base_kernel.config,
                        base_kernel.localversion, ["smoke"], tmp_path / "step",
                        boot.BootSettings())
    assert not _qemu_pids(tmp_path / "step"), "a QEMU outlived boot_and_test"
    assert res["boot"]["leftover_qemu"] is False
    b = res["boot"]
    assert b["status"] == "pass", b
    assert b["accel"] in ("kvm", "tcg") and b["cpu_model"]
    assert b["guest_release"].endswith(base_kernel.localversion)
    assert 0 < b["seconds"] < boot.BootSettings().boot_timeout  # boot to the runner's marker
    assert b["first_test_seconds"] >= b["seconds"]
    assert {t["case"]: t["status"] for t in res["tests"]} == {
        "uname_localversion": "pass", "vhost_scsi_open": "pass", "lio_configfs": "pass"}
    assert res["splats"] == [], res["splats"]
    for t in res["tests"]:
        assert t["suite"] == "smoke" and (tmp_path / "step" / t["log"]).is_file()
    assert (tmp_path / "step" / b["console"]).read_text().count("kpipe: case smoke/") == 3


@pytest.mark.e2e  # boots the real base kernel
def test_wrong_localversion_fails_the_uname_case(base_kernel, tmp_path):
    from pipeline.boot.step import boot_and_test

    res = boot_and_test(base_kernel.bzimage, base_kernel.system_map, base_kernel.config,
                        "-not-this-kernel", ["smoke"], tmp_path / "step", boot.BootSettings())
    cases = {t["case"]: t for t in res["tests"]}
    assert cases["uname_localversion"]["status"] == "fail"
    assert "-not-this-kernel" in cases["uname_localversion"]["message"]
    assert cases["vhost_scsi_open"]["status"] == "pass"


@pytest.mark.e2e  # boots the real base kernel
def test_suite_whose_prerequisite_is_missing_is_skipped_with_the_reason(base_kernel, tmp_path):
    from pipeline.boot.step import boot_and_test

    cfg = tmp_path / "config"
    cfg.write_text(base_kernel.config.read_text().replace("CONFIG_VHOST_SCSI=y",
                                                          "# CONFIG_VHOST_SCSI is not set"))
    res = boot_and_test(base_kernel.bzimage, base_kernel.system_map, cfg,
                        base_kernel.localversion, ["smoke"], tmp_path / "step",
                        boot.BootSettings())
    assert [(t["case"], t["status"]) for t in res["tests"]] == [("smoke.py", "skip")]
    assert "CONFIG_VHOST_SCSI=n" in res["tests"][0]["message"]


# --- turning a guest's output into test records (no VM) ------------------------------------
