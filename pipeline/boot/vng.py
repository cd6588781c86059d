"""Boot one kernel under virtme-ng and keep its console, with the retry-once rule.

Reads a bzImage and the run's BootSettings; runs `vng --run BZIMAGE ... --verbose --exec CMD`
in its own process group (the venv's bin/ on PATH, stdin from /dev/null) and writes the
merged stdout/stderr of vng (kernel console included) to a console log as it arrives. Watches
the console for the guest runner's `kpipe: runner start` / `kpipe: runner end` markers: until
the first one the boot timeout applies, after it the run timeout. On a timeout the whole
process group is killed (QEMU included) and the console is kept; after every attempt the
group is killed again and checked empty, so no QEMU outlives `launch()`.

Retry rule (issue 3): an attempt that fails before the runner starts (no console output,
rc 255, an Oops/panic in early boot, a boot timeout) is retried once; both attempts are
recorded, and the failure is the result only if the retry fails before the runner too.
Nothing else is retried, except a host fault: when QEMU reports that KVM itself stopped the
guest ("KVM internal error", "emulation failure": a nested KVM that passed the accelerator
probe but cannot run a real kernel), the attempt is ended at once (QEMU stays paused otherwise),
the next attempt runs under TCG, and the probe's cache is told so that later boots go straight
to TCG. The same nested KVM first runs the kernel at a few percent of real time: its first
console line came 86 s after the start, its printk clock said 5.9 s after 94 s, and then QEMU
printed "emulation failure". Under KVM, no kernel line KVM_SLOW_AFTER seconds after the start,
or a line that arrives later than that stamped at less than KVM_SLOW_RATIO of the time it
arrived, is the same host fault, found more than a minute sooner.

A boot run in a thread (the walk's boot worker, pipeline/run/booter.py) is given a `stop` event:
once it is set the attempt under way is ended as a timeout is (the group killed) and boot()
raises Interrupted instead of retrying; a Ctrl-C reaches only the main thread, so this is how
it reaches the guest.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.boot import accel as accel_mod
from pipeline.errors import InfraError
from pipeline.procgroup import kill_group

VENV_BIN = Path(sys.executable).parent
RUNNER_START = "kpipe: runner start"
RUNNER_END = "kpipe: runner end"
FIRST_CASE = "kpipe: case "
# virtme-ng-init finds the script's virtio-serial ports through the names udev gives them; with
# udev off it runs the script on the console instead, and vng, which then never gets the
# script's exit code, returns 255. The guest runner's own end marker says it completed.
CONSOLE_SCRIPT = "cannot find script I/O ports"
NO_EXIT_CODE = 255
KERNEL_LINE_RE = re.compile(r"^\[\s*(\d+\.\d+)\]")  # a kernel line and its stamp
EARLY_FAULT_RE = re.compile(r"(Oops:|BUG:|Kernel panic - not syncing|general protection fault)")
# QEMU's own messages (not the guest kernel's) when KVM cannot go on running the guest
KVM_FAULT_RE = re.compile(r"^(KVM internal error|emulation failure|.*failed to set MSR)")
# A kernel under a working KVM prints its first line within about 2 s of QEMU's start and
# stamps its lines within a second of the wall time since then; under TCG here a boot reaches
# the runner in about 5 s. No line 15 s in, or a line stamped at a quarter of its wall time or
# less, is a guest running at a fraction of real speed: not a KVM worth waiting for.
KVM_SLOW_AFTER = 15.0
KVM_SLOW_RATIO = 0.25
OVERLAID = ("/etc", "/lib", "/home", "/opt", "/srv", "/usr", "/var", "/tmp")  # vng's overlays
SPARE_MOUNTS = ("/media", "/boot")
# What virtme-ng-init runs before the script and a suite does not need unless it says so
# (suite.toml `udev = true`): udev, which it starts when it finds systemd-udevd in this folder
# (or `udevd` on PATH: Debian has none), and systemd-tmpfiles, which reads this folder's
# neighbour tmpfiles.d. An empty tmpfs over each, in a mount namespace of vng's own, hides them
# from the guest, which sees the host's root through QEMU's 9p server in that namespace
# (vng 1.42 has no option of its own to skip either). Under TCG on a busy host udev's coldplug
# and settle took 15 to 50 s of a boot and systemd-tmpfiles 4 to 18 s; devtmpfs already makes
# every node the suites open (/dev/vhost-scsi, /dev/fuse, /dev/kmsg).
UDEVD_DIR = "/usr/lib/systemd"
HIDDEN_WITHOUT_UDEV = (UDEVD_DIR, "/usr/lib/tmpfiles.d")
# The guest's root is the host's, read-only over 9p, and nothing it reads there changes while it
# runs: cache=loose lets the guest keep pages, names and attributes instead of asking QEMU at
# every look-up (the runner's Python started in 5 s instead of 11 s, the vhost-scsi suite ran
# 29 s instead of 41 s, on a busy host). The kernel takes the last rootflags= of its command
# line, so this one, appended, wins over vng's own, whose other options (vng 1.42's) it
# repeats. The results folder is a mount of its own, uncached, which the host reads live.
ROOT_FLAGS = "rootflags=version=9p2000.L,trans=virtio,access=any,msize=524288,cache=loose"


class BootError(InfraError):
    """vng cannot be started at all (missing binary, bad arguments)."""


class Interrupted(KeyboardInterrupt):
    """The boot was stopped from outside (its `stop` event set, as the run's Ctrl-C does); its
    VM is gone. A KeyboardInterrupt: should it ever reach the run, it ends as Ctrl-C does."""


@dataclass
class BootSettings:
    memory_mb: int = 1024
    cpus: int = 1
    boot_timeout: float = 420.0  # start to runner start: udev alone took 126 s on a busy host
    accel: str = "auto"  # auto | kvm | tcg
    run_margin: float = 60.0  # added to the suites' own timeouts for the whole guest run
    vng: Path = VENV_BIN / "vng"
    # devkmsg=on: the runner's markers must not be rate-limited; nokaslr: System.map addresses
    # are the running kernel's, so bare addresses in traces can be symbolised; ROOT_FLAGS: the
    # guest caches the read-only root
    append: tuple[str, ...] = ("printk.devkmsg=on", "nokaslr", ROOT_FLAGS)
    retry_early_failures: bool = True
    # udev in the guest: off unless a suite asks for it (suite.toml `udev = true`). devtmpfs
    # makes every node the suites open (/dev/vhost-scsi, /dev/fuse, /dev/kmsg); udev's
    # coldplug and settle took 15 s of a 60 s boot under TCG.
    udev: bool = False


@dataclass
class Attempt:
    """One vng invocation."""

    console: Path
    rc: int | None = None
    seconds: float = 0.0
    timed_out: str | None = None  # "boot" | "run" | None
    runner_started: float | None = None  # seconds after start when the marker was seen
    runner_ended: bool = False
    first_case: float | None = None  # seconds after start when the first case began
    console_bytes: int = 0
    kernel_lines: int = 0
    leftover: bool = False  # the process group was still alive after the kill (never expected)
    kvm_fault: str = ""  # QEMU's line saying KVM stopped the guest, or why KVM was too slow
    script_on_console: bool = False  # no udev: the script ran on the console (CONSOLE_SCRIPT)
    stopped: bool = False  # killed because the caller's stop event was set
    reason: str = ""  # "ok" or why it failed
    started: float = 0.0  # when vng was started (seconds since the epoch)

    @property
    def early_failure(self) -> bool:
        return self.runner_started is None


@dataclass
class BootOutcome:
    attempts: list[Attempt] = field(default_factory=list)
    accel: str = "tcg"
    cpu_model: str = ""
    accel_reason: str = ""

    @property
    def final(self) -> Attempt:
        return self.attempts[-1]


def choose_accel(settings: BootSettings) -> dict:
    if settings.accel in ("kvm", "tcg"):
        model = accel_mod.host_cpu_model() if settings.accel == "kvm" else accel_mod.TCG_CPU_MODEL
        return {"accel": settings.accel, "reason": "set in the run's settings", "cpu_model": model}
    return accel_mod.probe()


def guest_path(rwdir: Path) -> Path:
    """Where the guest sees `rwdir`: the same path, unless vng lays a tmpfs overlay over it.

    vng mounts its overlays (/tmp, /var, /usr, ...) after the --rwdir mounts, so a results
    directory under one of them would be hidden in the guest; it is then mounted on an empty
    directory of the root file system instead.
    """
    rwdir = rwdir.resolve()
    if not any(rwdir == Path(o) or Path(o) in rwdir.parents for o in OVERLAID):
        return rwdir
    for spare in SPARE_MOUNTS:
        if Path(spare).is_dir():
            return Path(spare)
    raise BootError(f"{rwdir} is under a directory vng overlays and no spare mount point exists")


@functools.cache
def can_hide_udev() -> str:
    """'' when vng can run in a mount namespace of its own with udev hidden, else why not
    (asked once per process)."""
    try:
        proc = subprocess.run(_hiding(["true"]), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode == 0:
        return ""
    return (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]


def _hiding(cmd: list[str]) -> list[str]:
    """`cmd` run in a private mount namespace where HIDDEN_WITHOUT_UDEV's folders are empty."""
    mounts = " && ".join(f"mount -t tmpfs -o ro,mode=755,size=16k kpipe-hidden {d}"
                         for d in HIDDEN_WITHOUT_UDEV if Path(d).is_dir())
    script = f'{mounts or "true"} && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
            "kpipe-vng", *cmd]


