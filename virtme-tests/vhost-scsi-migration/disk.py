"""The disk both L2 guests see: one LIO fileio backstore behind two vhost WWPNs.

A vhost-scsi TPG serves one vhost device at a time, so the source QEMU and the destination
QEMU each get a WWPN of their own (TPG 1, LUN 0), both over the same backstore file. Reads
and writes configfs through the vhost-scsi suite's lio.py (no subprocess). Writes the backing
file (block i of generation g: the line "kpipe block <i> gen <g>" repeated over its 4 KiB) and
the configfs tree; remove() takes both down, on every path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "vhost-scsi"))
import lio  # noqa: E402  (the vhost-scsi suite's configfs helper)

BLOCK = 4096
BLOCKS = 64  # 256 KiB: every block stale on the unfixed base; each block costs check time
WWPNS = ("naa.5001405000000a01", "naa.5001405000000a02")
NEXUS = ("naa.5001405000000b01", "naa.5001405000000b02")
TPGT = 1  # the TPG tag: the target number the L2 sees the disk at
HBA = "fileio_14"
BACKSTORE = "migdisk"


def block_data(index: int, generation: int) -> bytes:
    line = f"kpipe block {index:5d} gen {generation:3d}\n".encode()  # 31 bytes
    line = line.rjust(32, b"#")
    return line * (BLOCK // len(line))


class _SharedLun(lio.LioTarget):
    """A second WWPN whose LUN links the first target's backstore (and owns no HBA)."""

    def __init__(self, owner: lio.LioTarget, wwpn: str, initiator: str) -> None:
        super().__init__(wwpn, initiator, tpgt=TPGT, hba=f"{HBA}_unused")
        self.owner = owner

    def backstore_dir(self, name: str) -> str:
        return self.owner.backstore_dir(name)


class MigrationDisk:
    def __init__(self, workdir: Path, blocks: int = BLOCKS) -> None:
        self.path = workdir / "migdisk.img"
        self.blocks = blocks
        self.source = lio.LioTarget(WWPNS[0], NEXUS[0], tpgt=TPGT, hba=HBA)
        self.destination = _SharedLun(self.source, WWPNS[1], NEXUS[1])

    def write_generation(self, generation: int) -> None:
        """Every block of the backing file at `generation`, on disk before it returns."""
        with open(self.path, "r+b" if self.path.exists() else "wb") as f:
            for i in range(self.blocks):
                f.write(block_data(i, generation))
            f.flush()
            os.fsync(f.fileno())

    def setup(self) -> None:
        self.write_generation(1)
        size = self.blocks * BLOCK
        self.source.setup([(BACKSTORE, str(self.path), size)], [(0, BACKSTORE)])
        lio.ensure_configfs()
        with lio.lockdep_unchecked():
            self.destination.remove(delete_files=False)
            self.destination.create_tpg()
            self.destination.add_lun(0, BACKSTORE)
            self.destination.set_nexus()

    def remove(self) -> list[str]:
        """Take both targets down (the second first: its LUN links the first's backstore);
        what could not be removed."""
        self.destination.remove(delete_files=False)
        self.source.remove(delete_files=True)
        return self.destination.errors + self.source.errors

    def leftovers(self) -> list[str]:
        """configfs entries of this disk still there."""
        found = [d for d in (f"{lio.TARGET}/vhost/{w}" for w in WWPNS) if os.path.exists(d)]
        hba = f"{lio.TARGET}/core/{HBA}"
        return found + ([hba] if os.path.exists(hba) else [])
