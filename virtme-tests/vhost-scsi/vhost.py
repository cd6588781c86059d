"""Thin wrapper over the /dev/vhost-scsi ioctls (x86-64 values and layouts).

Only the ioctls a VMM needs to drive vhost-scsi with a dirty log; the struct
packers are plain functions so the host unit tests can check their layouts.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

VHOST_GET_FEATURES = 0x8008AF00
VHOST_SET_FEATURES = 0x4008AF00
VHOST_SET_OWNER = 0x0000AF01
VHOST_SET_MEM_TABLE = 0x4008AF03
VHOST_SET_LOG_BASE = 0x4008AF04
VHOST_SET_LOG_FD = 0x4004AF07
VHOST_SET_VRING_NUM = 0x4008AF10
VHOST_SET_VRING_ADDR = 0x4028AF11
VHOST_SET_VRING_BASE = 0x4008AF12
VHOST_GET_VRING_BASE = 0xC008AF12
VHOST_SET_VRING_KICK = 0x4008AF20
VHOST_SET_VRING_CALL = 0x4008AF21
VHOST_SET_VRING_ERR = 0x4008AF22
VHOST_SCSI_SET_ENDPOINT = 0x40E8AF40
VHOST_SCSI_CLEAR_ENDPOINT = 0x40E8AF41
VHOST_SCSI_GET_ABI_VERSION = 0x4004AF42
VHOST_SCSI_SET_EVENTS_MISSED = 0x4004AF43

VIRTIO_SCSI_F_HOTPLUG = 1
VIRTIO_SCSI_F_T10_PI = 3
VHOST_F_LOG_ALL = 26
VIRTIO_F_ANY_LAYOUT = 27
VIRTIO_RING_F_INDIRECT_DESC = 28
VIRTIO_RING_F_EVENT_IDX = 29
VIRTIO_F_VERSION_1 = 32

VHOST_VRING_F_LOG = 0

VQ_CTRL, VQ_EVENT, VQ_IO = 0, 1, 2

WWPN_LEN = 224


def bit(n: int) -> int:
    return 1 << n


def pack_mem_table(regions: list[tuple[int, int, int]]) -> bytes:
    """``struct vhost_memory`` with ``(gpa, size, hva)`` regions."""
    out = struct.pack("<II", len(regions), 0)
    for gpa, size, hva in regions:
        out += struct.pack("<QQQQ", gpa, size, hva, 0)
    return out


def pack_vring_addr(index: int, desc: int, used: int, avail: int,
                    log_guest_addr: int = 0, log: bool = False) -> bytes:
    """``struct vhost_vring_addr`` (40 B); note the order desc, used, avail."""
    flags = bit(VHOST_VRING_F_LOG) if log else 0
    return struct.pack("<IIQQQQ", index, flags, desc, used, avail, log_guest_addr)


def pack_vring_state(index: int, num: int) -> bytes:
    return struct.pack("<II", index, num)


def pack_vring_file(index: int, fd: int) -> bytes:
    return struct.pack("<Ii", index, fd)


def pack_scsi_target(wwpn: str, tpgt: int = 0) -> bytes:
    """``struct vhost_scsi_target`` (232 B): abi 1, wwpn[224], tpgt, reserved 0."""
    name = wwpn.encode()
    if len(name) >= WWPN_LEN:
        raise ValueError("WWPN too long")
    return struct.pack(f"<i{WWPN_LEN}sHH", 1, name, tpgt, 0)


class VhostScsi:
    """An open /dev/vhost-scsi file descriptor."""

    def __init__(self, path: str = "/dev/vhost-scsi") -> None:
        self.fd = os.open(path, os.O_RDWR)
        self.endpoint: str | None = None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _ioctl(self, req: int, arg: bytes | int = 0) -> bytes | int:
        return fcntl.ioctl(self.fd, req, arg)

    def _ioctl_rw(self, req: int, buf: bytearray) -> bytearray:
        fcntl.ioctl(self.fd, req, buf, True)
        return buf

    def set_owner(self) -> None:
        self._ioctl(VHOST_SET_OWNER, 0)

    def get_abi_version(self) -> int:
        return struct.unpack("<i", self._ioctl_rw(VHOST_SCSI_GET_ABI_VERSION, bytearray(4)))[0]

    def get_features(self) -> int:
        return struct.unpack("<Q", self._ioctl_rw(VHOST_GET_FEATURES, bytearray(8)))[0]

    def set_features(self, features: int) -> None:
        self._ioctl(VHOST_SET_FEATURES, struct.pack("<Q", features))

    def set_mem_table(self, regions: list[tuple[int, int, int]]) -> None:
        self._ioctl(VHOST_SET_MEM_TABLE, pack_mem_table(regions))

    def set_log_base(self, hva: int) -> None:
        self._ioctl(VHOST_SET_LOG_BASE, struct.pack("<Q", hva))

    def set_log_fd(self, fd: int) -> None:
        self._ioctl(VHOST_SET_LOG_FD, struct.pack("<i", fd))

    def set_vring_num(self, index: int, num: int) -> None:
        self._ioctl(VHOST_SET_VRING_NUM, pack_vring_state(index, num))

    def set_vring_base(self, index: int, base: int) -> None:
        self._ioctl(VHOST_SET_VRING_BASE, pack_vring_state(index, base))

    def get_vring_base(self, index: int) -> int:
        buf = bytearray(pack_vring_state(index, 0))
        return struct.unpack("<II", self._ioctl_rw(VHOST_GET_VRING_BASE, buf))[1]

    def set_vring_addr(self, index: int, desc: int, used: int, avail: int,
                       log_guest_addr: int = 0, log: bool = False) -> None:
        self._ioctl(VHOST_SET_VRING_ADDR,
                    pack_vring_addr(index, desc, used, avail, log_guest_addr, log))

    def set_vring_kick(self, index: int, fd: int) -> None:
        self._ioctl(VHOST_SET_VRING_KICK, pack_vring_file(index, fd))

    def set_vring_call(self, index: int, fd: int) -> None:
        self._ioctl(VHOST_SET_VRING_CALL, pack_vring_file(index, fd))

    def set_vring_err(self, index: int, fd: int) -> None:
        self._ioctl(VHOST_SET_VRING_ERR, pack_vring_file(index, fd))

    def set_endpoint(self, wwpn: str, tpgt: int = 0) -> None:
        self._ioctl(VHOST_SCSI_SET_ENDPOINT, pack_scsi_target(wwpn, tpgt))
        self.endpoint = wwpn

    def clear_endpoint(self) -> None:
        if self.endpoint is None:
            return
        self._ioctl(VHOST_SCSI_CLEAR_ENDPOINT, pack_scsi_target(self.endpoint))
        self.endpoint = None

    def set_events_missed(self, missed: int) -> None:
        self._ioctl(VHOST_SCSI_SET_EVENTS_MISSED, struct.pack("<I", missed))


def errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))
