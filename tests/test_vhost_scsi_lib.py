"""Host-side unit tests for the pure-Python parts of virtme-tests/vhost-scsi.

No /dev/vhost-scsi, no root: struct layouts, descriptor chains built in a
bytearray, dirty-log bit math, the per-LBA pattern and the KTAP writer.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parent.parent / "virtme-tests" / "vhost-scsi"
sys.path.insert(0, str(SUITE))

import dirtylog  # noqa: E402
import guestmem  # noqa: E402
import ktap  # noqa: E402
import scsi  # noqa: E402
import scsicmd  # noqa: E402
import vhost  # noqa: E402
import virtq  # noqa: E402

PAGE = 4096


# --- ioctl argument layouts ------------------------------------------------

def test_ioctl_sizes_match_their_numbers() -> None:
    # _IOW size field (bits 16..29) must equal the packed argument size
    def size(req: int) -> int:
        return (req >> 16) & 0x3FFF

    assert size(vhost.VHOST_SET_VRING_ADDR) == len(vhost.pack_vring_addr(0, 1, 2, 3)) == 40
    assert size(vhost.VHOST_SCSI_SET_ENDPOINT) == len(vhost.pack_scsi_target("naa.1")) == 232
    assert size(vhost.VHOST_SET_VRING_NUM) == len(vhost.pack_vring_state(2, 128)) == 8
    assert size(vhost.VHOST_SET_VRING_KICK) == len(vhost.pack_vring_file(2, 5)) == 8
    assert size(vhost.VHOST_GET_VRING_BASE) == 8


def test_vring_addr_order_and_log_flag() -> None:
    raw = vhost.pack_vring_addr(2, desc=0x1000, used=0x3000, avail=0x2000,
                                log_guest_addr=0x7000, log=True)
    assert struct.unpack("<IIQQQQ", raw) == (2, 1, 0x1000, 0x3000, 0x2000, 0x7000)
    assert struct.unpack("<I", vhost.pack_vring_addr(0, 0, 0, 0)[4:8])[0] == 0


def test_scsi_target_and_mem_table() -> None:
    raw = vhost.pack_scsi_target("naa.5001405000000001", 1)
    abi, name, tpgt, reserved = struct.unpack("<i224sHH", raw)
    assert (abi, tpgt, reserved) == (1, 1, 0)
    assert name.rstrip(b"\0") == b"naa.5001405000000001"
    table = vhost.pack_mem_table([(0, 16 << 20, 0x7F0000000000)])
    assert len(table) == 8 + 32
    assert struct.unpack("<IIQQQQ", table) == (1, 0, 0, 16 << 20, 0x7F0000000000, 0)


# --- virtio-scsi layouts ---------------------------------------------------

def test_virtio_scsi_sizes() -> None:
    assert scsi.CMD_REQ.size == 51
    assert scsi.CMD_RESP.size == 108
    assert scsi.TMF_REQ.size == 24
    assert scsi.AN_REQ.size == 16
    assert scsi.AN_RESP.size == 5
    assert scsi.EVENT.size == 16


def test_lun_and_cdbs() -> None:
    assert scsi.lun_bytes(1, 0) == bytes([1, 1, 0x40, 0, 0, 0, 0, 0])
    assert scsi.lun_bytes(9, 0x123) == bytes([1, 9, 0x41, 0x23, 0, 0, 0, 0])
    assert scsi.cdb_read10(0x01020304, 8) == bytes.fromhex("28000102030400000800")
    assert scsi.cdb_write10(5, 1)[0] == 0x2A
    assert scsi.cdb_inquiry(96) == bytes.fromhex("120000006000")
    req = scsi.cmd_req(scsi.cdb_read10(7, 1), tag=0x55)
    assert req[:8] == scsi.lun_bytes() and struct.unpack("<Q", req[8:16])[0] == 0x55
    assert req[19] == 0x28


def test_cmd_resp_parse() -> None:
    raw = struct.pack("<IIHBB", 18, 4, 0, 2, 0) + bytes([0x70, 0, 6]) + bytes(93)
    resp = scsi.CmdResp.parse(raw)
    assert resp.resid == 4 and resp.status == 2 and resp.unit_attention()
    assert not resp.ok()
    bad = scsi.CmdResp.parse(bytes(11) + b"\x03" + bytes(96))
    assert bad.response == scsi.S_BAD_TARGET


def test_block_pattern_unique_and_sized() -> None:
    blocks = [scsi.block_pattern(i) for i in range(64)]
    assert all(len(b) == 512 for b in blocks)
    assert len(set(blocks)) == 64
    assert scsi.pattern(10, 3) == b"".join(blocks[10:13])
    assert len(scsi.write_pattern(0, 2)) == 1024
    assert scsi.write_pattern(0, 1) != scsi.block_pattern(0)


# --- split virtqueue ---------------------------------------------------------

def test_direct_chain_in_memory() -> None:
    mem = guestmem.ByteMemory(64 * PAGE)
    q = virtq.SplitQueue.allocate(mem, 8)
    assert len({q.desc // PAGE, q.avail // PAGE, q.used // PAGE}) == 3
    head = q.add([(0x10000, 51)], [(0x11000, 108), (0x12000, 512)])
    q.publish(head)
    descs = [virtq.unpack_desc(mem.read(q.desc + i * 16, 16)) for i in range(3)]
    assert descs[0] == (0x10000, 51, virtq.VRING_DESC_F_NEXT, 1)
    assert descs[1] == (0x11000, 108, virtq.VRING_DESC_F_NEXT | virtq.VRING_DESC_F_WRITE, 2)
    assert descs[2] == (0x12000, 512, virtq.VRING_DESC_F_WRITE, 0)
    flags, idx, ring0 = struct.unpack("<HHH", mem.read(q.avail, 6))
    assert (flags, idx, ring0) == (0, 1, head)
    assert q.pending() == 1 and len(q.free) == 5
    # the device answers: used elem then used idx
    mem.write(q.used + 4, struct.pack("<II", head, 0))
    mem.write(q.used + 2, struct.pack("<H", 1))
    assert q.collect() == [(head, 0)]
    assert q.pending() == 0 and len(q.free) == 8


def test_indirect_chain_in_memory() -> None:
    mem = guestmem.ByteMemory(64 * PAGE)
    q = virtq.SplitQueue.allocate(mem, 4)
    table = mem.alloc_pages(1)
    head = q.add([(0x20000, 51)], [(0x21000, 4096)] * 3, indirect=table)
    assert virtq.unpack_desc(mem.read(q.desc + head * 16, 16)) == (
        table, 4 * 16, virtq.VRING_DESC_F_INDIRECT, 0)
    entries = [virtq.unpack_desc(mem.read(table + i * 16, 16)) for i in range(4)]
    assert [e[3] for e in entries[:3]] == [1, 2, 3]
    assert entries[3][2] == virtq.VRING_DESC_F_WRITE
    assert len(q.free) == 3


def test_rewrite_indirect_reuses_a_head_in_flight() -> None:
    mem = guestmem.ByteMemory(64 * PAGE)
    q = virtq.SplitQueue.allocate(mem, 4)
    head = q.add([(0x20000, 51)], [(0x21000, 4096)], indirect=mem.alloc_pages(1))
    q.publish(head)
    table = mem.alloc_pages(1)
    q.rewrite_indirect(head, [(0x22000, 51)], [(0x23000, 108)], table)
    q.publish(head)
    assert virtq.unpack_desc(mem.read(q.desc + head * 16, 16)) == (
        table, 2 * 16, virtq.VRING_DESC_F_INDIRECT, 0)
    assert virtq.unpack_desc(mem.read(table + 16, 16)) == (
        0x23000, 108, virtq.VRING_DESC_F_WRITE, 0)
    ring = [struct.unpack("<H", mem.read(q.avail + 4 + 2 * i, 2))[0] for i in range(2)]
    assert ring == [head, head] and q.avail_idx == 2 and q.chains == {head: [head]}


def test_queue_full_and_size_checks() -> None:
    mem = guestmem.ByteMemory(64 * PAGE)
    with pytest.raises(ValueError):
        virtq.SplitQueue.allocate(mem, 6)
    q = virtq.SplitQueue.allocate(mem, 2)
    with pytest.raises(RuntimeError):
        q.add([(0, 1)], [(0, 1), (0, 1)])


def test_gather_across_buffers() -> None:
    mem = guestmem.ByteMemory(4 * PAGE)
    mem.write(0, b"abcd")
    mem.write(100, b"efgh")
    bufs = [(0, 4), (100, 4)]
    assert virtq.gather(mem, bufs, 0, 8) == b"abcdefgh"
    assert virtq.gather(mem, bufs, 2, 4) == b"cdef"
    assert virtq.gather(mem, bufs, 5, 3) == b"fgh"


def test_memory_tracks_harness_writes() -> None:
    mem = guestmem.ByteMemory(8 * PAGE)
    mem.write(PAGE - 2, b"xxxx")
    mem.fill(5 * PAGE, 10, 0xEE)
    assert mem.take_written() == {0, 1, 5}
    assert mem.take_written() == set()
    with pytest.raises(ValueError):
        mem.write(8 * PAGE - 1, b"ab")
    with pytest.raises(MemoryError):
        mem.alloc_pages(9)


# --- requests ---------------------------------------------------------------

def test_read10_request_layout() -> None:
    mem = guestmem.ByteMemory(64 * PAGE)
    wr = [(10 * PAGE, 108), (11 * PAGE, 4096)]
    r = scsicmd.read10(mem, "r", 1, lba=3, blocks=8, writable=wr, indirect=True)
    assert r.write_pages == {10, 11}
    assert r.indirect is not None and r.expect == scsi.pattern(3, 8)
    assert mem.read(10 * PAGE, 4) == b"\xee" * 4
    with pytest.raises(ValueError):
        scsicmd.read10(mem, "short", 2, lba=0, blocks=8, writable=[(0, 108)])
    # simulate the device answering: response OK + the right data
    mem.write(10 * PAGE, bytes(108))
    mem.write(11 * PAGE, scsi.pattern(3, 8))
    scsicmd.check_cmd(mem, r)
    assert r.problems == []
    mem.write(11 * PAGE + 600, b"\0")
    scsicmd.check_cmd(mem, r)
    assert "LBA offset 1" in r.problems[0]


# --- dirty log ----------------------------------------------------------------

def test_log_bit_math() -> None:
    assert dirtylog.log_size(16 << 20) == 512
    assert dirtylog.log_size(4096) == 8
    assert dirtylog.log_size(65 * 4096) == 16
    log = bytearray(16)
    dirtylog.set_pages(log, [0, 9, 63, 64, 127])
    assert log[0] == 1 and log[1] == 2 and log[7] == 0x80 and log[8] == 1
    # u64 word view agrees (x86: bit p & 63 of word p >> 6)
    words = struct.unpack("<2Q", bytes(log))
    assert words[0] == (1 | 1 << 9 | 1 << 63) and words[1] == (1 | 1 << 63)
    assert dirtylog.pages_in(bytes(log)) == {0, 9, 63, 64, 127}


def test_pages_of_ranges_and_format() -> None:
    assert dirtylog.pages_of([(0x1000, 1), (0x2FFF, 2), (0x5000, 0)]) == {1, 2, 3}
    assert dirtylog.pages_of([(0x1000 - 108, 108 + 4096)]) == {0, 1}
    assert dirtylog.fmt_pages({6, 5}) == "0x5000 0x6000"
    assert dirtylog.fmt_pages(range(30), limit=2).endswith("(30 pages)")


# --- KTAP -------------------------------------------------------------------

def test_ktap_output() -> None:
    buf = io.StringIO()
    k = ktap.KtapWriter(buf)
    k.header(3)
    k.diag("GPAs expected and not logged: 0x5000 0x6000")
    k.ok("io-bitmap")
    k.not_ok("migration", "11 pages\ndiffer")
    k.skip("ctrl-log", "no /dev/vhost-scsi")
    assert buf.getvalue().splitlines() == [
        "KTAP version 1",
        "1..3",
        "# GPAs expected and not logged: 0x5000 0x6000",
        "ok 1 io-bitmap",
        "not ok 2 migration # 11 pages differ",
        "ok 3 ctrl-log # SKIP no /dev/vhost-scsi",
    ]


def test_program_rejects_unknown_case() -> None:
    prog = SUITE / "vhost_scsi_tests.py"
    res = subprocess.run([sys.executable, str(prog), "no-such-case"],
                         capture_output=True, text=True, timeout=10)
    assert res.returncode == 2 and "io-bitmap" in res.stderr


def test_suite_toml_contract() -> None:
    import tomllib

    meta = tomllib.loads((SUITE / "suite.toml").read_text())
    assert meta["name"] == "vhost-scsi"
    assert set(meta["requires"]) == {"CONFIG_VHOST_SCSI", "CONFIG_TARGET_CORE",
                                     "CONFIG_TCM_FILEIO", "CONFIG_CONFIGFS_FS",
                                     "CONFIG_FUSE_FS"}
    prog = meta["program"][0]
    assert prog["path"] == "vhost_scsi_tests.py" and prog["timeout"] == 300
    path = SUITE / prog["path"]
    assert path.read_text().startswith("#!/usr/bin/env python3")
    assert path.stat().st_mode & 0o111


def test_lio_setup_writes_the_configfs_steps(tmp_path, monkeypatch) -> None:
    import lio

    monkeypatch.setattr(lio, "TARGET", str(tmp_path / "target"))
    prove = tmp_path / "prove_locking"
    prove.write_text("1")
    monkeypatch.setattr(lio, "PROVE_LOCKING", str(prove))
    (tmp_path / "target").mkdir()
    disk = tmp_path / "disk0.img"
    lio.make_backing_file(str(disk), 4, scsi.pattern)
    assert disk.read_bytes() == scsi.pattern(0, 4)
    t = lio.LioTarget("naa.5001405000000001", hba="fileio_7")
    t.setup([("disk0", str(disk), 2048)], [(0, "disk0")])
    bs = tmp_path / "target/core/fileio_7/disk0"
    assert (bs / "control").read_text() == f"fd_dev_name={disk},fd_dev_size=2048"
    assert (bs / "enable").read_text() == "1"
    tpg = tmp_path / "target/vhost/naa.5001405000000001/tpgt_1"
    assert os.readlink(tpg / "lun/lun_0/port0") == str(bs)
    assert (tpg / "nexus").read_text() == "naa.5001405000000002"
    assert prove.read_text() == "1"         # lockdep checks again once set up
    with lio.lockdep_unchecked():
        with lio.lockdep_unchecked():
            assert prove.read_text() == "0"
        assert prove.read_text() == "0"     # the outer use still holds it off
    assert prove.read_text() == "1"
    t.remove()
    assert not (tpg / "lun/lun_0").exists() and not disk.exists()
    assert (tpg / "nexus").read_text() == "NULL" and prove.read_text() == "1"


def test_case_failure_names_the_gpas() -> None:
    import vhost_scsi_tests as prog

    case = prog.Case()
    case.compare_log("io", expected={5, 6, 7}, logged={7, 9})
    assert "io: GPAs expected and not logged: 0x5000 0x6000" in case.diags
    assert "io: GPAs logged and not expected: 0x9000" in case.diags
    assert case.problems == ["io: 2 of 3 expected pages not logged (0x5000 0x6000), "
                             "1 pages logged and not expected (0x9000)"]
    ok = prog.Case()
    ok.compare_log("io", {1}, {1})
    assert ok.problems == [] and ok.diags == ["io: log exact (1 pages)"]


def test_run_case_prints_diagnostics_before_the_result() -> None:
    import vhost_scsi_tests as prog

    def failing(_suite, case) -> None:
        case.diag("GPAs expected and not logged: 0x5000")
        case.fail("first problem")
        case.fail("second problem")

    buf = io.StringIO()
    out = ktap.KtapWriter(buf)
    prog.CASE_FUNCS["fake"] = failing
    try:
        assert prog.run_case(None, "fake", out) is False
    finally:
        del prog.CASE_FUNCS["fake"]
    lines = buf.getvalue().splitlines()
    assert lines[0] == "# GPAs expected and not logged: 0x5000"
    assert lines[-2] == "# second problem"
    assert lines[-1] == "not ok 1 fake # first problem (+1 more)"


# --- the FUSE backing file and the in-flight phase ---------------------------

def test_fuse_struct_sizes_are_the_kernels() -> None:
    import fusedisk as fd

    # include/uapi/linux/fuse.h: in/out headers, fuse_init_out, fuse_attr, fuse_entry_out,
    # fuse_attr_out, fuse_open_out, fuse_kstatfs
    assert (fd.IN_HEADER.size, fd.OUT_HEADER.size, fd.INIT_OUT.size) == (40, 16, 64)
    assert fd.ATTR.size == 88 and fd.ENTRY_OUT.size + fd.ATTR.size == 128
    assert fd.ATTR_OUT.size + fd.ATTR.size == 104
    assert (fd.OPEN_OUT.size, fd.STATFS_OUT.size) == (16, 80)


def test_fuse_file_serves_the_lba_pattern_at_any_offset() -> None:
    import fusedisk

    disk = fusedisk.FuseDisk("/nonexistent", 64)
    assert disk._data(512 * 5, 4096) == scsi.pattern(5, 8)
    assert disk._data(512 * 5 + 100, 50) == scsi.pattern(5, 1)[100:150]
    assert disk._data(512 * 63, 4096) == scsi.pattern(63, 1)   # clipped at the end
    assert disk._data(512 * 64, 512) == b""


def test_in_ioctl_sees_a_thread_blocked_in_a_syscall() -> None:
    import threading
    import time

    import inflight

    r, w = os.pipe()
    seen: list[bool] = []
    tid = threading.get_native_id()

    def probe() -> None:
        time.sleep(0.2)
        # blocked in read(r): the syscall file shows 0 (read), not 16 (ioctl)
        seen.append(inflight.in_ioctl(tid, r, 0))
        fields = open(f"/proc/self/task/{tid}/syscall").read().split()
        seen.append(int(fields[0]) == 0 and int(fields[1], 16) == r)
        os.write(w, b"x")

    t = threading.Thread(target=probe)
    t.start()
    os.read(r, 1)
    t.join()
    os.close(r)
    os.close(w)
    assert seen == [False, True]
    assert inflight.in_ioctl(tid, r, 0) is False   # running, not in a syscall
