"""One L2 QEMU inside the step's guest: its process, its serial console and its QMP socket.

Starts `qemu-system-x86_64` (the host's, under TCG) with the L2 kernel, the initramfs and a
vhost-scsi-pci device on a WWPN; reads the serial console from QEMU's stdout (a pipe: no line
is lost before anyone listens) into a log file and a list of lines; writes cues to QEMU's
stdin; talks QMP with qemu.qmp's QMPClient over a unix socket. Writes, in the work directory,
<name>.console, <name>.stderr and <name>.qmp (the socket). stop() kills QEMU and waits for it.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

from qemu.qmp import QMPClient, QMPError

QEMU = "qemu-system-x86_64"
PANIC_RE = re.compile(r"Kernel panic - not syncing: .*")
# The L2 kernel is loaded at 16 MiB and ends below 25 MiB; 32 MiB leaves it about 18 MiB, and
# every MiB more is pages the migration's first pass sends and the kernel initialises.
L2_MEMORY_MB = 32
# No calibration loops (lpj, no_timer_check, tsc=reliable), no SCSI scan by the kernel (it
# would probe every target virtio-scsi offers: l2-init.sh scans target 0 LUN 0 alone), and
# little console output (every byte is emulated twice).
CMDLINE = ("console=ttyS0 quiet loglevel=3 lpj=1000000 no_timer_check tsc=reliable "
           "scsi_mod.scan=manual rdinit=/init")


# seconds a QMP command may take: query-migrate answers in milliseconds even under TCG
QMP_TIMEOUT = 60.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In QEMU's child before exec: SIGKILL when the process that started it dies."""
    import ctypes  # only here: the child runs this between fork and exec

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class VmError(RuntimeError):
    """Something about an L2 QEMU went wrong; the message says what."""


