"""kpipe's two kinds of error and the one map from an exception to an exit code.

Every stage's error class derives from BadInput (what kpipe was given cannot be used: exit
code 2) or InfraError (something kpipe needs is missing or broken: exit code 3). `failure`
also knows the few exceptions of Python's that a run meets (a missing tool or file, a full
disk, Ctrl-C). Reads and writes nothing; used by the run (pipeline/run/main.py) and by every
command of pipeline/cli.py.
"""

from __future__ import annotations

import errno
from typing import NamedTuple


class KpipeError(Exception):
    """An error kpipe expects: its exit code and the record status it gives."""

    code = 1
    status = "error"


class BadInput(KpipeError):
    """The series, base, configs, plan, partials or run named cannot be used (exit code 2)."""

    code = 2
    status = "bad-input"


class InfraError(KpipeError):
    """Something kpipe needs is missing or broken (exit code 3)."""

    code = 3
    status = "infra-error"


class Failure(NamedTuple):
    code: int
    status: str  # the record's status
    message: str


def failure(exc: BaseException) -> Failure | None:
    """How kpipe ends on `exc`; None when it is not one kpipe expects (a bug: let it raise)."""
    if isinstance(exc, KpipeError):
        return Failure(exc.code, exc.status, str(exc))
    if isinstance(exc, FileNotFoundError):
        return Failure(3, "infra-error", f"tool or file missing: {exc.filename or exc}")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return Failure(3, "infra-error", f"disk full: {exc}")
    if isinstance(exc, KeyboardInterrupt):
        return Failure(130, "interrupted", "interrupted (Ctrl-C or SIGTERM)")
    return None
