"""Ending a child's whole process group: a make under bubblewrap or a vng with its QEMU.

Reads /proc (which live processes are in a group); sends SIGTERM, then SIGKILL, to the group
and waits until none of its processes is left, so that nothing a run started outlives the
step that started it (the leader alone exiting is not enough: a compiler or a QEMU in its
group may still run a moment later).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

TERM_GRACE = 3.0


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def kill_group(pgid: int, leader: subprocess.Popen | None = None) -> bool:
    """SIGTERM then SIGKILL the whole group; True if no live process is left in it."""
    for sig, wait in ((signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, 5.0)):
        if not group_alive(pgid):
            return True
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return True
        end = time.monotonic() + wait
        while time.monotonic() < end and group_alive(pgid):
            if leader is not None:
                leader.poll()  # reap vng itself so it does not linger as a zombie
            time.sleep(0.05)
    return not group_alive(pgid)
