#!/usr/bin/env python3
"""vhost-scsi dirty-log tests: a tiny user-space VMM against an LIO fileio target.

Runs as root inside the virtme-ng guest (host's Python, stdlib only) and prints
KTAP version 1. Give case names as arguments to run a subset.

Every case uses its own /dev/vhost-scsi device and guest memory; the LIO target
and its backing files are set up once and removed whatever happens. The cases live in
cases_io.py (I/O queue) and cases_queues.py (control and event queues); what they share
in harness.py; the VMM, virtqueue, SCSI and LIO pieces in the other modules here.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cases_io import (  # noqa: E402
    case_io_bitmap,
    case_limit_logged,
    case_limit_refused,
    case_log_toggle,
    case_migration,
)
from cases_queues import case_bad_target_split, case_ctrl_log, case_event_log  # noqa: E402
from harness import Case, Suite  # noqa: E402
from kmsg import KmsgWatch  # noqa: E402
from ktap import KtapWriter  # noqa: E402
from lio import LioError  # noqa: E402

CASES = ["io-bitmap", "migration", "ctrl-log", "event-log", "bad-target-split",
         "limit-refused", "limit-logged", "log-toggle"]


CASE_FUNCS: dict[str, Callable[[Suite, Case], None]] = {
    "io-bitmap": case_io_bitmap,
    "migration": case_migration,
    "ctrl-log": case_ctrl_log,
    "event-log": case_event_log,
    "bad-target-split": case_bad_target_split,
    "limit-refused": case_limit_refused,
    "limit-logged": case_limit_logged,
    "log-toggle": case_log_toggle,
}


def prerequisite() -> str | None:
    """Why the suite cannot run here, or None."""
    if os.geteuid() != 0:
        return "must run as root"
    if not os.path.exists("/dev/vhost-scsi"):
        return "/dev/vhost-scsi missing (CONFIG_VHOST_SCSI)"
    return None


def run_case(s: Suite, name: str, out: KtapWriter) -> bool:
    case = Case()
    watch = KmsgWatch()
    t0 = time.monotonic()
    try:
        CASE_FUNCS[name](s, case)
    except Exception as exc:  # noqa: BLE001 - a case failing must not stop the suite
        case.fail(f"{type(exc).__name__}: {exc}")
    case.diag(f"{name}: {time.monotonic() - t0:.2f} s")
    for line in watch.splats():
        case.fail(f"kernel log: {line}")
    watch.close()
    for d in case.diags:
        out.diag(d)
    if case.problems:
        for p in case.problems[1:]:
            out.diag(p)
        more = f" (+{len(case.problems) - 1} more)" if len(case.problems) > 1 else ""
        out.not_ok(name, case.problems[0] + more)
        return False
    out.ok(name)
    return True


def main(argv: list[str]) -> int:
    names = argv or CASES
    unknown = [n for n in names if n not in CASE_FUNCS]
    if unknown:
        print(f"unknown case(s): {' '.join(unknown)}; known: {' '.join(CASES)}",
              file=sys.stderr)
        return 2
    t0 = time.monotonic()
    out = KtapWriter()
    suite = Suite()
    why = prerequisite()
    if why is None:
        atexit.register(suite.teardown_target)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            suite.setup_target()
        except LioError as exc:      # the kernel lacks the target core: a prerequisite
            why = str(exc)
        except OSError as exc:       # the target is there and refused: a failure
            out.header(len(names))
            out.diag(f"LIO target setup failed: {exc}")
            for n in names:
                out.not_ok(n, f"LIO target setup failed: {exc}")
            return 1
    try:
        with open("/proc/uptime") as f:
            start = float(f.read().split()[0]) - (time.monotonic() - t0)
        uptime = f"started at uptime {start:.1f} s, "
    except (OSError, ValueError):
        uptime = ""
    print(f"{uptime}setup took {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    out.header(len(names))
    if why is not None:
        for n in names:
            out.skip(n, why)
        return 0
    failed = 0
    try:
        for n in names:
            failed += not run_case(suite, n, out)
    finally:
        suite.teardown_target()
        if suite.lio.errors:
            print("# teardown: " + "; ".join(suite.lio.errors), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
