"""An LIO vhost target with fileio backstores, set up through configfs by hand.

rtslib-fb would drive the same tree, but the guest runs the host's read-only
root file system with the stdlib only (rtslib-fb is not installed there), and
the handful of mkdir/echo/ln steps below is all a vhost target needs.

Teardown is best effort and runs in reverse order; :meth:`LioTarget.remove`
is safe to call twice and also removes leftovers of an earlier, killed run.

Every configfs change here runs with lockdep's dependency checking off
(/proc/sys/kernel/prove_locking 0, back to 1 after): 6.12's target core takes tv_tpg_mutex,
frag_sem and configfs inode locks in orders that SET_ENDPOINT's configfs_depend_item() closes
into a cycle (link, unlink, rmdir of a LUN, the nexus write: each a report of its own, and
lockdep stops after the first), so with checking on here lockdep would be off for every case.
Off here, lockdep checks every vhost ioctl and the device's work; what it does not check is
the harness's own configfs writes (and whatever else the kernel does in those moments).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

CONFIGFS = "/sys/kernel/config"
PROVE_LOCKING = "/proc/sys/kernel/prove_locking"
TARGET = f"{CONFIGFS}/target"
CHUNK_BLOCKS = 2048


class LioError(RuntimeError):
    pass


_unchecked_depth = 0


@contextmanager
def lockdep_unchecked() -> Iterator[None]:
    """prove_locking 0 inside (nested uses count), 1 again after; nothing without lockdep."""
    global _unchecked_depth
    on = _unchecked_depth == 0 and os.path.exists(PROVE_LOCKING)
    if on:
        _write(PROVE_LOCKING, "0")
    _unchecked_depth += 1
    try:
        yield
    finally:
        _unchecked_depth -= 1
        if on:
            _write(PROVE_LOCKING, "1")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def mount(fstype: str, target: str) -> bool:
    """mount(2) through libc (no subprocess: every exec is slow over 9p under TCG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.mount(b"none", target.encode(), fstype.encode(), 0, None) == 0


def ensure_configfs() -> None:
    """Mount configfs if needed; fail if the target core is not there."""
    if not os.path.isdir(TARGET):
        if not os.path.ismount(CONFIGFS):
            mount("configfs", CONFIGFS)
    if not os.path.isdir(TARGET):
        raise LioError(f"{TARGET} missing (CONFIG_TARGET_CORE / CONFIG_CONFIGFS_FS?)")


def make_backing_file(path: str, blocks: int, block_data: Callable[[int, int], bytes]) -> None:
    """Create ``path`` holding ``block_data(lba, n)`` for every 512-byte block."""
    with open(path, "wb") as f:
        for lba in range(0, blocks, CHUNK_BLOCKS):
            f.write(block_data(lba, min(CHUNK_BLOCKS, blocks - lba)))


class LioTarget:
    """One vhost WWPN with TPG 1, a nexus, and fileio LUNs."""

    def __init__(self, wwpn: str = "naa.5001405000000001",
                 initiator: str = "naa.5001405000000002", tpgt: int = 1,
                 hba: str = "fileio_7") -> None:
        self.wwpn, self.initiator, self.tpgt, self.hba = wwpn, initiator, tpgt, hba
        self.tpg = f"{TARGET}/vhost/{wwpn}/tpgt_{tpgt}"
        self.files: dict[str, str] = {}  # backstore name -> backing file
        self.luns: dict[int, str] = {}   # LUN -> backstore name
        self.errors: list[str] = []

    # --- backstores -----------------------------------------------------
    def backstore_dir(self, name: str) -> str:
        return f"{TARGET}/core/{self.hba}/{name}"

    def add_backstore(self, name: str, path: str, size: int) -> None:
        d = self.backstore_dir(name)
        self.files[name] = path
        os.makedirs(d, exist_ok=True)
        _write(f"{d}/control", f"fd_dev_name={path},fd_dev_size={size}")
        _write(f"{d}/enable", "1")

    # --- fabric ---------------------------------------------------------
    def create_tpg(self) -> None:
        os.makedirs(f"{self.tpg}/lun", exist_ok=True)

    def set_nexus(self) -> None:
        _write(f"{self.tpg}/nexus", self.initiator)

    def add_lun(self, lun: int, backstore: str) -> None:
        """Create lun_N and link it (a hotplug event if an endpoint is set)."""
        d = f"{self.tpg}/lun/lun_{lun}"
        with lockdep_unchecked():
            os.makedirs(d, exist_ok=True)
            self.luns[lun] = backstore
            os.symlink(self.backstore_dir(backstore), f"{d}/port0")

    def remove_lun(self, lun: int) -> None:
        d = f"{self.tpg}/lun/lun_{lun}"
        with lockdep_unchecked():
            self._try(os.unlink, f"{d}/port0", missing_ok=True)
            self._try(os.rmdir, d, missing_ok=True)
        self.luns.pop(lun, None)

    def setup(self, backstores: list[tuple[str, str, int]], luns: list[tuple[int, str]]) -> None:
        """Backstores ``(name, file, size)``, LUNs ``(lun, backstore)``, then the nexus."""
        ensure_configfs()
        with lockdep_unchecked():
            self.remove(delete_files=False)
            self.errors = []
            for name, path, size in backstores:
                self.add_backstore(name, path, size)
            self.create_tpg()
            for lun, name in luns:
                self.add_lun(lun, name)
            self.set_nexus()

    # --- teardown -------------------------------------------------------
    def _try(self, fn: Callable[[str], object], path: str, missing_ok: bool = False) -> None:
        try:
            fn(path)
        except FileNotFoundError:
            if not missing_ok:
                self.errors.append(f"{path}: missing")
        except OSError as exc:
            self.errors.append(f"{path}: {exc.strerror}")

    def remove(self, delete_files: bool = True) -> None:
        """Tear everything down in reverse order; leftovers included."""
        with lockdep_unchecked():
            self._remove(delete_files)

    def _remove(self, delete_files: bool) -> None:
        if os.path.isdir(self.tpg):
            # LUNs first: vhost refuses to drop the nexus while ports are linked
            lun_root = f"{self.tpg}/lun"
            for entry in sorted(os.listdir(lun_root)) if os.path.isdir(lun_root) else []:
                d = f"{lun_root}/{entry}"
                for link in os.listdir(d):
                    if os.path.islink(f"{d}/{link}"):
                        self._try(os.unlink, f"{d}/{link}")
                self._try(os.rmdir, d)
            try:
                _write(f"{self.tpg}/nexus", "NULL")
            except OSError as exc:
                if exc.errno != errno.ENODEV:  # ENODEV: there was no nexus
                    self.errors.append(f"nexus: {exc.strerror}")
            self._try(os.rmdir, self.tpg)
        wwpn_dir = f"{TARGET}/vhost/{self.wwpn}"
        if os.path.isdir(wwpn_dir):
            self._try(os.rmdir, wwpn_dir)
        hba_dir = f"{TARGET}/core/{self.hba}"
        if os.path.isdir(hba_dir):
            for entry in os.listdir(hba_dir):
                if os.path.isdir(f"{hba_dir}/{entry}"):
                    self._try(os.rmdir, f"{hba_dir}/{entry}")
            self._try(os.rmdir, hba_dir)
        self.luns.clear()
        if delete_files:
            for path in self.files.values():
                self._try(os.unlink, path, missing_ok=True)
            self.files.clear()
