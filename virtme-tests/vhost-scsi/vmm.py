"""A tiny user-space VMM: guest memory, three virtqueues and /dev/vhost-scsi.

It follows the setup order that works (see shared/docs/vhost-scsi.md):
owner, features without LOG_ALL, memory table at GPA 0, every vring before
SET_ENDPOINT, then logging the way QEMU starts it (log base, LOG_ALL,
VHOST_VRING_F_LOG with the used ring's GPA).
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Sequence

import vhost as vh
from dirtylog import DirtyLog
from guestmem import GuestMemory
from virtq import Buf, SplitQueue

MEM_SIZE = 16 << 20
QUEUE_SIZES = {vh.VQ_CTRL: 64, vh.VQ_EVENT: 64, vh.VQ_IO: 128}
BASE_FEATURES = (vh.bit(vh.VIRTIO_F_VERSION_1) | vh.bit(vh.VIRTIO_RING_F_INDIRECT_DESC)
                 | vh.bit(vh.VIRTIO_F_ANY_LAYOUT))


class Timeout(RuntimeError):
    pass


class Vmm:
    """One vhost-scsi device with its own guest memory and dirty log."""

    def __init__(self, wwpn: str, hotplug: bool = False, mem_size: int = MEM_SIZE,
                 queue_sizes: dict[int, int] | None = None) -> None:
        self.mem = GuestMemory(mem_size)
        self.log = DirtyLog(mem_size)
        self.dev = vh.VhostScsi()
        self.fds: list[int] = []
        self.queues: dict[int, SplitQueue] = {}
        self.kick_fd: dict[int, int] = {}
        self.call_fd: dict[int, int] = {}
        self.err_fd: dict[int, int] = {}
        self.logging = False
        self.used_log = False
        self.log_fd = -1
        try:
            self._setup(wwpn, hotplug, queue_sizes or QUEUE_SIZES)
        except BaseException:
            self.close()
            raise

    def _eventfd(self) -> int:
        fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.fds.append(fd)
        return fd

    def _setup(self, wwpn: str, hotplug: bool, sizes: dict[int, int]) -> None:
        d = self.dev
        d.set_owner()
        self.abi = d.get_abi_version()
        self.offered = d.get_features()
        want = BASE_FEATURES | (vh.bit(vh.VIRTIO_SCSI_F_HOTPLUG) if hotplug else 0)
        self.features = want & self.offered
        if not self.features & vh.bit(vh.VIRTIO_F_VERSION_1):
            raise RuntimeError(f"device does not offer VERSION_1 ({self.offered:#x})")
        d.set_features(self.features)
        d.set_mem_table([(0, self.mem.size, self.mem.hva)])
        for index, num in sorted(sizes.items()):
            q = SplitQueue.allocate(self.mem, num)
            self.queues[index] = q
            self.kick_fd[index] = self._eventfd()
            self.call_fd[index] = self._eventfd()
            self.err_fd[index] = self._eventfd()
            d.set_vring_num(index, num)
            d.set_vring_base(index, 0)
            self._set_addr(index, log=False)
            d.set_vring_kick(index, self.kick_fd[index])
            d.set_vring_call(index, self.call_fd[index])
            d.set_vring_err(index, self.err_fd[index])
        self.mem.take_written()
        d.set_endpoint(wwpn)

    def _set_addr(self, index: int, log: bool) -> None:
        q, base = self.queues[index], self.mem.hva
        self.dev.set_vring_addr(index, base + q.desc, base + q.used, base + q.avail,
                                log_guest_addr=q.used, log=log)

    @property
    def has_hotplug(self) -> bool:
        return bool(self.features & vh.bit(vh.VIRTIO_SCSI_F_HOTPLUG))

    # --- logging ----------------------------------------------------------
    def start_logging(self, used_log: bool = True) -> None:
        """Zeroed log, SET_LOG_BASE, LOG_ALL, then VHOST_VRING_F_LOG per vq."""
        self.log.clear()
        self.dev.set_log_base(self.log.hva)
        self.dev.set_features(self.features | vh.bit(vh.VHOST_F_LOG_ALL))
        self.logging = True
        self.set_used_log(used_log)

    def set_used_log(self, on: bool) -> None:
        for index in self.queues:
            self._set_addr(index, log=on)
        self.used_log = on

    def stop_logging(self) -> None:
        self.set_used_log(False)
        self.dev.set_features(self.features)
        self.logging = False

    def set_log_eventfd(self) -> None:
        """VHOST_SET_LOG_FD with a fresh eventfd: the kernel signals it on log writes."""
        self.log_fd = self._eventfd()
        self.dev.set_log_fd(self.log_fd)

    def log_signals(self) -> int:
        """How often the log eventfd was signalled since the last call (0 without one)."""
        return self._drain(self.log_fd) if self.log_fd >= 0 else 0

    def used_log_pages(self, indexes: Sequence[int]) -> set[int]:
        """Used-ring pages the log should hold after activity on ``indexes``."""
        if not (self.logging and self.used_log):
            return set()
        out: set[int] = set()
        for i in indexes:
            out |= self.queues[i].used_pages
        return out

    # --- requests ---------------------------------------------------------
    def submit(self, index: int, readable: Sequence[Buf], writable: Sequence[Buf],
               indirect: int | None = None, kick: bool = True) -> int:
        q = self.queues[index]
        head = q.add(readable, writable, indirect)
        q.publish(head)
        if kick:
            self.kick(index)
        return head

    def kick(self, index: int) -> None:
        os.eventfd_write(self.kick_fd[index], 1)

    def wait(self, index: int, count: int | None = None,
             timeout: float = 30.0) -> list[tuple[int, int]]:
        """Wait until every published chain (or ``count`` more) is used, then barrier.

        VHOST_GET_VRING_BASE takes the queue's mutex, which the completion path
        holds while it fills the used ring (and logs, with the fix).
        """
        q = self.queues[index]
        want = q.pending() if count is None else count
        done: list[tuple[int, int]] = []
        deadline = time.monotonic() + timeout
        while True:
            done += q.collect()
            if len(done) >= want:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(f"vq {index}: {len(done)} of {want} requests completed "
                              f"after {timeout:.0f} s (err eventfd {self.errors(index)})")
            r, _, _ = select.select([self.call_fd[index]], [], [], min(left, 0.2))
            if r:
                self._drain(self.call_fd[index])
        self.dev.get_vring_base(index)
        return done

    def errors(self, index: int) -> int:
        """How often the vq signalled its error eventfd since the last call."""
        return self._drain(self.err_fd[index])

    @staticmethod
    def _drain(fd: int) -> int:
        try:
            return os.eventfd_read(fd)
        except BlockingIOError:
            return 0

    def quiesce(self) -> None:
        for index in self.queues:
            self.dev.get_vring_base(index)

    # --- teardown ---------------------------------------------------------
    def clear_endpoint(self) -> None:
        self.dev.clear_endpoint()

    def close(self) -> None:
        try:
            if self.dev.fd >= 0:
                self.dev.clear_endpoint()
        finally:
            self.dev.close()
            for fd in self.fds:
                os.close(fd)
            self.fds = []
            if self.mem is not None:
                self.mem.close()
                self.log.close()
                self.mem = None  # type: ignore[assignment]
