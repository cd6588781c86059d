"""The run index: an SQLite cache of every record's runs, steps and test results.

Reads <reports>/runs/<id>/results.json (the truth); writes <reports>/index.sqlite (WAL mode)
and, when an update fails, the marker <reports>/index.stale. The index is never trusted
blindly: a look-up first refreshes it when the runs dir changed or the marker is there
(re-reading only records whose mtime differs from the one indexed), a hit is checked against
its record before it is returned, and an index SQLite cannot read is deleted and rebuilt.
A record's index rows are replaced in one transaction, so two writers or a Ctrl-C leave
either the old rows or the new ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

INDEX_FILE = "index.sqlite"
STALE_FILE = "index.stale"
VERSION = "1"
BAD_BUILD = ("error", "not-run", "blocked")  # builds a look-up never reuses (keys.py's scan too)
OUTCOME = {0: "good", 1: "bad", 2: "bad input", 3: "infrastructure error", 130: "interrupted"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, mtime_ns INTEGER, created TEXT, series TEXT, revision INTEGER,
  patches INTEGER, configs TEXT, outcome TEXT, tree TEXT, error TEXT, verdicts TEXT);
CREATE INDEX IF NOT EXISTS runs_series ON runs (series, run_id);
CREATE TABLE IF NOT EXISTS steps (
  run_id TEXT, pos INTEGER, config TEXT, idx INTEGER, key TEXT, build_key TEXT,
  build_status TEXT, boot_status TEXT, build_seconds REAL);
CREATE INDEX IF NOT EXISTS steps_key ON steps (key, run_id);
CREATE INDEX IF NOT EXISTS steps_build_key ON steps (build_key, run_id);
CREATE INDEX IF NOT EXISTS steps_run ON steps (run_id);
CREATE TABLE IF NOT EXISTS tests (
  run_id TEXT, tree TEXT, config TEXT, test TEXT, failed INTEGER);
CREATE INDEX IF NOT EXISTS tests_history ON tests (tree, config, test, run_id);
CREATE INDEX IF NOT EXISTS tests_run ON tests (run_id);
"""


@dataclass
class RunRow:
    """One run as the viewer's index page lists it."""

    id: str
    created: str
    series: str
    revision: int | None
    patches: int | None
    configs: list[str]
    outcome: str
    tree: str
    error: str | None
    verdicts: list[str]
    prev: str | None = None


@dataclass
class History:
    """A test's results over the newest runs on one tree and config, up to a run."""

    failed: int
    runs: int
    streak: int  # how many newest runs in a row share the newest result

    def text(self) -> str:
        runs = f"{self.runs} run{'s' if self.runs != 1 else ''}"
        return f"failed {self.failed} of the last {runs} on this tree"


def index_path(reports: Path) -> Path:
    return reports / INDEX_FILE


def reports_of(run_dir: Path) -> Path | None:
    """The reports dir a run dir belongs to (<reports>/runs/<id>), or None."""
    return run_dir.parent.parent if run_dir.parent.name == "runs" else None


def series_name(rec: dict) -> str:
    ser = rec.get("series")
    return " ".join(str(ser["subject"]).split()) if ser else "(no series read)"


def tree_name(rec: dict) -> str:
    base = rec.get("base") or {}
    tree = base.get("tree") or {}
    return base.get("remote") or tree.get("describe") or tree.get("path") or "-"


def outcome(rec: dict) -> str:
    code = rec.get("exit_code")
    return "running" if code is None else OUTCOME.get(code, f"exit {code}")


