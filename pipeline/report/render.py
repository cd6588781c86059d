"""`kpipe report`: find a run, render one format (or all) from its results.json.

Reads RUN (a run dir, or a run id under $KPIPE_REPORTS/runs) and its record; writes report.html
into the run dir for `html`, the format's text to stdout or to -o FILE for the others, and for
`all` every format into the run dir (report.html, report.mail, summary.md, junit.xml,
kcidb.json) plus the refreshed viewer index when the run dir is <reports>/runs/<id>.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pipeline import atomic, paths
from pipeline.errors import BadInput
from pipeline.record import store as record
from pipeline.report import html, junit, kcidb, mail, markdown, viewer

FILES = {"html": html.REPORT_FILE, "mail": "report.mail", "markdown": "summary.md",
         "junit": "junit.xml", "kcidb": "kcidb.json"}
FORMATS = (*FILES, "all")


class ReportError(BadInput):
    """RUN names no run with a readable record."""


def find_run(run: str) -> Path:
    """A run dir given as a path, or as a run id under the reports dir."""
    for candidate in (Path(run), paths.reports_dir() / "runs" / run):
        if (candidate / "results.json").is_file():
            return candidate
    raise ReportError(f"no run record at {run} (nor {paths.reports_dir() / 'runs' / run})")


def load(run_dir: Path) -> dict:
    try:
        rec = record.load(run_dir)
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {run_dir / 'results.json'}: {exc}") from exc
    if not isinstance(rec, dict) or "steps" not in rec:
        raise ReportError(f"{run_dir / 'results.json'} is not a kpipe run record")
    return rec


def _kcidb_text(rec: dict) -> str:
    doc = kcidb.export(rec)
    kcidb.validate(doc)
    return json.dumps(doc, indent=1) + "\n"


def text_renderers(run_dir: Path) -> dict[str, Callable[[dict], str]]:
    return {
        "html": lambda rec: html.render_run(rec, run_dir),
        "mail": mail.render_mail,
        "markdown": lambda rec: markdown.render_markdown(
            rec, str(run_dir / html.REPORT_FILE)),
        "junit": junit.render_junit,
        "kcidb": _kcidb_text,
    }


def render_format(run_dir: Path, fmt: str) -> str:
    return text_renderers(run_dir)[fmt](load(run_dir))


def write_all(run_dir: Path) -> list[Path]:
    """Every format into the run dir, then the viewer index of the reports dir around it."""
    rec = load(run_dir)
    written = []
    for fmt, render in text_renderers(run_dir).items():
        written.append(atomic.write_text(run_dir / FILES[fmt], render(rec)))
    index = refresh_index(run_dir)
    return written + ([index] if index else [])


def refresh_index(run_dir: Path) -> Path | None:
    """The viewer index of the reports dir holding this run (<reports>/runs/<id>); None when
    the run dir is elsewhere (e.g. a CI job's own dir), so no index lands in a stranger's dir."""
    if not html.in_reports(run_dir):
        return None
    return viewer.write_viewer(run_dir.resolve().parent.parent)
