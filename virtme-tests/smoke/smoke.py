#!/usr/bin/python3 -IS
"""Smoke suite (runs in the guest; stdlib `os` and `sys` only). Prints KTAP v1 on stdout.

Reads KPIPE_LOCALVERSION (or --localversion=X) for the LOCALVERSION the step was built with;
checks `uname -r`, that /dev/vhost-scsi opens and that the LIO configfs tree exists. Writes
nothing but its KTAP output (and mounts configfs if it is not mounted). Imports only os and
sys: under TCG every imported module costs about a second of guest time.
"""

import os
import sys

CONFIGFS = "/sys/kernel/config"


def check_uname(localversion: str) -> tuple[bool, str]:
    release = os.uname().release
    print(f"# uname -r: {release}")
    if not localversion:
        return False, "no expected LOCALVERSION given (KPIPE_LOCALVERSION or --localversion=)"
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
    target = os.path.join(CONFIGFS, "target")
    if not os.path.exists(target) and os.path.isdir(CONFIGFS):
        os.system(f"mount -t configfs none {CONFIGFS} >/dev/null 2>&1")
    if not os.path.isdir(target):
        return False, f"{target} does not exist"
    print(f"# {target}: {sorted(os.listdir(target))}")
    return True, ""


def main(argv: list[str]) -> int:
    localversion = os.environ.get("KPIPE_LOCALVERSION", "")
    for arg in argv:
        if arg.startswith("--localversion="):
            localversion = arg.split("=", 1)[1]
    checks = [
        ("uname_localversion", lambda: check_uname(localversion)),
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
    raise SystemExit(main(sys.argv[1:]))
