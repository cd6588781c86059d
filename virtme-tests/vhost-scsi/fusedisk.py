"""A one-file FUSE file system whose READs the suite can hold and release: the backing file
of an LIO fileio backstore whose completions a case controls.

Reads and writes /dev/fuse (the kernel's FUSE protocol, version 7) and mounts at a directory
under /dev/shm; serves one read-only file ``disk`` whose contents are the suite's per-LBA
pattern (scsi.pattern). The file is opened with FOPEN_DIRECT_IO, so every READ the target
core issues on it reaches this server: while held (:meth:`FuseDisk.hold`) the server answers
nothing, and the SCSI command stays in flight in the kernel until :meth:`FuseDisk.release`.

Written here, not with a FUSE library: the guest runs the host's Python with the stdlib only
(no libfuse binding is installed there), and a server of one file needs eight opcodes.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
import threading
import time

import scsi

IN_HEADER = struct.Struct("<IIQQIIIHH")        # fuse_in_header, 40 B
OUT_HEADER = struct.Struct("<IiQ")             # fuse_out_header, 16 B
INIT_IN = struct.Struct("<IIII")               # major, minor, max_readahead, flags
INIT_OUT = struct.Struct("<IIIIHHIIHHII24x")   # fuse_init_out, 64 B
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")      # fuse_attr, 88 B
ENTRY_OUT = struct.Struct("<QQQQII")           # fuse_entry_out without its attr
ATTR_OUT = struct.Struct("<QII")               # fuse_attr_out without its attr
OPEN_OUT = struct.Struct("<QIi")               # fh, open_flags, backing_id
READ_IN = struct.Struct("<QQII")               # fh, offset, size, read_flags (+ more)
STATFS_OUT = struct.Struct("<QQQQQIII28x")     # fuse_kstatfs, 80 B

LOOKUP, FORGET, GETATTR, OPEN, READ, WRITE, STATFS, RELEASE = 1, 2, 3, 14, 15, 16, 17, 18
FSYNC, FLUSH, INIT, INTERRUPT, DESTROY, BATCH_FORGET = 20, 25, 26, 36, 38, 42
NO_REPLY = {FORGET, BATCH_FORGET, INTERRUPT}
ROOT, FILE = 1, 2
FOPEN_DIRECT_IO = 1
BUFSIZE = 256 * 1024
NAME = b"disk"


class FuseDisk:
    """The server: a thread answering /dev/fuse, plus hold/release for READs."""

    def __init__(self, mountpoint: str, blocks: int) -> None:
        self.mountpoint = mountpoint
        self.path = f"{mountpoint}/{NAME.decode()}"
        self.size = blocks * scsi.BLOCK
        self.fd = -1
        self.lock = threading.Lock()
        self.holding = False
        self.held: list[tuple[int, int, int]] = []   # (unique, offset, size) of held READs
        self.reads = 0
        self.thread: threading.Thread | None = None

    # --- mount ----------------------------------------------------------
    def start(self) -> None:
        os.makedirs(self.mountpoint, exist_ok=True)
        self.fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        opts = f"fd={self.fd},rootmode=40000,user_id=0,group_id=0,allow_other"
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mount(b"kpipe-fusedisk", self.mountpoint.encode(), b"fuse", 0,
                      opts.encode()) != 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            self.fd = -1
            raise OSError(err, f"mount fuse on {self.mountpoint}: {os.strerror(err)}")
        self.thread = threading.Thread(target=self._serve, name="fusedisk", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Release every held READ, unmount, close /dev/fuse (safe to call twice)."""
        if self.fd < 0:
            return
        self.release()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.umount2(self.mountpoint.encode(), 2)  # MNT_DETACH
        fd, self.fd = self.fd, -1
        if self.thread is not None:
            self.thread.join(timeout=5)
        os.close(fd)
        try:
            os.rmdir(self.mountpoint)
        except OSError:
            pass

    # --- hold and release -----------------------------------------------
    def hold(self) -> None:
        with self.lock:
            self.holding = True

    def held_count(self) -> int:
        with self.lock:
            return len(self.held)

    def wait_held(self, count: int, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while self.held_count() < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.held_count()

    def release(self) -> int:
        """Answer every held READ and stop holding; returns how many were answered."""
        with self.lock:
            self.holding = False
            held, self.held = self.held, []
        for unique, offset, size in held:
            self._reply(unique, 0, self._data(offset, size))
        return len(held)

    # --- the protocol ---------------------------------------------------
    def _data(self, offset: int, size: int) -> bytes:
        size = max(0, min(size, self.size - offset))
        if not size:
            return b""
        first = offset // scsi.BLOCK
        last = (offset + size - 1) // scsi.BLOCK
        raw = scsi.pattern(first, last - first + 1)
        start = offset - first * scsi.BLOCK
        return raw[start:start + size]

    def _reply(self, unique: int, error: int, payload: bytes = b"") -> None:
        msg = OUT_HEADER.pack(OUT_HEADER.size + len(payload), -error, unique) + payload
        try:
            os.write(self.fd, msg)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENODEV, errno.EBADF):  # interrupted, gone
                raise

    def _attr(self, node: int) -> bytes:
        if node == ROOT:
            mode, size, nlink = stat.S_IFDIR | 0o755, 0, 2
        else:
            mode, size, nlink = stat.S_IFREG | 0o644, self.size, 1
        return ATTR.pack(node, size, -(-size // 512), 0, 0, 0, 0, 0, 0, mode, nlink, 0, 0, 0,
                         4096, 0)

    def _serve(self) -> None:
        while True:
            try:
                msg = os.read(self.fd, BUFSIZE)
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.ENOENT):
                    continue
                return  # ENODEV after unmount, EBADF after close
            if len(msg) < IN_HEADER.size:
                return
            _, opcode, unique, node, *_ = IN_HEADER.unpack_from(msg)
            self._handle(opcode, unique, node, msg[IN_HEADER.size:])

    def _handle(self, opcode: int, unique: int, node: int, body: bytes) -> None:
        if opcode in NO_REPLY:
            return
        if opcode == INIT:
            major, minor, readahead, _ = INIT_IN.unpack_from(body)
            self._reply(unique, 0, INIT_OUT.pack(7, min(minor, 31), readahead, 0, 16, 12,
                                                 BUFSIZE - 4096, 1, 0, 0, 0, 0))
        elif opcode == LOOKUP:
            if node == ROOT and body.rstrip(b"\0") == NAME:
                self._reply(unique, 0, ENTRY_OUT.pack(FILE, 1, 3600, 3600, 0, 0)
                            + self._attr(FILE))
            else:
                self._reply(unique, errno.ENOENT)
        elif opcode == GETATTR:
            self._reply(unique, 0, ATTR_OUT.pack(3600, 0, 0) + self._attr(node))
        elif opcode == OPEN:
            self._reply(unique, 0, OPEN_OUT.pack(1, FOPEN_DIRECT_IO, 0))
        elif opcode == READ:
            _, offset, size, _ = READ_IN.unpack_from(body)
            with self.lock:
                self.reads += 1
                if self.holding:
                    self.held.append((unique, offset, size))
                    return
            self._reply(unique, 0, self._data(offset, size))
        elif opcode == WRITE:
            self._reply(unique, errno.EROFS)
        elif opcode == STATFS:
            self._reply(unique, 0, STATFS_OUT.pack(self.size // 4096, 0, 0, 2, 0, 4096, 255,
                                                   4096))
        elif opcode in (FLUSH, RELEASE, FSYNC, DESTROY):
            self._reply(unique, 0)
        else:
            self._reply(unique, errno.ENOSYS)
