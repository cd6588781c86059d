#!/usr/bin/python3
"""migration-faults: the vhost-scsi-migration case run four times, each with one fault.

Every part is the real one (LIO, /dev/vhost-scsi, QEMU, QMP, the L2 kernel); a fault is put in
only where no real part fails on demand: a device model QEMU does not have (QEMU never starts),
a bandwidth cap never raised (the migration never completes; the completion wait is cut to 10
s), an /init that exits (L2 panics) and the whole case's bound cut to 15 s. Each case here
passes when the migration case ended as fail or error with the expected message and no QEMU
left running; the case's own message is printed as a diagnostic line, so the host's record
shows it.

Reads what the migration suite reads; finds that suite beside tests/ in the checkout
(virtme-tests/vhost-scsi-migration, or $KPIPE_MIGRATION_SUITE). Writes KTAP on stdout.
"""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

SUITE = Path(os.environ.get("KPIPE_MIGRATION_SUITE") or
             Path(__file__).resolve().parents[3] / "virtme-tests" / "vhost-scsi-migration")
sys.path.insert(0, str(SUITE))

import migration_test  # noqa: E402

CASES = [
    ("qemu-never-starts", {"device": "vhost-scsi-pci-kpipe-missing"}, {},
     r"^error: QMP connect failed: .*'vhost-scsi-pci-kpipe-missing' is not a valid device "
     r"model name.*; no QEMU left running$"),
    ("migration-never-completes", {"raise_cap": False}, {"completion": 10.0},
     r"^error: no completion within 10 s \(status active, dirty-sync-count \d+\); "
     r"no QEMU left running$"),
    ("l2-panics", {"init_text": "#!/bin/busybox sh\nexit 0\n"}, {},
     r"^error: L2 panicked \(source\): Kernel panic - not syncing: Attempted to kill init!"
     r".*; no QEMU left running$"),
    # the whole case's bound, cut to 15 s: it ends during the L2's boot (about 30 s)
    ("case-over-its-bound", {}, {"case": 15.0},
     r"^error: the case took over 15 s; no QEMU left running$"),
]


def main() -> int:
    k = migration_test.KtapWriter()
    k.header(len(CASES))
    if why := migration_test.prerequisites():
        for name, *_ in CASES:
            k.not_ok(name, f"error: cannot run: {why}")
        return 0
    import migration

    for name, faults, timeouts, want in CASES:
        inner = io.StringIO()
        status = migration_test.run_case(
            migration_test.KtapWriter(inner), name, faults=migration.Faults(**faults),
            timeouts=migration.Timeouts(**timeouts))
        result = inner.getvalue().strip().splitlines()
        for line in result:
            k.diag(line.removeprefix("# "))
        got = result[-1].split(" # ", 1)[1] if result and " # " in result[-1] else ""
        if status in ("fail", "error") and re.search(want, got):
            k.ok(name)
        else:
            k.not_ok(name, f"the case ended {status}: {got or result[-1:]}, want /{want}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
