#!/usr/bin/python3 -IS
"""Smoke suite (runs in the guest; stdlib only). Prints KTAP v1 on stdout.

Reads KPIPE_LOCALVERSION (or --localversion) for the LOCALVERSION the step was built with;
checks `uname -r`, that /dev/vhost-scsi opens and that the LIO configfs tree exists.
Writes nothing but its KTAP output (and mounts configfs if it is not mounted).
"""

import argparse
import os
import subprocess
from pathlib import Path


def check_uname(localversion: str) -> tuple[bool, str]:
    release = os.uname().release
    print(f"# uname -r: {release}")
    if not localversion:
        return False, "no expected LOCALVERSION given (KPIPE_LOCALVERSION or --localversion)"
    if not release.endswith(localversion):
        return False, f"release {release} does not end with {localversion}"
    return True, ""


def check_vhost_scsi() -> tuple[bool, str]:
    try:
        fd = os.open("/dev/vhost-scsi", os.O_RDWR)
    except OSError as exc:
        return False, f"open /dev/vhost-scsi: {exc.strerror}"
    os.close(fd)
    return True, ""


def check_lio() -> tuple[bool, str]:
    config = Path("/sys/kernel/config")
    if not (config / "target").exists() and config.is_dir():
        subprocess.run(["mount", "-t", "configfs", "none", str(config)], capture_output=True)
    if not (config / "target").is_dir():
        return False, "/sys/kernel/config/target does not exist"
    print(f"# {config / 'target'}: {sorted(p.name for p in (config / 'target').iterdir())}")
    return True, ""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--localversion", default=os.environ.get("KPIPE_LOCALVERSION", ""))
    args = ap.parse_args()
    checks = [
        ("uname_localversion", lambda: check_uname(args.localversion)),
        ("vhost_scsi_open", check_vhost_scsi),
        ("lio_configfs", check_lio),
    ]
    print("KTAP version 1")
    print(f"1..{len(checks)}", flush=True)
    for n, (name, check) in enumerate(checks, 1):
        try:
            ok, why = check()
        except Exception as exc:  # a crash in one check fails that case, not the program
            ok, why = False, f"{type(exc).__name__}: {exc}"
        print(f"ok {n} {name}" if ok else f"not ok {n} {name} # {why}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
