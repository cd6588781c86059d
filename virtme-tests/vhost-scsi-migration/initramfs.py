"""The L2 guest's initramfs, built at run time: a newc cpio archive written in Python.

Reads Debian's static busybox (/bin/busybox from busybox-static, on the host's root file system
the guest sees), the suite's init script (l2-init.sh, or the text a fault test gives) and the
destination's check (check.awk).
Writes one uncompressed cpio file (the L2 kernel is built without any RD_* decompressor).

Written by hand: Python's stdlib has no cpio writer, the guest has only the stdlib, and
`cpio` run as a child of a guest under TCG costs an exec over 9p for a few dozen lines of
header packing. The format is the kernel's own "newc" (Documentation/driver-api/
early-userspace/buffer-format.rst): a 110-byte ASCII header, the name, padding to 4 bytes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

BUSYBOX = "/bin/busybox"
INIT = Path(__file__).with_name("l2-init.sh")
CHECK = Path(__file__).with_name("check.awk")  # the destination's check, run by /init
MAGIC = b"070701"
TRAILER = "TRAILER!!!"


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def entry(name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
          ino: int = 0) -> bytes:
    """One newc record: header, NUL-terminated name, padding, data, padding."""
    raw = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 1 if not stat.S_ISDIR(mode) else 2, 0, len(data), 0, 0,
              rdev[0], rdev[1], len(raw), 0]
    head = MAGIC + b"".join(b"%08x" % f for f in fields)
    return head + raw + _pad(len(head) + len(raw)) + data + _pad(len(data))


def build(out: Path, init_text: str | None = None, busybox: str = BUSYBOX) -> int:
    """Write the initramfs to `out`: /init, /check.awk, /bin/busybox, /dev/console (the
    kernel opens it for init's stdio before anything is mounted), /dev/sda and the empty
    folders /init mounts on or writes to.
    Returns its size in bytes."""
    init = (init_text if init_text is not None else INIT.read_text()).encode()
    parts = [
        entry("dev", stat.S_IFDIR | 0o755, ino=1),
        entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1), ino=2),
        # the first SCSI disk's node: init mounts no devtmpfs (a process less)
        entry("dev/sda", stat.S_IFBLK | 0o600, rdev=(8, 0), ino=9),
        entry("bin", stat.S_IFDIR | 0o755, ino=3),
        entry("bin/busybox", stat.S_IFREG | 0o755, Path(busybox).read_bytes(), ino=4),
        entry("init", stat.S_IFREG | 0o755, init, ino=5),
        entry("check.awk", stat.S_IFREG | 0o644, CHECK.read_bytes(), ino=10),
        *(entry(name, stat.S_IFDIR | 0o755, ino=6 + i)
          for i, name in enumerate(("proc", "sys", "tmp"))),
    ]
    parts.append(entry(TRAILER, 0))
    blob = b"".join(parts)
    out.write_bytes(blob)
    os.chmod(out, 0o644)
    return len(blob)