def _connect(reports: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(index_path(reports), timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _drop(reports: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(index_path(reports)) + suffix).unlink(missing_ok=True)


@contextlib.contextmanager
def _open(reports: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a readable index of the current version; a corrupt one is rebuilt."""
    reports.mkdir(parents=True, exist_ok=True)
    fresh = not index_path(reports).exists()
    try:
        conn = _connect(reports)
        conn.executescript(_SCHEMA)
        got = conn.execute("SELECT v FROM meta WHERE k='version'").fetchone()
    except sqlite3.DatabaseError:
        _drop(reports)
        conn, got, fresh = _connect(reports), None, True
        conn.executescript(_SCHEMA)
    if got is None or got[0] != VERSION:
        with _tx(conn):
            for table in ("runs", "steps", "tests"):
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed names)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (VERSION,))
            conn.execute("DELETE FROM meta WHERE k='runs_mtime'")
        fresh = True
    try:
        if fresh:
            _refresh(conn, reports)
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def _tx(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _verdict_lines(rec: dict) -> list[str]:
    steps: dict[str, set[int]] = {}
    for v in rec.get("verdicts", []):
        steps.setdefault(v["kind"], set()).add(v["step"])
    return [f"{kind} {', '.join('base' if k == 0 else f'patch {k}' for k in sorted(found))}"
            for kind, found in steps.items()]


def _configs(rec: dict) -> list[str]:
    seen: list[str] = []
    for step in rec.get("steps", []):
        if (name := step.get("config", "default")) not in seen:
            seen.append(name)
    return seen


def _put(conn: sqlite3.Connection, run_id: str, mtime_ns: int, rec: dict) -> None:
    """Replace one run's rows (the caller holds the transaction)."""
    _delete(conn, run_id)
    ser = rec.get("series") or {}
    tree = tree_name(rec)
    conn.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", (
        run_id, mtime_ns, rec.get("created"), series_name(rec), ser.get("revision"),
        len(ser["patches"]) if ser.get("patches") is not None else None,
        json.dumps(_configs(rec)), outcome(rec), tree, rec.get("error"),
        json.dumps(_verdict_lines(rec))))
    results: dict[tuple[str, str], int] = {}
    for pos, step in enumerate(rec.get("steps", [])):
        config = step.get("config", "default")
        conn.execute("INSERT INTO steps VALUES (?,?,?,?,?,?,?,?,?)", (
            run_id, pos, config, step.get("index"), step.get("key"), step.get("build_key"),
            (step.get("build") or {}).get("status"), (step.get("boot") or {}).get("status"),
            (step.get("build") or {}).get("seconds")))
        for test in step.get("tests") or []:
            name = f"{test.get('suite')}/{test.get('case')}"
            if test.get("status") in ("fail", "error"):
                results[(config, name)] = 1
            elif test.get("status") == "pass":
                results.setdefault((config, name), 0)
    conn.executemany("INSERT INTO tests VALUES (?,?,?,?,?)",
                     [(run_id, tree, c, t, f) for (c, t), f in results.items()])


def _delete(conn: sqlite3.Connection, run_id: str) -> None:
    for table in ("runs", "steps", "tests"):
        conn.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))  # noqa: S608


def _read(run_dir: Path) -> tuple[int, dict] | None:
    """(mtime_ns, record) of a run dir's results.json, or None when unreadable."""
    path = run_dir / "results.json"
    try:
        mtime = path.stat().st_mtime_ns
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return (mtime, rec) if isinstance(rec, dict) and rec.get("run_id") else None


def _refresh(conn: sqlite3.Connection, reports: Path) -> int:
    """Bring the index up to the records: re-read those whose mtime changed, drop the gone.
    Returns how many runs were re-read."""
    Path(reports / STALE_FILE).unlink(missing_ok=True)
    root = reports / "runs"
    try:
        runs_mtime = root.stat().st_mtime_ns
        entries = {e.name: e for e in os.scandir(root) if e.is_dir()}
    except OSError:
        runs_mtime, entries = 0, {}
    known = dict(conn.execute("SELECT run_id, mtime_ns FROM runs"))
    changed = 0
    with _tx(conn):
        for run_id in known.keys() - entries.keys():
            _delete(conn, run_id)
        for name, entry in entries.items():
            try:
                mtime = os.stat(Path(entry.path) / "results.json").st_mtime_ns
            except OSError:
                if name in known:
                    _delete(conn, name)
                continue
            if known.get(name) == mtime:
                continue
            if (got := _read(Path(entry.path))) is not None:
                _put(conn, name, got[0], got[1])
                changed += 1
            elif name in known:
                _delete(conn, name)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('runs_mtime', ?)", (str(runs_mtime),))
    return changed


def _maybe_refresh(conn: sqlite3.Connection, reports: Path) -> None:
    """Refresh when a run dir came or went since the last refresh, or an update failed."""
    try:
        now = str((reports / "runs").stat().st_mtime_ns)
    except OSError:
        now = "0"
    got = conn.execute("SELECT v FROM meta WHERE k='runs_mtime'").fetchone()
    if got is None or got[0] != now or (reports / STALE_FILE).exists():
        _refresh(conn, reports)


def refresh(reports: Path) -> int:
    """Bring the index up to the records; return how many records were re-read."""
    with _open(reports) as conn:
        return _refresh(conn, reports)


def rebuild(reports: Path) -> int:
    """Delete the index and build it again from every record; return the runs indexed."""
    _drop(reports)
    with _open(reports) as conn:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]


def record_written(run_dir: Path, rec: dict) -> None:
    """Index a record just written. Never fails the write: on any error the index is
    marked stale, and the next reader refreshes it from the records."""
    reports = reports_of(run_dir)
    if reports is None:
        return
    try:
        mtime = (run_dir / "results.json").stat().st_mtime_ns
        with _open(reports) as conn, _tx(conn):
            _put(conn, run_dir.name, mtime, rec)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            (reports / STALE_FILE).touch()
        if not isinstance(exc, Exception):
            raise


