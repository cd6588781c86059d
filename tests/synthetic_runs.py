"""Synthetic run histories made from a real record, for the index tests and bench/index_bench.py.

Reads one real results.json (tests/golden/records/); writes N run dirs under <reports>/runs/,
each holding only a results.json: the real record with its own run id (one minute apart, so
ids sort by time), creation date, one of a few series subjects, an exit code cycling through
pass, fail and infra error, step keys of its own (so a look-up finds one run, not all), and
test results that fail in every `flaky`-th run. Writes the files directly, not through the
record store, so the run index knows nothing of them until it is refreshed.
"""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

RECORDS = Path(__file__).parent / "golden" / "records"
START = datetime(2026, 1, 1, tzinfo=UTC)
SERIES = ("net: a series", "vhost: another series", "scsi: a third series")
EXIT_CODES = (0, 1, 0, 3)


def run_id(i: int) -> str:
    return (START + timedelta(minutes=i)).strftime("%Y%m%d-%H%M%S-") + f"{i % 65536:04x}"


def step_key(i: int, pos: int, what: str = "key") -> str:
    return hashlib.sha256(f"{what}/{i}/{pos}".encode()).hexdigest()[:24]


def synthetic(real: dict, i: int, flaky: int = 5) -> dict:
    rec = copy.deepcopy(real)
    rec["run_id"] = run_id(i)
    rec["created"] = (START + timedelta(minutes=i)).isoformat(timespec="seconds")
    rec["exit_code"] = EXIT_CODES[i % len(EXIT_CODES)]
    if rec.get("series"):
        rec["series"]["subject"] = SERIES[i % len(SERIES)]
    for pos, step in enumerate(rec["steps"]):
        step["key"] = step_key(i, pos)
        step["build_key"] = step_key(i, pos, "build")
        for test in step.get("tests") or []:
            test["status"] = "fail" if i % flaky == 0 else "pass"
    return rec


def make_runs(reports: Path, n: int, source: str = "default-series", flaky: int = 5) -> None:
    """Write n synthetic runs (ids run_id(0) .. run_id(n-1)) into reports/runs/."""
    real = json.loads((RECORDS / source / "results.json").read_text())
    for i in range(n):
        run_dir = reports / "runs" / run_id(i)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "results.json").write_text(json.dumps(synthetic(real, i, flaky), indent=1))
