#!/usr/bin/python3
"""kpipe's in-guest test runner (stdlib only: the guest runs the host's root fs read-only).

Reads PLAN (a JSON file the host wrote into the results directory: the suites, each with its
programs and timeouts, the environment to pass them, and which attempt on this kernel this
boot is: 1 the first run, 2 and on the re-runs that confirm a failure; programs get it as
$KPIPE_ATTEMPT). Runs each program as root with its timeout, in a session of its own (a
program whose first line names python is run by a fork of this interpreter, see
start_python; any other is exec'ed), reads its KTAP stdout line by line and writes a marker
to /dev/kmsg as each case starts (`kpipe: case <suite>/<n> start prog=<program>`: after the
plan line and after each result line), so the host can attribute kernel splats to the case
whose window they fall in (a plan saying `"markers": false` leaves /dev/kmsg alone: the tests
run the runner on the host).

Writes into the results directory (the directory holding PLAN, shared with the host over 9p):
  events.jsonl   one JSON object per event (runner/program/case start and end), fsync'ed as it
                 goes, so the host can tell how far the guest got if it dies; each carries
                 `debug_locks` (lockdep still checking: 1, turned off: 0; null without
                 lockdep), read from /proc/lockdep_stats
  out/<suite>/<program>.ktap, .stderr   each program's raw output, written as it arrives
  info.json      guest kernel release, CPU model, runner start time
  kmemleak.txt   /sys/kernel/debug/kmemleak after a final `scan` (when kmemleak is built in)
  dmesg.txt      the whole kernel log at the end, read from /dev/kmsg
  results.json   per program: rc, timed_out, seconds, output paths; written last
"""

from __future__ import annotations

import errno
import json
import os
import queue
import re
import runpy
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

PLAN_RE = re.compile(r"^1\.\.(\d+)")
RESULT_RE = re.compile(r"^(?:ok|not ok)\s+(\d+)")
KILL_GRACE = 5.0


class Runner:
    def __init__(self, resdir: Path, markers: bool = True) -> None:
        self.resdir = resdir
        self.events = open(resdir / "events.jsonl", "a", buffering=1)  # noqa: SIM115
        self.t0 = time.monotonic()
        self.kmsg = -1
        try:
            if markers:  # off only where the runner is tested on a host
                self.kmsg = os.open("/dev/kmsg", os.O_WRONLY)
        except OSError as exc:
            self.event("kmsg-unavailable", error=str(exc))

    def mark(self, text: str) -> None:
        """Write one marker line to the kernel log (level 5, so it reaches the console)."""
        if self.kmsg >= 0:
            try:
                os.write(self.kmsg, f"<5>kpipe: {text}\n".encode())
            except OSError:
                pass

    def event(self, kind: str, **fields: object) -> None:
        rec = {"t": round(time.monotonic() - self.t0, 3), "event": kind,
               "debug_locks": debug_locks(), **fields}
        self.events.write(json.dumps(rec) + "\n")
        self.events.flush()
        os.fsync(self.events.fileno())


def debug_locks() -> int | None:
    """Lockdep's `debug_locks` (0 once it turned itself off), or None without lockdep."""
    try:
        with open("/proc/lockdep_stats") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "debug_locks":
                    return int(value)
    except (OSError, ValueError):
        pass
    return None


