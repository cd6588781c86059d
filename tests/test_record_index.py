"""The run index (pipeline/record/index.py) against the records it caches, and under faults.

Reads the real records in tests/golden/records/ and synthetic runs made from them
(tests/synthetic_runs.py); writes reports dirs under the test's tmp dir. Every check compares
the index's answers with the records': the full-scan look-up (keys.find_reusable_scan), a
rebuilt index, or the record itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import synthetic_runs

from pipeline.record import index, keys, store

RECORDS = Path(__file__).parent / "golden" / "records"
ROOT = Path(__file__).resolve().parent.parent


def golden_reports(root: Path) -> Path:
    for rec_dir in sorted(RECORDS.iterdir()):
        if (rec_dir / "results.json").exists():
            rec = json.loads((rec_dir / "results.json").read_text())
            shutil.copytree(rec_dir, root / "runs" / rec["run_id"])
    return root


def every_lookup(reports: Path, finder) -> list:
    """The answer of `finder` for every key and build key of every record, excluding each
    run in turn."""
    out = []
    for run in sorted((reports / "runs").iterdir()):
        rec = json.loads((run / "results.json").read_text())
        for step in rec["steps"]:
            for field in ("key", "build_key"):
                if step.get(field):
                    got = finder(step[field], run.name, field)
                    out.append((field, step[field], run.name,
                                got and (got[0], got[1]["index"], got[1]["config"])))
    return out


def reopened_answers(reports: Path) -> dict:
    """The index's rows after a refresh from the records."""
    index.refresh(reports)
    return index.dump(reports)


def test_lookups_match_the_full_scan_of_the_records() -> None:
    reports = golden_reports(Path(os.environ["KPIPE_REPORTS"]))
    via_index = every_lookup(reports, keys.find_reusable)
    assert via_index == every_lookup(reports, keys.find_reusable_scan)
    assert any(found for *_, found in via_index)  # mixed-rerun's keys are mixed's


def test_rebuild_gives_the_same_answers_as_the_index_kept_by_writes(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    real = json.loads((RECORDS / "default-series" / "results.json").read_text())
    for i in range(6):
        rec = synthetic_runs.synthetic(real, i)
        store.write(reports / "runs" / rec["run_id"], rec)
        rec["exit_code"] = 1  # a run writes its record again as it goes
        store.write(reports / "runs" / rec["run_id"], rec)
    kept = index.dump(reports)
    assert len(kept["runs"]) == 6 and {r[7] for r in kept["runs"]} == {"bad"}
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "index", "--rebuild"],
                          capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, KPIPE_REPORTS=str(reports)))
    assert proc.returncode == 0 and "6 runs" in proc.stdout, proc.stderr
    assert index.dump(reports) == kept


@pytest.mark.parametrize("damage", ["garbage", "truncated", "deleted"])
def test_a_corrupt_or_deleted_index_is_rebuilt(damage: str) -> None:
    reports = golden_reports(Path(os.environ["KPIPE_REPORTS"]))
    before = every_lookup(reports, keys.find_reusable)
    db = index.index_path(reports)
    if damage == "garbage":
        db.write_bytes(b"this is not a database" * 500)
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[:1000])
    else:
        db.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    assert every_lookup(reports, keys.find_reusable) == before
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_record_changed_behind_the_index_is_not_trusted() -> None:
    reports = golden_reports(Path(os.environ["KPIPE_REPORTS"]))
    index.refresh(reports)
    mixed = json.loads((RECORDS / "mixed" / "results.json").read_text())
    rerun = json.loads((RECORDS / "mixed-rerun" / "results.json").read_text())
    key = mixed["steps"][1]["key"]
    assert keys.find_reusable(key, "none")[0] == rerun["run_id"]
    # rewrite the newer run's record without the store (as a copy or an old kpipe would)
    path = reports / "runs" / rerun["run_id"] / "results.json"
    for step in rerun["steps"]:
        step["key"] = "changed"
    path.write_text(json.dumps(rerun))
    assert keys.find_reusable(key, "none")[0] == mixed["run_id"]
    assert keys.find_reusable("changed", "none")[0] == rerun["run_id"]
    assert reopened_answers(reports) == (index.rebuild(reports), index.dump(reports))[1]