class Vm:
    def __init__(self, name: str, workdir: Path, kernel: str, initrd: Path, wwpn: str,
                 extra_cmdline: str = "", incoming: str | None = None,
                 device: str = "vhost-scsi-pci") -> None:
        self.name, self.workdir = name, workdir
        self.qmp_path = workdir / f"{name}.qmp"
        self.console_path = workdir / f"{name}.console"
        self.stderr_path = workdir / f"{name}.stderr"
        self.args = [
            # -no-reboot: an L2 that triple-faults ends QEMU instead of booting again unseen
            "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-no-reboot",
            "-machine", "pc", "-accel", "tcg,tb-size=64", "-m", str(L2_MEMORY_MB),
            "-kernel", kernel, "-initrd", str(initrd),
            "-append", f"{CMDLINE} {extra_cmdline}".strip(),
            "-serial", "stdio", "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-device", f"{device},wwpn={wwpn},migratable=on",
        ]
        if incoming:
            self.args += ["-incoming", incoming]
        self.proc: asyncio.subprocess.Process | None = None
        self.qmp = QMPClient(name)
        self.lines: list[str] = []
        self.started = 0.0
        self._new_line = asyncio.Event()
        self._reader: asyncio.Task | None = None

    # --- start --------------------------------------------------------------------------
    async def start(self, connect_timeout: float = 60.0) -> None:
        """Start QEMU and connect QMP; VmError("QMP connect failed: ...") if it cannot."""
        self.qmp_path.unlink(missing_ok=True)
        self.started = time.monotonic()
        with open(self.stderr_path, "wb") as err:
            # its own process group (stop() kills QEMU's children too), and killed by the
            # kernel if this program dies first (the runner SIGKILLs a program past its
            # timeout: no finally of ours runs then)
            self.proc = await asyncio.create_subprocess_exec(
                QEMU, *self.args, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=err, start_new_session=True,
                preexec_fn=_die_with_parent)
        self._reader = asyncio.create_task(self._read_console())
        deadline = time.monotonic() + connect_timeout
        last = ""
        while True:
            if self.proc.returncode is not None:
                raise VmError(f"QMP connect failed: {self.name} QEMU exited with rc "
                              f"{self.proc.returncode}: {self.stderr_tail()}")
            if self.qmp_path.exists():
                try:
                    await self.qmp.connect(str(self.qmp_path))
                    return
                except Exception as exc:  # qemu.qmp raises ConnectError and OS errors
                    last = str(exc)
            if time.monotonic() > deadline:
                raise VmError(f"QMP connect failed: {self.name} QEMU gave no QMP socket in "
                              f"{connect_timeout:.0f} s {last}".strip())
            await asyncio.sleep(0.2)

    def stderr_tail(self, n: int = 400) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace").strip()
        except OSError:
            return ""
        return " ".join(text.split())[-n:] or "(no stderr)"

    async def _read_console(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.console_path, "w", buffering=1) as log:
            while raw := await self.proc.stdout.readline():
                line = raw.decode(errors="replace").rstrip("\r\n")
                log.write(f"[{time.monotonic() - self.started:8.2f}] {line}\n")
                self.lines.append(line)
                self._new_line.set()
        self._new_line.set()

    # --- console ------------------------------------------------------------------------
    def send(self, cue: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(cue.encode() + b"\n")

    async def wait_line(self, pattern: str, timeout: float, what: str,
                        since: int = 0) -> tuple[re.Match, int]:
        """The first console line from index `since` on matching `pattern`, and its index.
        VmError on an L2 panic, QEMU's exit or the timeout (`what` names the wait)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = since
        while True:
            while i < len(self.lines):
                line = self.lines[i]
                if m := PANIC_RE.search(line):
                    raise VmError(f"L2 panicked ({self.name}): {m.group(0).strip()}")
                if m := regex.search(line):
                    return m, i
                if "KPIPE-L2 ERROR" in line:
                    raise VmError(f"L2 init ({self.name}): {line.strip()}")
                i += 1
            if self.proc is None or self.proc.returncode is not None or (
                    self._reader is not None and self._reader.done()):
                raise VmError(f"{self.name} QEMU exited while waiting for {what} "
                              f"(rc {self.proc.returncode if self.proc else None}): "
                              f"{self.stderr_tail()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise VmError(f"{self.name}: no {what} within {timeout:.0f} s "
                              f"(last console line: {self.lines[-1] if self.lines else 'none'})")
            self._new_line.clear()
            try:
                await asyncio.wait_for(self._new_line.wait(), min(left, 1.0))
            except TimeoutError:
                pass

    # --- QMP ----------------------------------------------------------------------------
    async def execute(self, cmd: str, args: dict | None = None,
                      timeout: float = QMP_TIMEOUT) -> object:
        """One QMP command's answer; VmError when QEMU refuses it, does not answer in
        `timeout` seconds (a main loop stuck in a vhost ioctl) or is gone."""
        try:
            return await asyncio.wait_for(self.qmp.execute(cmd, args), timeout)
        except TimeoutError as exc:
            raise VmError(f"{self.name} QEMU did not answer {cmd} within {timeout:.0f} s") \
                from exc
        except (QMPError, OSError, EOFError) as exc:  # ExecuteError: QEMU refused it
            raise VmError(f"{self.name} QEMU: {cmd} failed: {type(exc).__name__}: {exc}") \
                from exc

    async def wait_migration(self, until: Callable[[dict], bool], timeout: float,
                             what: str, poll: float = 0.5) -> dict:
        """Poll query-migrate until `until(info)`; VmError on failure, QEMU's exit, a panic
        on the console or the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            info = await self.execute("query-migrate")
            assert isinstance(info, dict)
            # before `until`: a wait for "no longer active" must still say why it failed
            if info.get("status") in ("failed", "cancelled"):
                raise VmError(f"migration {info.get('status')}: "
                              f"{info.get('error-desc', 'no error-desc')}")
            if until(info):
                return info
            for line in self.lines:
                if m := PANIC_RE.search(line):
                    raise VmError(f"L2 panicked ({self.name}): {m.group(0).strip()}")
            if time.monotonic() > deadline:
                raise VmError(f"no {what} within {timeout:.0f} s (status {info.get('status')}, "
                              f"dirty-sync-count {sync_count(info)})")
            await asyncio.sleep(poll)

    # --- stop ---------------------------------------------------------------------------
    async def stop(self) -> None:
        """Kill QEMU (its whole process group) and wait for it; safe to call twice."""
        try:
            await asyncio.wait_for(self.qmp.disconnect(), 5)
        except Exception:  # noqa: BLE001 - best effort: QEMU is killed next anyway
            pass
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await self.proc.wait()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 5)
            except Exception:  # noqa: BLE001 - a timeout or a reader error
                self._reader.cancel()


def sync_count(info: dict) -> int:
    """dirty-sync-count of a query-migrate answer (0 before the first sync)."""
    return int(info.get("ram", {}).get("dirty-sync-count", 0))


def qemu_processes() -> list[int]:
    """PIDs of every qemu-system process in this (the step's) guest."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith("qemu-system"):
                found.append(int(entry))
    return found
