"""Which accelerator can boot a guest here: KVM if it really works, TCG otherwise.

Reads /dev/kvm, /proc/cpuinfo and the QEMU binary; runs one tiny QEMU guest under KVM (a
512-byte boot sector that writes to QEMU's isa-debug-exit port; with `-cpu host`, the CPU model
vng uses with KVM) and checks that it ran to the end. Writes the result to
<cache>/accel.json, keyed by the QEMU binary, the host kernel and /dev/kvm, so `probe()` costs
one QEMU start per machine. A /dev/kvm that exists is not enough: on a nested, paravirtual KVM
QEMU can abort on an MSR or stop with "KVM internal error" (see toolchain-notes.md). The probe
cannot catch every such KVM: on one measured here the boot sector ran, and a real kernel then
ran 13 s of guest time in 168 s of wall time and stopped with "emulation failure". boot/vng.py
then retries under TCG and calls mark_kvm_unusable(), which rewrites the cached answer to TCG.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from pipeline import atomic, paths

QEMU = "qemu-system-x86_64"
PROBE_TIMEOUT = 15.0
EXIT_PORT = 0xF4
EXIT_VALUE = 0x31  # QEMU exits with (value << 1) | 1
EXPECTED_RC = (EXIT_VALUE << 1) | 1
TCG_CPU_MODEL = "max"  # what vng passes to QEMU without KVM


def _boot_sector() -> bytes:
    """mov al, 0x31; out 0xf4, al; hlt; jmp $-1 -- then the 0x55aa signature."""
    code = bytes([0xB0, EXIT_VALUE, 0xE6, EXIT_PORT, 0xF4, 0xEB, 0xFD])
    return code + bytes(510 - len(code)) + b"\x55\xaa"


def host_cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cache_key(qemu: str | None) -> str:
    parts = [platform.release()]
    if qemu:
        st = os.stat(qemu)
        parts.append(f"{qemu}:{st.st_size}:{int(st.st_mtime)}")
    try:
        st = os.stat("/dev/kvm")
        parts.append(f"kvm:{st.st_rdev}:{st.st_mode}")
    except OSError:
        parts.append("kvm:absent")
    return "|".join(parts)


def _run_qemu_probe(qemu: str, workdir: Path) -> tuple[bool, str]:
    image = workdir / "probe.img"
    image.write_bytes(_boot_sector())
    cmd = [qemu, "-accel", "kvm", "-cpu", "host", "-m", "32", "-nodefaults", "-display", "none",
           "-no-reboot", "-serial", "none", "-monitor", "none",
           "-device", f"isa-debug-exit,iobase={EXIT_PORT:#x},iosize=0x04",
           "-drive", f"file={image},format=raw,if=ide"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True)
    start = time.monotonic()
    try:
        out, _ = proc.communicate(timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        tail = out.strip().splitlines()[-1:] if out.strip() else []
        return False, (f"KVM guest did not finish in {PROBE_TIMEOUT:.0f} s"
                       + (f" ({tail[0]})" if tail else "") + ": QEMU stalled under KVM")
    secs = time.monotonic() - start
    if proc.returncode == EXPECTED_RC:
        return True, f"a KVM guest ran to completion in {secs:.1f} s"
    msg = " ".join(out.strip().splitlines()[:2]) or "no output"
    return False, f"QEMU under KVM exited {proc.returncode}: {msg}"


def _probe_uncached(qemu: str | None) -> dict:
    if qemu is None:
        return {"accel": "tcg", "reason": f"{QEMU} not found", "cpu_model": TCG_CPU_MODEL,
                "ok": False}
    if not os.path.exists("/dev/kvm"):
        return {"accel": "tcg", "reason": "/dev/kvm does not exist", "cpu_model": TCG_CPU_MODEL,
                "ok": True}
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return {"accel": "tcg", "reason": "/dev/kvm is not readable and writable",
                "cpu_model": TCG_CPU_MODEL, "ok": True}
    with tempfile.TemporaryDirectory(prefix="kpipe-accel-") as tmp:
        works, why = _run_qemu_probe(qemu, Path(tmp))
    if works:
        return {"accel": "kvm", "reason": why, "cpu_model": host_cpu_model(), "ok": True}
    return {"accel": "tcg", "reason": f"KVM unusable: {why}", "cpu_model": TCG_CPU_MODEL,
            "ok": True}


def _write_cache(cache: Path, key: str, result: dict) -> None:
    atomic.write_text(cache, json.dumps({"key": key, "result": result}, indent=1))


def mark_kvm_unusable(why: str, cache_file: Path | None = None) -> dict:
    """Record that KVM failed a real boot here, so probe() answers TCG from now on.

    The boot-sector probe can pass on a nested KVM that still cannot run a kernel (QEMU stops
    with "emulation failure"); a boot that saw that is better evidence than the probe.
    """
    qemu = shutil.which(QEMU)
    cache = cache_file or paths.cache_dir() / "accel.json"
    result = {"accel": "tcg", "reason": f"KVM unusable: {why}", "cpu_model": TCG_CPU_MODEL,
              "ok": qemu is not None, "qemu": qemu}
    _write_cache(cache, _cache_key(qemu), result)
    return result


def probe(refresh: bool = False, cache_file: Path | None = None) -> dict:
    """{"accel": "kvm"|"tcg", "reason": why, "cpu_model": CPU the guest gets, ...}.

    `ok` is False when QEMU itself is missing (nothing can boot: an error for callers).
    """
    qemu = shutil.which(QEMU)
    cache = cache_file or paths.cache_dir() / "accel.json"
    key = _cache_key(qemu)
    if not refresh and cache.is_file():
        try:
            data = json.loads(cache.read_text())
            if data.get("key") == key:
                return {**data["result"], "cached": True}
        except (OSError, ValueError, KeyError):
            pass
    result = _probe_uncached(qemu)
    result["qemu"] = qemu
    if qemu:
        ver = subprocess.run([qemu, "--version"], capture_output=True, text=True)
        result["qemu_version"] = ver.stdout.splitlines()[0] if ver.stdout else ""
    _write_cache(cache, key, result)
    return {**result, "cached": False}


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(probe(refresh=True), indent=1))