def test_a_full_disk_never_fails_the_record_and_the_next_reader_catches_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reports = tmp_path / "reports"
    real = json.loads((RECORDS / "default-series" / "results.json").read_text())
    first = synthetic_runs.synthetic(real, 0)
    store.write(reports / "runs" / first["run_id"], first)
    connect = index._connect

    def full_disk(where: Path) -> sqlite3.Connection:  # SQLite's own SQLITE_FULL, for real
        conn = connect(where)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages}")
        return conn

    monkeypatch.setattr(index, "_connect", full_disk)
    second = synthetic_runs.synthetic(real, 1)
    second["error"] = "no space left " * 10_000  # needs pages the index may not grow by
    store.write(reports / "runs" / second["run_id"], second)  # must not raise
    assert json.loads((reports / "runs" / second["run_id"] / "results.json").read_text()) \
        == second
    assert (reports / index.STALE_FILE).exists()
    monkeypatch.setattr(index, "_connect", connect)
    key = second["steps"][0]["key"]
    assert keys.find_reusable(key, "none") == keys.find_reusable_scan(key, "none")
    assert keys.find_reusable(key, "none")[0] == second["run_id"]
    assert not (reports / index.STALE_FILE).exists()


WRITER = """
import json, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # a Ctrl-C even if started ignoring it
from pathlib import Path
sys.path.insert(0, "tests")
from pipeline.record import store
import synthetic_runs
reports, start, stop = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
real = json.loads((synthetic_runs.RECORDS / "default-series" / "results.json").read_text())
print("started", flush=True)
for i in range(start, stop):
    rec = synthetic_runs.synthetic(real, i)
    for code in (None, 1, 0):
        rec["exit_code"] = code
        store.write(reports / "runs" / rec["run_id"], rec)
"""


def _writer(reports: Path, start: int, stop: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(reports), str(start), str(stop)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)


def test_two_runs_writing_at_once_leave_index_and_records_consistent(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    writers = [_writer(reports, 0, 15), _writer(reports, 100, 115)]
    for w in writers:
        assert w.wait(timeout=120) == 0
    kept = index.dump(reports)
    assert len(kept["runs"]) == 30 and {r[7] for r in kept["runs"]} == {"good"}
    index.rebuild(reports)
    assert index.dump(reports) == kept


@pytest.mark.parametrize("after", [0.8, 1.5])
def test_ctrl_c_while_writing_leaves_index_and_records_consistent(tmp_path: Path,
                                                                  after: float) -> None:
    reports = tmp_path / "reports"
    writer = _writer(reports, 0, 10_000)
    assert writer.stdout.readline() == "started\n"
    deadline = time.monotonic() + 60  # a loaded machine: the Ctrl-C comes after a first write
    while not any((reports / "runs").glob("*/results.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(after)
    writer.send_signal(signal.SIGINT)
    assert writer.wait(timeout=30) != 0
    runs = sorted((reports / "runs").iterdir())
    assert runs, "the writer wrote nothing before the Ctrl-C"
    kept = reopened_answers(reports)
    assert [r[0] for r in kept["runs"]] == [r.name for r in runs
                                            if (r / "results.json").exists()]
    index.rebuild(reports)
    assert index.dump(reports) == kept


def test_pages_and_filters_are_queries_of_the_index(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    synthetic_runs.make_runs(reports, 120)
    first, total = index.list_runs(reports, {}, 1, 50)
    assert total == 120 and [r.id for r in first] == \
        [synthetic_runs.run_id(i) for i in range(119, 69, -1)]
    last, _ = index.list_runs(reports, {}, 3, 50)
    assert [r.id for r in last] == [synthetic_runs.run_id(i) for i in range(19, -1, -1)]
    series = synthetic_runs.SERIES[1]
    got, n = index.list_runs(reports, {"series": series, "outcome": "bad"}, 1, 50)
    expect = [synthetic_runs.run_id(i) for i in range(119, -1, -1)
              if i % 3 == 1 and i % 4 == 1]
    assert n == len(expect) and [r.id for r in got] == expect
    day, n = index.list_runs(reports, {"date": "2026-01-01"}, 1, 500)
    assert n == 120 and not index.list_runs(reports, {"date": "2026-01-02"})[1]


def test_history_counts_a_tests_failures_over_the_last_runs(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    synthetic_runs.make_runs(reports, 30, flaky=10)  # runs 0, 10, 20 fail every test
    rec = json.loads((reports / "runs" / synthetic_runs.run_id(25) / "results.json")
                     .read_text())
    test = next(f"{t['suite']}/{t['case']}" for s in rec["steps"] for t in s["tests"])
    hist = index.history(reports, rec, "default", test)
    assert (hist.failed, hist.runs, hist.streak) == (2, 20, 5)  # runs 6..25: 10 and 20
    assert hist.text() == "failed 2 of the last 20 runs on this tree"