def udev_state(settings: BootSettings) -> str:
    """What a boot with `settings` does about udev (and systemd-tmpfiles), as the record says."""
    if settings.udev:
        return "on: a suite asks for it"
    why = can_hide_udev()
    return f"on: it could not be hidden ({why})" if why else "off: no suite asks for it"


def vng_command(bzimage: Path, rwdir: Path, exec_cmd: str, settings: BootSettings,
                accel: str) -> list[str]:
    guest = guest_path(rwdir)
    mount = str(rwdir) if guest == rwdir.resolve() else f"{guest}={rwdir.resolve()}"
    cmd = [str(settings.vng), "--run", str(bzimage), "--force-9p",
           "--cpus", str(settings.cpus), "--memory", f"{settings.memory_mb}M",
           f"--rwdir={mount}", "--verbose"]
    if accel != "kvm":
        cmd.append("--disable-kvm")
    for arg in settings.append:
        cmd += ["--append", arg]
    cmd += ["--exec", exec_cmd]
    if not settings.udev and not can_hide_udev():
        return _hiding(cmd)
    return cmd


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    return env


def _slow_kvm(stamp: float, wall: float) -> str:
    """Why a kernel line stamped `stamp` that arrived `wall` seconds after the attempt started
    shows a KVM far slower than real time, or '' when it does not."""
    if wall < KVM_SLOW_AFTER or stamp >= KVM_SLOW_RATIO * wall:
        return ""
    return (f"KVM ran the guest at {100 * stamp / wall:.0f}% of real time "
            f"(its clock at {stamp:.1f} s after {wall:.0f} s)")


