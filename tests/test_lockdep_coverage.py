"""What lockdep checked in a boot (pipeline/boot/lockdep.py), from the guest runner's events.

The events are in the runner's own format (virtme-tests/runner.py writes them, each with the
`debug_locks` it read from /proc/lockdep_stats); the splats come from the real scanner over a
kernel log with the 6.12 lockdep report the vhost-scsi suite's warm-up provokes. The boot
end-to-end (tests/test_default_series.py) checks the same record from a real guest.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.boot import lockdep
from pipeline.boot import splats as splatmod

GOLDEN = Path(__file__).parent / "golden" / "dmesg"
PROG = "vhost_scsi_tests.py"
NAMES = {("vhost-scsi", PROG, n): f"vhost-scsi/{c}" for n, c in
         enumerate(["io-bitmap", "migration", "ctrl-log"], start=1)}
LOCKDEP_ON = {"CONFIG_PROVE_LOCKING": "y"}


def events(states: list[int | None]) -> list[dict]:
    """runner-start, program-start, then start/end of three cases, then program-end: each
    with the next `debug_locks` of `states` (nine values)."""
    shape = [("runner-start", {}), ("program-start", {"suite": "vhost-scsi", "program": PROG})]
    for n in (1, 2, 3):
        for kind in ("case-start", "case-end"):
            shape.append((kind, {"suite": "vhost-scsi", "program": PROG, "case": n}))
    shape.append(("program-end", {"suite": "vhost-scsi", "program": PROG}))
    assert len(states) == len(shape)
    return [{"event": k, "debug_locks": d, **f} for (k, f), d in zip(shape, states, strict=True)]


def warmup_report() -> list[splatmod.Splat]:
    """The allow-listed tv_tpg_mutex report, as the scanner finds it in a real kernel log."""
    log = GOLDEN / "vhost-scsi-lockdep.log"
    found = [s for s in splatmod.scan(log.read_text(), splatmod.load_patterns())
             if s.kind == "lockdep"]
    assert found, log
    return found


def test_off_from_the_set_up_names_the_report_and_every_case_unchecked() -> None:
    found = warmup_report()
    ld = lockdep.coverage(LOCKDEP_ON, events([1, 1, 0, 0, 0, 0, 0, 0, 0]), found, NAMES)
    assert ld["known"] and ld["off_from"] == "vhost-scsi set-up, before its first case"
    assert ld["reason"]["title"] == found[0].title
    assert ld["reason"]["allowed"] == found[0].allowed
    assert ld["checked"] == [] and ld["unchecked"] == sorted(NAMES.values(), key=list(
        NAMES.values()).index)
    assert "3 cases ran without it" in ld["detail"]


def test_off_during_a_case_keeps_the_earlier_cases_checked() -> None:
    ld = lockdep.coverage(LOCKDEP_ON, events([1, 1, 1, 1, 1, 0, 0, 0, 0]), [], NAMES)
    assert ld["off_from"] == "vhost-scsi/migration"
    assert ld["checked"] == ["vhost-scsi/io-bitmap"]
    assert ld["unchecked"] == ["vhost-scsi/migration", "vhost-scsi/ctrl-log"]
    assert ld["reason"] is None and "no lockdep report" in ld["detail"]


def test_on_throughout_and_not_built_and_unknown() -> None:
    on = lockdep.coverage(LOCKDEP_ON, events([1] * 9), [], NAMES)
    assert on["off_from"] is None and len(on["checked"]) == 3 and on["unchecked"] == []
    off = lockdep.coverage(LOCKDEP_ON, events([0] * 9), [], NAMES)
    assert off["off_from"] == "boot, before the guest runner started"
    assert len(off["unchecked"]) == 3
    none = lockdep.coverage({"CONFIG_PROVE_LOCKING": "n"}, events([None] * 9), [], NAMES)
    assert not none["built"] and not none["known"]
    unknown = lockdep.coverage(LOCKDEP_ON, events([None] * 9), [], NAMES)
    assert unknown["built"] and not unknown["known"] and "did not report" in unknown["detail"]


def test_a_case_that_never_ended_is_not_counted_checked() -> None:
    evs = events([1] * 9)[:5]           # the guest died in case 2
    ld = lockdep.coverage(LOCKDEP_ON, evs, [], NAMES)
    assert ld["checked"] == ["vhost-scsi/io-bitmap"]
    assert ld["unchecked"] == ["vhost-scsi/migration"]
