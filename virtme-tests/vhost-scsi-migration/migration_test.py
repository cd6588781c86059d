#!/usr/bin/python3
"""vhost-scsi-migration: a real QEMU live migration of an L2 guest whose disk is vhost-scsi.

Run by the guest runner (KTAP on stdout, one case). Reads $KPIPE_L2_KERNEL (the L2 vmlinux
the host built), $KPIPE_PYTHON_DEPS (the host venv's site-packages, for qemu.qmp: the guest
runs the host's root file system read-only, without site-packages) and $KPIPE_OUTDIR (where
the L2 consoles are copied for the host). Writes its work files under /tmp (the guest's
own) and the consoles to $KPIPE_OUTDIR/migration/.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
for extra in (str(HERE), str(HERE.parent / "vhost-scsi"), os.environ.get("KPIPE_PYTHON_DEPS")):
    if extra and extra not in sys.path:
        sys.path.append(extra)

from ktap import KtapWriter  # noqa: E402  (the vhost-scsi suite's KTAP writer)

CASE = "live-migration"


def prerequisites() -> str | None:
    """Why the case cannot run here, or None."""
    kernel = os.environ.get("KPIPE_L2_KERNEL")
    if not kernel:
        return "KPIPE_L2_KERNEL is not set (the host builds the L2 kernel for this suite)"
    if not os.path.isfile(kernel):
        return f"L2 kernel {kernel} not found"
    if not os.path.exists("/dev/vhost-scsi"):
        return "/dev/vhost-scsi missing"
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 not found"
    try:
        import qemu.qmp  # noqa: F401
    except ImportError as exc:
        return f"qemu.qmp cannot be imported ({exc}; KPIPE_PYTHON_DEPS=" \
               f"{os.environ.get('KPIPE_PYTHON_DEPS')})"
    return None


def keep_consoles(workdir: Path, name: str) -> None:
    out = os.environ.get("KPIPE_OUTDIR")
    if not out:
        return
    dest = Path(out) / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in workdir.glob("*.console"):
        shutil.copyfile(f, dest / f.name)
    for f in workdir.glob("*.stderr"):
        shutil.copyfile(f, dest / f.name)


def run_case(k: KtapWriter, name: str, **kw: object) -> str:
    """Run one migration case and print its KTAP result; its status."""
    why = prerequisites()
    if why:
        k.not_ok(name, f"error: {why}")
        return "error"
    import migration  # after the path set-up: it imports qemu.qmp

    workdir = Path(tempfile.mkdtemp(prefix=f"kpipe-{name}-", dir="/tmp"))
    try:
        res = migration.main_async(workdir, os.environ["KPIPE_L2_KERNEL"], **kw)
    except Exception as exc:  # noqa: BLE001 - run() reports its own faults; this is a bug
        res = migration.Result(message=f"{type(exc).__name__}: {exc}")
    finally:
        try:
            keep_consoles(workdir, name)
        except OSError as exc:  # the consoles are evidence, not the result
            k.diag(f"the L2 consoles were not kept: {exc}")
        shutil.rmtree(workdir, ignore_errors=True)
    for line in res.log:
        k.diag(line)
    if res.status == "pass":
        k.diag(res.message)
        k.ok(name)
    else:
        # kselftest's `# error` directive for a case that could not run its check (the host
        # records it as error, pipeline/boot/ktap.py); a fail's reason is the message alone
        k.not_ok(name, res.message if res.status == "fail" else f"error: {res.message}")
    return res.status


def main() -> int:
    k = KtapWriter()
    k.header(1)
    run_case(k, CASE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