def _pump(proc: subprocess.Popen, log: Path, attempt: Attempt, t0: float,
          started: threading.Event, kvm: bool) -> None:
    assert proc.stdout is not None
    with open(log, "wb") as fh:
        for raw in iter(proc.stdout.readline, b""):
            fh.write(raw)
            fh.flush()
            attempt.console_bytes += len(raw)
            text = raw.decode(errors="replace")
            if kernel := KERNEL_LINE_RE.match(text):
                attempt.kernel_lines += 1
                if kvm and not attempt.kvm_fault and attempt.runner_started is None:
                    attempt.kvm_fault = _slow_kvm(float(kernel.group(1)),
                                                  time.monotonic() - t0)
            elif not attempt.kvm_fault and KVM_FAULT_RE.match(text):
                attempt.kvm_fault = text.strip()
            if CONSOLE_SCRIPT in text:  # virtme-ng-init's line, printed through the kernel log
                attempt.script_on_console = True
            if attempt.runner_started is None and RUNNER_START in text:
                attempt.runner_started = round(time.monotonic() - t0, 3)
                started.set()
            elif attempt.first_case is None and FIRST_CASE in text:
                attempt.first_case = round(time.monotonic() - t0, 3)
            elif RUNNER_END in text:
                attempt.runner_ended = True


def launch(cmd: list[str], console: Path, boot_timeout: float, run_timeout: float,
           stop: threading.Event | None = None, kvm: bool = False) -> Attempt:
    """Run one vng command in its own process group; return when it exits or is killed (at a
    timeout, once `stop` is set, or, with `kvm`, once KVM is seen stopping the guest or
    running it far slower than real time)."""
    attempt = Attempt(console=console, started=time.time())
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=child_env(),
                                start_new_session=True)
    except OSError as exc:
        raise BootError(f"cannot start {cmd[0]}: {exc}") from exc
    started = threading.Event()
    pump = threading.Thread(target=_pump, args=(proc, console, attempt, t0, started, kvm),
                            daemon=True)
    pump.start()
    try:
        while proc.poll() is None:
            now = time.monotonic() - t0
            if attempt.runner_started is None and now > boot_timeout:
                attempt.timed_out = "boot"
            elif attempt.runner_started is not None and now > attempt.runner_started + run_timeout:
                attempt.timed_out = "run"
            if kvm and not attempt.kvm_fault and not attempt.kernel_lines \
                    and now > KVM_SLOW_AFTER:
                attempt.kvm_fault = (f"no kernel output {KVM_SLOW_AFTER:.0f} s after the start "
                                     "under KVM")
            attempt.stopped = stop is not None and stop.is_set()
            if attempt.timed_out or attempt.kvm_fault or attempt.stopped:
                break
            time.sleep(0.1)
    finally:
        attempt.leftover = not kill_group(proc.pid, proc)
        proc.wait()
        pump.join(timeout=10)
    attempt.rc = proc.returncode if not attempt.timed_out else None
    attempt.seconds = round(time.monotonic() - t0, 3)
    attempt.reason = classify(attempt)
    return attempt


