"""kpipe's one atomic writer: a unique temporary file in the target's directory, written,
flushed to disk (fsync), then renamed over the target.

Reads nothing; writes the target. Readers (a browser, `kpipe serve`'s other threads, a second
run refreshing the index, a shard reading a plan) see the old file or the new one, never half
of one, and a crash leaves one of the two on disk. Used for results.json, the reports, the
plan and the accelerator probe's cache.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text(target: Path, text: str) -> Path:
    """Write `text` (UTF-8) to `target` atomically, mode 0644; return `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