def find_step(reports: Path, key: str, exclude_run: str,
              field: str = "key") -> tuple[str, dict] | None:
    """The newest earlier step whose `field` ("key" or "build_key") is `key` and whose result
    is not an infrastructure error, as (run id, step), read from its record."""
    column = {"key": "key", "build_key": "build_key"}[field]
    boot_ok = "AND coalesce(boot_status, '') != 'error'" if field == "key" else ""
    query = (f"SELECT run_id, pos FROM steps WHERE {column}=? AND run_id != ? "  # noqa: S608
             f"AND build_status NOT IN (?,?,?) {boot_ok} ORDER BY run_id DESC, pos LIMIT 1")
    with _open(reports) as conn:
        _maybe_refresh(conn, reports)
        for _ in range(3):
            hit = conn.execute(query, (key, exclude_run, *BAD_BUILD)).fetchone()
            if hit is None:
                return None
            run_id, pos = hit
            got = _read(reports / "runs" / run_id)
            steps = got[1].get("steps", []) if got else []
            if pos < len(steps) and steps[pos].get(field) == key:
                return run_id, steps[pos]
            with _tx(conn):  # the index was wrong about this run: take it from the record
                _delete(conn, run_id)
                if got:
                    _put(conn, run_id, got[0], got[1])
    return None


def _where(filters: dict[str, str]) -> tuple[str, list[str]]:
    clauses, args = [], []
    for name, column in (("series", "series"), ("outcome", "outcome"), ("tree", "tree")):
        if filters.get(name):
            clauses.append(f"{column}=?")
            args.append(filters[name])
    if filters.get("date"):
        clauses.append("substr(created, 1, 10)=?")
        args.append(filters["date"])
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def list_runs(reports: Path, filters: dict[str, str] | None = None, page: int = 1,
              per_page: int = 50) -> tuple[list[RunRow], int]:
    """One page of runs, newest first, matching the filters (series, outcome, tree, date as
    YYYY-MM-DD); and how many runs match in all."""
    where, args = _where(filters or {})
    with _open(reports) as conn:
        _maybe_refresh(conn, reports)
        total = conn.execute(f"SELECT count(*) FROM runs{where}", args).fetchone()[0]  # noqa: S608
        rows = conn.execute(
            "SELECT run_id, created, series, revision, patches, configs, outcome, tree, error,"
            " verdicts, (SELECT max(p.run_id) FROM runs p WHERE p.series=r.series AND"
            f" p.run_id < r.run_id) FROM runs r{where} ORDER BY run_id DESC"  # noqa: S608
            " LIMIT ? OFFSET ?", [*args, per_page, (max(page, 1) - 1) * per_page]).fetchall()
    return [RunRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8],
                   json.loads(r[9]), r[10]) for r in rows], total


def choices(reports: Path) -> dict[str, list[str]]:
    """The values each filter can take: series, outcome, tree."""
    with _open(reports) as conn:
        _maybe_refresh(conn, reports)
        return {c: [v for (v,) in conn.execute(
            f"SELECT DISTINCT {c} FROM runs ORDER BY {c}")]  # noqa: S608
            for c in ("series", "outcome", "tree")}


def newest_per_series(reports: Path, count: int) -> list[list[str]]:
    """Each series' newest `count` run ids, oldest first."""
    with _open(reports) as conn:
        _maybe_refresh(conn, reports)
        rows = conn.execute(
            "SELECT series, run_id FROM (SELECT series, run_id, row_number() OVER"
            " (PARTITION BY series ORDER BY run_id DESC) AS n FROM runs) WHERE n <= ?"
            " ORDER BY series, run_id", (count,)).fetchall()
    groups: dict[str, list[str]] = {}
    for series, run_id in rows:
        groups.setdefault(series, []).append(run_id)
    return list(groups.values())


def run_mtimes(reports: Path) -> dict[str, int]:
    """Every indexed run id with its record's mtime (ns)."""
    with _open(reports) as conn:
        _maybe_refresh(conn, reports)
        return dict(conn.execute("SELECT run_id, mtime_ns FROM runs"))


def history(reports: Path, rec: dict, config: str, test: str, last: int = 20) -> History:
    """The test's results over the newest `last` runs up to this one on its tree and config."""
    with _open(reports) as conn:
        _maybe_refresh(conn, reports)
        rows = [f for (f,) in conn.execute(
            "SELECT failed FROM tests WHERE tree=? AND config=? AND test=? AND run_id <= ?"
            " ORDER BY run_id DESC LIMIT ?", (tree_name(rec), config, test, rec["run_id"],
                                              last))]
    streak = next((n for n, f in enumerate(rows) if f != rows[0]), len(rows)) if rows else 0
    return History(sum(rows), len(rows), streak)


def dump(reports: Path) -> dict[str, list[tuple]]:
    """Every row of the index, sorted (for checking two indexes give the same answers)."""
    with _open(reports) as conn:
        return {t: sorted(conn.execute(f"SELECT * FROM {t}"), key=repr)  # noqa: S608
                for t in ("runs", "steps", "tests")}