def classify(attempt: Attempt) -> str:
    """A short reason word for the attempt: 'ok' or what went wrong."""
    if attempt.kvm_fault:
        return "kvm-fault"
    if attempt.runner_started is not None:
        if attempt.timed_out == "run":
            return "run-timeout"
        if not attempt.runner_ended:
            return "guest-died"  # panic or lost console while tests ran
        no_code = attempt.script_on_console and attempt.rc == NO_EXIT_CODE
        return "ok" if attempt.rc == 0 or no_code else f"rc-{attempt.rc}"
    if attempt.console_bytes == 0 or attempt.kernel_lines == 0:
        if attempt.timed_out == "boot":
            return "boot-timeout-no-console"
        return f"no-console-rc-{attempt.rc}"
    text = attempt.console.read_text(errors="replace") if attempt.console.exists() else ""
    if EARLY_FAULT_RE.search(text):
        return "early-fault"
    if attempt.timed_out == "boot":
        return "boot-timeout"
    return f"early-exit-rc-{attempt.rc}"


def boot(bzimage: Path, exec_cmd: Callable[[Path], str], workdir: Path, run_timeout: float,
         settings: BootSettings, prepare: Callable[[Path], None] | None = None,
         stop: threading.Event | None = None) -> BootOutcome:
    """Boot `bzimage`, retrying once if the first attempt fails before the runner starts;
    raise Interrupted (its VM killed) when `stop` is set before or while an attempt runs.

    For attempt n a results directory workdir/guest-<n> is made (and `prepare` called on it),
    `exec_cmd(dir)` gives the guest command (dir: where the guest sees the results directory),
    and the console goes to workdir/console-<n>.log.
    """
    if not settings.vng.exists():
        raise BootError(f"{settings.vng} not found (install virtme-ng in the venv)")
    acc = choose_accel(settings)
    outcome = BootOutcome(accel=acc["accel"], cpu_model=acc.get("cpu_model", ""),
                          accel_reason=acc.get("reason", ""))
    tries = 2 if settings.retry_early_failures else 1
    n = 0
    while n < tries:
        if stop is not None and stop.is_set():
            raise Interrupted(f"boot of {bzimage} stopped before attempt {n + 1}")
        n += 1
        rwdir = workdir / f"guest-{n}"
        rwdir.mkdir(parents=True, exist_ok=True)
        if prepare:
            prepare(rwdir)
        cmd = vng_command(bzimage, rwdir, exec_cmd(guest_path(rwdir)), settings, outcome.accel)
        (workdir / f"command-{n}.txt").write_text(" ".join(_quote(c) for c in cmd) + "\n")
        attempt = launch(cmd, workdir / f"console-{n}.log", settings.boot_timeout, run_timeout,
                         stop, kvm=outcome.accel == "kvm")
        if attempt.stopped:
            raise Interrupted(f"boot of {bzimage} stopped in attempt {n}")
        outcome.attempts.append(attempt)
        if attempt.kvm_fault and outcome.accel == "kvm":
            _fall_back_to_tcg(outcome, attempt, settings)
            tries = max(tries, n + 1)  # the host's fault: the kernel gets a fair attempt
            continue
        if not attempt.early_failure:
            break
    return outcome


def _fall_back_to_tcg(outcome: BootOutcome, attempt: Attempt, settings: BootSettings) -> None:
    why = f"KVM could not run the guest ({attempt.kvm_fault}); retried under TCG"
    outcome.accel, outcome.cpu_model, outcome.accel_reason = "tcg", accel_mod.TCG_CPU_MODEL, why
    if settings.accel == "auto":
        accel_mod.mark_kvm_unusable(f"a kernel boot under KVM failed: {attempt.kvm_fault}")


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
