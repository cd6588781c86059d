"""The run record: results.json, its schema, and writing it atomically.

Reads pipeline/results.schema.json; writes reports/runs/<run-id>/results.json (via a temporary
file and a rename, so a killed run leaves the last good state). Every stage extends the same
dict; paths inside it are relative to the run directory. Each write also updates the run index
(pipeline/record/index.py, <reports>/index.sqlite), which never fails the write.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import subprocess
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import jsonschema

from pipeline import atomic
from pipeline.record import index

SCHEMA = "kpipe/1"
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")

APPLY_STATUS = ("applied", "applied-3way", "already-present", "conflict", "blocked")
STAGE_STATUS = ("pass", "fail", "skip", "error", "blocked", "not-run")


def kpipe_version() -> str:
    try:
        return version("kpipe")
    except PackageNotFoundError:
        return "0+unknown"


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def host_info() -> dict:
    qemu = shutil.which("qemu-system-x86_64")
    qemu_version = None
    if qemu:
        out = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout
        qemu_version = out.splitlines()[0] if out else None
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
    return {"hostname": platform.node(), "cpus": os.cpu_count(), "accel": None,
            "qemu": qemu_version, "cpu_model": None,
            "compiler": gcc.splitlines()[0] if gcc else None}


def new_record(run_id: str, argv: list[str]) -> dict:
    return {
        "schema": SCHEMA, "run_id": run_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "kpipe_version": kpipe_version(), "argv": argv, "status": "running",
        "exit_code": None, "error": None, "host": host_info(), "series": None, "base": None,
        "configs": [], "steps": [], "verdicts": [], "stages": {},
    }


def stage_time(record: dict, name: str, start: float) -> None:
    """Record the seconds since `start` (time.monotonic()) that stage `name` took."""
    record["stages"][name] = round(time.monotonic() - start, 1)


def validate(record: dict) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.validate(record, schema)


def write(run_dir: Path, record: dict) -> Path:
    """Validate and write the record atomically; return its path."""
    validate(record)
    run_dir.mkdir(parents=True, exist_ok=True)
    target = atomic.write_text(run_dir / "results.json", json.dumps(record, indent=1) + "\n")
    index.record_written(run_dir, record)
    return target


def load(run_dir: Path) -> dict:
    """The run dir's record; raises OSError or ValueError when it cannot be read."""
    return json.loads((run_dir / "results.json").read_text())


def load_or_none(run_dir: Path) -> dict | None:
    """The run dir's record when it is readable and is a JSON object, else None (listings
    skip such a dir: a run being written, or not a run)."""
    try:
        rec = load(run_dir)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def config_entry(record: dict, name: str) -> dict | None:
    """The record's `configs` entry of the config named `name`, or None."""
    return next((c for c in record["configs"] if c["name"] == name), None)
