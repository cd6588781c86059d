"""The destination L2's check (virtme-tests/vhost-scsi-migration/check.awk) and its initramfs.

check.awk runs under the very busybox the L2 runs (Debian's busybox-static, /bin/busybox),
on `od -A d -t x8 -w32` of two disk copies made here: the disk's pattern (block i of
generation g), a copy with some blocks of another generation, a block with one byte changed,
runs of zero blocks (od's "*" then spans blocks), and copies that are short or missing. The
initramfs the suite builds is listed with Debian's cpio: /init, /check.awk, busybox, the
device nodes and the folders /init needs.

Reads /bin/busybox and the suite's files; writes only under tmp_path.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parent.parent / "virtme-tests" / "vhost-scsi-migration"
sys.path.insert(0, str(SUITE))

import disk as diskmod  # noqa: E402  (block_data: the pattern the suite writes)
import initramfs  # noqa: E402

BUSYBOX = "/bin/busybox"
BLOCKS = 64


@pytest.fixture(scope="module")
def busybox() -> str:
    if not Path(BUSYBOX).is_file():
        pytest.fail(f"{BUSYBOX} missing (Debian's busybox-static): the check cannot be run")
    return BUSYBOX


def image(gens: list[int]) -> bytes:
    return b"".join(diskmod.block_data(i, g) for i, g in enumerate(gens))


def check(busybox: str, tmp_path: Path, cached: bytes | None, direct: bytes | None,
          want: int = BLOCKS) -> list[str]:
    files = []
    for name, data in (("cached", cached), ("direct", direct)):
        if data is None:
            continue
        od = subprocess.run([busybox, "od", "-A", "d", "-t", "x8", "-w32"], input=data,
                            capture_output=True, check=True).stdout
        (tmp_path / name).write_bytes(od)
        files.append(str(tmp_path / name))
    out = subprocess.run([busybox, "awk", "-v", f"want={want}", "-f", str(SUITE / "check.awk"),
                          *files], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_equal_copies_have_no_stale_block(busybox: str, tmp_path: Path) -> None:
    disk = image([2] * BLOCKS)
    assert check(busybox, tmp_path, disk, disk) == [f"KPIPE-L2 CHECK-DONE stale=0 of={BLOCKS}"]


def test_each_block_of_another_generation_is_named(busybox: str, tmp_path: Path) -> None:
    old = [1 if i in (0, 9, 10, 63) else 2 for i in range(BLOCKS)]
    assert check(busybox, tmp_path, image(old), image([2] * BLOCKS)) == [
        "KPIPE-L2 STALE 0 9 10 63", f"KPIPE-L2 CHECK-DONE stale=4 of={BLOCKS}"]
    # every block (offsets past 0o7777 too: busybox awk reads "0057344" as octal unless told)
    assert check(busybox, tmp_path, image([1] * BLOCKS), image([2] * BLOCKS))[-1] == \
        f"KPIPE-L2 CHECK-DONE stale={BLOCKS} of={BLOCKS}"


def test_one_byte_and_runs_of_zero_blocks(busybox: str, tmp_path: Path) -> None:
    cached = bytearray(image([2] * BLOCKS))
    cached[7 * 4096 + 4000] ^= 0x20  # near the end of block 7, inside od's "*" run
    cached[40 * 4096:43 * 4096] = bytes(3 * 4096)  # od prints one line and a "*" for all 3
    assert check(busybox, tmp_path, bytes(cached), image([2] * BLOCKS)) == [
        "KPIPE-L2 STALE 7 40 41 42", f"KPIPE-L2 CHECK-DONE stale=4 of={BLOCKS}"]


def test_a_short_or_missing_copy_is_an_error_not_a_pass(busybox: str, tmp_path: Path) -> None:
    disk = image([2] * BLOCKS)
    short = check(busybox, tmp_path, disk, disk[:-4096])
    assert short == [f"KPIPE-L2 ERROR check read {BLOCKS * 4096} B cached and "
                     f"{(BLOCKS - 1) * 4096} B direct, not {BLOCKS * 4096}"]
    assert check(busybox, tmp_path, disk, None)[0].startswith("KPIPE-L2 ERROR check read")
    assert check(busybox, tmp_path, disk, disk, want=BLOCKS + 1)[0].startswith(
        "KPIPE-L2 ERROR")


def test_the_initramfs_holds_what_init_uses(tmp_path: Path) -> None:
    cpio = shutil.which("cpio")
    if cpio is None:
        pytest.fail("cpio missing (a build dependency): the archive cannot be listed")
    out = tmp_path / "initramfs.cpio"
    size = initramfs.build(out)
    assert size == out.stat().st_size
    listing = subprocess.run([cpio, "-itv", "--quiet"], stdin=out.open("rb"),
                             capture_output=True, text=True, check=True).stdout.splitlines()
    kinds = {line.split()[-1]: line[0] for line in listing}
    assert kinds == {"dev": "d", "dev/console": "c", "dev/sda": "b", "bin": "d",
                     "bin/busybox": "-", "init": "-", "check.awk": "-", "proc": "d",
                     "sys": "d", "tmp": "d"}, listing
    dumped = tmp_path / "x"
    dumped.mkdir()
    subprocess.run([cpio, "-id", "--quiet", "init", "check.awk"], stdin=out.open("rb"),
                   cwd=dumped, check=True)
    assert (dumped / "init").read_bytes() == initramfs.INIT.read_bytes()
    assert (dumped / "check.awk").read_bytes() == initramfs.CHECK.read_bytes()
