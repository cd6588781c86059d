"""File locks shared by concurrent kpipe runs.

Writes lock files under the cache's locks/ directory; holds an fcntl lock on them. Two runs may
share the imported tree and ccache: whatever changes shared git state takes one of these.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from pipeline import paths


@contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold an exclusive lock called `name` (a file under the cache) for the with-block."""
    path = paths.locks_dir() / f"{name}.lock"
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def try_hold(name: str) -> IO[str] | None:
    """Take the lock `name` without waiting: the open file that holds it, or None when taken.

    For locks held across a whole run (a build place of pipeline/intake/pool.py); close the
    file to release it.
    """
    fh = open(paths.locks_dir() / f"{name}.lock", "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        return None
    return fh
