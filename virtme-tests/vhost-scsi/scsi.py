"""virtio-scsi request/response layouts and the SCSI CDBs the suite sends.

All virtio-scsi structures are little-endian and packed (VIRTIO_F_VERSION_1);
CDB fields are big-endian as SCSI wants.
"""

from __future__ import annotations

import struct

CMD_REQ = struct.Struct("<8sQBBB32s")          # 51 B virtio_scsi_cmd_req
CMD_RESP = struct.Struct("<IIHBB96s")          # 108 B virtio_scsi_cmd_resp
TMF_REQ = struct.Struct("<II8sQ")              # 24 B virtio_scsi_ctrl_tmf_req
TMF_RESP_SIZE = 1
AN_REQ = struct.Struct("<I8sI")                # 16 B virtio_scsi_ctrl_an_req
AN_RESP = struct.Struct("<IB")                 # 5 B virtio_scsi_ctrl_an_resp
EVENT = struct.Struct("<I8sI")                 # 16 B virtio_scsi_event

# virtio-scsi response codes
S_OK = 0
S_BAD_TARGET = 3
S_FUNCTION_SUCCEEDED = 10
S_FUNCTION_REJECTED = 11
RESPONSE_NAMES = {0: "OK", 1: "OVERRUN", 2: "ABORTED", 3: "BAD_TARGET", 4: "RESET",
                  5: "BUSY", 6: "TRANSPORT_FAILURE", 7: "TARGET_FAILURE",
                  8: "NEXUS_FAILURE", 9: "FAILURE", 10: "FUNCTION_SUCCEEDED",
                  11: "FUNCTION_REJECTED", 12: "INCORRECT_LUN"}

# SCSI status
GOOD = 0
CHECK_CONDITION = 2
TASK_SET_FULL = 0x28

# control queue
T_TMF = 0
T_AN_QUERY = 1
T_AN_SUBSCRIBE = 2
TMF_ABORT_TASK = 0
TMF_LOGICAL_UNIT_RESET = 5

# events
T_NO_EVENT = 0
T_TRANSPORT_RESET = 1
T_EVENTS_MISSED = 0x80000000
EVT_RESET_RESCAN = 1
EVT_RESET_REMOVED = 2

BLOCK = 512


def lun_bytes(tpgt: int = 1, lun: int = 0) -> bytes:
    """The 8-byte virtio-scsi LUN: 1, target (TPG tag), flat LUN, zeros."""
    return bytes([1, tpgt & 0xFF, 0x40 | ((lun >> 8) & 0x3F), lun & 0xFF, 0, 0, 0, 0])


def cdb_test_unit_ready() -> bytes:
    return bytes(6)


def cdb_inquiry(alloc_len: int = 96) -> bytes:
    return struct.pack(">BBBHB", 0x12, 0, 0, alloc_len, 0)


def cdb_read10(lba: int, blocks: int) -> bytes:
    return struct.pack(">BBIBHB", 0x28, 0, lba, 0, blocks, 0)


def cdb_write10(lba: int, blocks: int) -> bytes:
    return struct.pack(">BBIBHB", 0x2A, 0, lba, 0, blocks, 0)


def cmd_req(cdb: bytes, tag: int, tpgt: int = 1, lun: int = 0) -> bytes:
    if len(cdb) > 32:
        raise ValueError("CDB longer than 32 bytes")
    return CMD_REQ.pack(lun_bytes(tpgt, lun), tag, 0, 0, 0, cdb.ljust(32, b"\0"))


class CmdResp:
    """A parsed virtio_scsi_cmd_resp."""

    def __init__(self, sense_len: int, resid: int, status_qualifier: int, status: int,
                 response: int, sense: bytes) -> None:
        self.sense_len, self.resid = sense_len, resid
        self.status_qualifier, self.status = status_qualifier, status
        self.response, self.sense = response, sense

    @classmethod
    def parse(cls, raw: bytes) -> CmdResp:
        return cls(*CMD_RESP.unpack(raw[:CMD_RESP.size]))

    def ok(self) -> bool:
        return self.response == S_OK and self.status == GOOD

    def describe(self) -> str:
        text = (f"response={RESPONSE_NAMES.get(self.response, self.response)} "
                f"status={self.status:#x} resid={self.resid}")
        if self.sense_len:
            key = self.sense[2] & 0xF if len(self.sense) > 2 else -1
            asc = self.sense[12] if len(self.sense) > 13 else -1
            ascq = self.sense[13] if len(self.sense) > 13 else -1
            text += f" sense key={key:#x} asc={asc:#x} ascq={ascq:#x}"
        return text

    def unit_attention(self) -> bool:
        return (self.status == CHECK_CONDITION and self.sense_len > 2
                and self.sense[2] & 0xF == 6)


def tmf_req(subtype: int, tag: int, tpgt: int = 1, lun: int = 0) -> bytes:
    return TMF_REQ.pack(T_TMF, subtype, lun_bytes(tpgt, lun), tag)


def an_req(kind: int = T_AN_QUERY, events: int = 0, tpgt: int = 1, lun: int = 0) -> bytes:
    return AN_REQ.pack(kind, lun_bytes(tpgt, lun), events)


def parse_event(raw: bytes) -> tuple[int, bytes, int]:
    """``(event, lun, reason)`` of a 16-byte virtio_scsi_event."""
    return EVENT.unpack(raw[:EVENT.size])


def block_pattern(lba: int) -> bytes:
    """The 512 bytes the backing file holds at ``lba`` (unique per LBA)."""
    head = struct.pack("<8sQ", b"KPIPELBA", lba)
    body = struct.pack("<Q", (lba * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF) * 62
    return head + body[:BLOCK - len(head)]


def pattern(lba: int, blocks: int) -> bytes:
    return b"".join(block_pattern(lba + i) for i in range(blocks))


def write_pattern(lba: int, blocks: int, seed: int = 0xA5) -> bytes:
    """Data the suite WRITEs: differs from the backing file pattern."""
    return b"".join(struct.pack("<8sQ", b"KPIPEWR!", lba + i) + bytes([seed ^ (i & 0xFF)]) * 496
                    for i in range(blocks))