def write_json(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def guest_info() -> dict:
    info = {"release": os.uname().release, "cpu_model": "", "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def _reader(stream, q: queue.Queue) -> None:
    for raw in iter(stream.readline, b""):
        q.put(raw.decode(errors="replace"))
    q.put(None)


def is_python(path: str) -> bool:
    """Whether the program's first line (#!) names a Python interpreter."""
    try:
        with open(path, "rb") as f:
            first = f.readline(200)
    except OSError:
        return False
    return first.startswith(b"#!") and b"python" in first


class Forked:
    """The part of subprocess.Popen's interface run_program uses, for a forked program."""

    def __init__(self, pid: int, stdout) -> None:
        self.pid, self.stdout, self.returncode = pid, stdout, None

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            pid, status = os.waitpid(self.pid, 0 if end is None else os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
            elif time.monotonic() >= end:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            else:
                time.sleep(0.05)
        return self.returncode


def _exit_like_python() -> None:
    """What the interpreter does at exit before its end: wait for the program's non-daemon
    threads, run its atexit functions (suites tear their targets down there), flush."""
    import atexit

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # private, but the one way to run them short of the real exit
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def start_python(path: str, cwd: str, env: dict[str, str], err) -> Forked:
    """Run a Python program in a fork of this interpreter, as its own session.

    Written by hand because starting an interpreter is the dearest thing in the guest: under
    TCG, over 9p, each start took 8-16 s. The fork already has one, so the program starts at
    once; it runs as `python3 PATH` would (its folder first on sys.path, __name__ == "__main__",
    sys.argv[0] the path, stdin /dev/null), with this interpreter's flags (-I -S: the
    programs use the standard library only), and its exit code is the child's.
    """
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into the runner
        code = 1
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(wfd, 1)
            os.dup2(err.fileno(), 2)
            os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(env)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.argv = [path]
            sys.path.insert(0, os.path.dirname(path))
            runpy.run_path(path, run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, int | None):
                print(exc.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - the program's own failure, as python3 prints it
            traceback.print_exc()
        finally:
            try:
                _exit_like_python()
            finally:
                os._exit(code & 0xFF)
    os.close(wfd)
    return Forked(pid, os.fdopen(rfd, "rb"))


def run_program(r: Runner, suite: dict, prog: dict, env: dict[str, str]) -> dict:
    name, rel = suite["name"], prog["rel"]
    outdir = r.resdir / "out" / name
    outdir.mkdir(parents=True, exist_ok=True)
    stem = rel.replace("/", "_")
    ktap_path, err_path = outdir / f"{stem}.ktap", outdir / f"{stem}.stderr"
    penv = dict(os.environ, **env, KPIPE_SUITE=name, KPIPE_SUITE_DIR=suite["dir"],
                KPIPE_OUTDIR=str(outdir))
    r.mark(f"program {name}/{rel} start")
    r.event("program-start", suite=name, program=rel)
    start = time.monotonic()
    rec = {"suite": name, "program": rel, "ktap": str(ktap_path.relative_to(r.resdir)),
           "stderr": str(err_path.relative_to(r.resdir)), "rc": None, "timed_out": False,
           "abandoned": False}
    with open(ktap_path, "w", buffering=1) as out, open(err_path, "w") as err:
        try:
            if is_python(prog["path"]):
                proc = start_python(prog["path"], suite["dir"], penv, err)
            else:
                proc = subprocess.Popen([prog["path"]], stdout=subprocess.PIPE, stderr=err,
                                        stdin=subprocess.DEVNULL, cwd=suite["dir"], env=penv,
                                        start_new_session=True)
        except OSError as exc:
            rec.update(rc=None, error=f"cannot start: {exc}", seconds=0.0)
            r.event("program-end", suite=name, program=rel, rc=None, error=str(exc))
            r.mark(f"program {name}/{rel} end rc=none")
            return rec
        q: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
        deadline = start + float(prog["timeout"])
        plan = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                rec["timed_out"] = True
                break
            try:
                line = q.get(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if line is None:
                break
            out.write(line)
            out.flush()
            os.fsync(out.fileno())
            text = line.rstrip("\n")
            if m := PLAN_RE.match(text):
                plan = int(m.group(1))
                if plan >= 1:
                    r.mark(f"case {name}/1 start prog={rel}")
                    r.event("case-start", suite=name, program=rel, case=1)
            elif m := RESULT_RE.match(text):
                n = int(m.group(1))
                r.event("case-end", suite=name, program=rel, case=n)
                if plan is not None and n < plan:
                    r.mark(f"case {name}/{n + 1} start prog={rel}")
                    r.event("case-start", suite=name, program=rel, case=n + 1)
        if rec["timed_out"]:
            r.mark(f"program {name}/{rel} timeout after {prog['timeout']}s")
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            rec["rc"] = proc.wait(timeout=KILL_GRACE if rec["timed_out"] else None)
        except subprocess.TimeoutExpired:
            rec["abandoned"] = True  # e.g. stuck in D state: leave it and go on
    rec["seconds"] = round(time.monotonic() - start, 3)
    r.event("program-end", suite=name, program=rel, rc=rec["rc"], timed_out=rec["timed_out"],
            abandoned=rec["abandoned"])
    r.mark(f"program {name}/{rel} end rc={rec['rc']}")
    return rec


def kmemleak_scan(r: Runner) -> str | None:
    path = Path("/sys/kernel/debug/kmemleak")
    if not path.exists() and Path("/sys/kernel/debug").is_dir():
        subprocess.run(["mount", "-t", "debugfs", "none", "/sys/kernel/debug"],
                       capture_output=True)
    if not path.exists():
        r.event("kmemleak", status="absent")
        return None
    r.mark("kmemleak scan")
    try:
        path.write_text("scan")
        report = path.read_text()
    except OSError as exc:
        r.event("kmemleak", status="error", error=str(exc))
        return None
    (r.resdir / "kmemleak.txt").write_text(report)
    r.event("kmemleak", status="scanned", bytes=len(report))
    return report


def read_kmsg() -> str:
    """The whole kernel log from /dev/kmsg, formatted like `dmesg`: [seconds] message."""
    lines = []
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                rec = os.read(fd, 8192).decode(errors="replace")
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten while reading: carry on
                    lines.append("[    ?.??????] kpipe: kernel log records lost")
                    continue
                if exc.errno == errno.EAGAIN:
                    break
                raise
            head, _, msg = rec.partition(";")
            fields = head.split(",")
            usec = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 0
            stamp = f"[{usec // 1000000:5d}.{usec % 1000000:06d}]"
            body = msg.split("\n")[0]
            for part in body.split("\\x0a"):
                lines.append(f"{stamp} {part}")
    finally:
        os.close(fd)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "--plan":  # no argparse: imports cost seconds under TCG
        print("usage: runner.py --plan PLAN.json", file=sys.stderr)
        return 2
    plan_path = Path(argv[1])
    plan = json.loads(plan_path.read_text())
    resdir = plan_path.parent
    markers = plan.get("markers", True)
    try:
        if markers:
            Path("/proc/sys/kernel/printk_devkmsg").write_text("on\n")
    except OSError:
        pass
    r = Runner(resdir, markers)
    r.mark("runner start")
    info = guest_info()
    r.event("runner-start", **info)
    write_json(resdir / "info.json", info)
    for key, value in plan.get("sysctl", {}).items():
        try:
            Path("/proc/sys", key.replace(".", "/")).write_text(f"{value}\n")
        except OSError as exc:
            r.event("sysctl-error", key=key, error=str(exc))
    programs = []
    for suite in plan["suites"]:
        for prog in suite["programs"]:
            env = {**plan.get("env", {}), "KPIPE_ATTEMPT": str(plan.get("attempt", 1))}
            programs.append(run_program(r, suite, prog, env))
            write_json(resdir / "results.partial.json", {"programs": programs})
    kmemleak = kmemleak_scan(r) if plan.get("kmemleak", True) else None
    r.mark("runner end")
    r.event("runner-end")
    if markers:
        (resdir / "dmesg.txt").write_text(read_kmsg())
    write_json(resdir / "results.json", {"info": info, "programs": programs,
                                         "kmemleak": kmemleak is not None})
    return 0


if __name__ == "__main__":
    sys.exit(main())
