"""vhost-scsi cases of the control and event queues and response splitting: ctrl-log,
event-log, bad-target-split. Each takes the Suite and a Case and records problems in the Case."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scsi  # noqa: E402
import scsicmd as sc  # noqa: E402
import vhost as vh  # noqa: E402
from dirtylog import pages_of  # noqa: E402
from guestmem import PAGE  # noqa: E402
from harness import Case, Suite  # noqa: E402


def case_ctrl_log(s: Suite, case: Case) -> None:
    v = s.vmm()
    try:
        m = v.mem
        v.start_logging(used_log=True)
        specs = [  # name, request, response size, expected response, offset in page
            ("TMF logical unit reset", scsi.tmf_req(scsi.TMF_LOGICAL_UNIT_RESET, s.next_tag()),
             1, scsi.S_FUNCTION_SUCCEEDED, 100),
            ("AN query", scsi.an_req(scsi.T_AN_QUERY), scsi.AN_RESP.size, scsi.S_OK, 0),
            ("TMF bad target", scsi.tmf_req(scsi.TMF_LOGICAL_UNIT_RESET, s.next_tag(), tpgt=9),
             1, scsi.S_BAD_TARGET, 4000),
            ("TMF abort task (rejected)", scsi.tmf_req(scsi.TMF_ABORT_TASK, s.next_tag()),
             1, scsi.S_FUNCTION_REJECTED, 2048),
        ]
        reqs = []
        for name, req, size, want, off in specs:
            hdr = sc.header_page(m, req)
            page = m.alloc_pages(1)
            sc.poison(m, [(page + off, size)])
            reqs.append(sc.Request(name, vh.VQ_CTRL, [(hdr, len(req))], [(page + off, size)],
                                   resp_size=size, expect_response=want))
        v.log.clear()
        sc.run(v, reqs)
        case.extend(sc.problems(reqs))
        for r in reqs:
            raw = r.response_bytes(m)
            got = raw[-1]  # TMF: 1 byte response; AN: event_actual u32 then response
            if got != r.expect_response:
                case.fail(f"{r.name}: response {scsi.RESPONSE_NAMES.get(got, got)}, expected "
                          f"{scsi.RESPONSE_NAMES[r.expect_response]}")
        expected = set().union(*(r.write_pages for r in reqs)) | v.used_log_pages([vh.VQ_CTRL])
        case.compare_log("control queue", expected, v.log.take())
        # the LUN still reads after the reset (TEST UNIT READY clears the UNIT ATTENTION)
        s.ready(v)
        page = m.alloc_pages(2)
        after = sc.read10(m, "READ after LUN reset", s.next_tag(), 2000, 8, [(page, 108 + 4096)])
        sc.run(v, [after])
        case.extend(after.problems)
    finally:
        v.close()


def case_event_log(s: Suite, case: Case) -> None:
    v = s.vmm(hotplug=True)
    lun1 = False
    try:
        m = v.mem
        v.start_logging(used_log=True)
        heads: dict[int, tuple[int, int]] = {}
        for k in range(3):  # three 16-byte event buffers, each on its own page
            page = m.alloc_pages(1)
            buf = (page + 512 * (k + 1), scsi.EVENT.size)
            sc.poison(m, [buf])
            heads[v.submit(vh.VQ_EVENT, [], [buf], kick=False)] = buf
        v.quiesce()
        v.log.clear()

        def expect_event(label: str, want_event: int, want_reason: int | None) -> None:
            used = v.wait(vh.VQ_EVENT, count=1)
            buf = heads.get(used[0][0])
            if buf is None:
                case.fail(f"{label}: unknown head {used[0][0]} used")
                return
            event, lun, reason = scsi.parse_event(m.read(*buf))
            if event != want_event or (want_reason is not None and reason != want_reason):
                case.fail(f"{label}: event {event:#x} reason {reason}, expected "
                          f"{want_event:#x} reason {want_reason}")
            expected = pages_of([buf]) | v.used_log_pages([vh.VQ_EVENT])
            case.compare_log(label, expected, v.log.take())

        v.dev.set_events_missed(1)
        v.kick(vh.VQ_EVENT)
        expect_event("events-missed event", scsi.T_NO_EVENT | scsi.T_EVENTS_MISSED, None)
        if not v.has_hotplug:
            case.diag("VIRTIO_SCSI_F_HOTPLUG not offered: no hotplug events")
            return
        s.lio.add_lun(1, "disk1")
        lun1 = True
        expect_event("LUN 1 hotplug event", scsi.T_TRANSPORT_RESET, scsi.EVT_RESET_RESCAN)
        s.lio.remove_lun(1)
        lun1 = False
        expect_event("LUN 1 hot-unplug event", scsi.T_TRANSPORT_RESET, scsi.EVT_RESET_REMOVED)
    finally:
        v.close()
        if lun1:
            s.lio.remove_lun(1)


def case_bad_target_split(s: Suite, case: Case) -> None:
    v = s.vmm()
    try:
        m = v.mem
        page = m.alloc_pages(1)
        m.fill(page, PAGE, sc.POISON)
        first, second = (page, 4), (page + 64, 104)
        r = sc.simple_cmd(m, "bad target, response split 4 + 104", s.next_tag(),
                          scsi.cdb_read10(0, 1), [first, second], tpgt=7,
                          expect_response=scsi.S_BAD_TARGET)
        sc.run(v, [r])
        case.extend(r.problems)
        canary = m.read(page + 4, 60)
        if canary != bytes([sc.POISON]) * 60:
            case.fail("canary between the two response buffers overwritten: "
                      + canary.hex())
        tail = m.read(page + 168, PAGE - 168)
        if tail != bytes([sc.POISON]) * len(tail):
            case.fail("bytes after the second response buffer overwritten")
        second_raw = m.read(*second)
        if second_raw[7] != scsi.S_BAD_TARGET:
            case.fail(f"response byte in the second buffer is {second_raw[7]}, expected 3")
        if m.read(*first) != bytes(4):
            case.fail(f"sense_len in the first buffer is {m.read(*first).hex()}, expected 0")
        case.diag(f"second buffer: {second_raw[:8].hex()}...")
    finally:
        v.close()
