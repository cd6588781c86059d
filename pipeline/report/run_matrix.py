"""The matrix `kpipe run` and `kpipe merge` print when they end: one row per step, then the
verdicts and the run's error.

Reads the run's results.json (pipeline/record/store.py); writes stdout.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipeline.record import store


def show_record(run_dir: Path, code: int, as_json: bool) -> int:
    """Print the run's record (as JSON) or its matrix and where the record is; return `code`."""
    rec = store.load(run_dir)
    if as_json:
        print(json.dumps(rec, indent=1))
    else:
        print_matrix(rec)
        print(f"record: {run_dir / 'results.json'}  (exit {code})")
    return code


def print_matrix(rec: dict) -> None:
    """The step matrix, the verdicts and the run's error, as `kpipe run` ends with."""
    console = Console()
    table = Table(title=f"kpipe run {rec['run_id']}: {rec['status']}")
    for col in ("step", "config", "apply", "build", "s", "new warnings", "boot", "reused"):
        table.add_column(col)
    for s in rec["steps"]:
        label = "base" if s["index"] == 0 else f"{s['index']}"
        table.add_row(label, s.get("config", ""), s["apply"]["status"], s["build"]["status"],
                      str(s["build"].get("seconds", "")),
                      str(len(s["build"].get("warnings_new", []))), s["boot"]["status"],
                      s["reused_from"] or "")
    console.print(table)
    for v in rec["verdicts"]:
        console.print(f"  {v['kind']} {v['step']}: {v['detail']}")
    if rec.get("error"):
        console.print(f"[red]{rec['error']}[/]")
