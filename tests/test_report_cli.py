"""`kpipe report` and the report step at the end of `kpipe run`.

Reads the real records in tests/golden/records/; writes runs under the test's $KPIPE_REPORTS.
A run that ends early (bad input: no kernel is built) still gets its report.html and the index;
a rendering failure is only reported: the exit code and the record stay as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import paths
from pipeline.progress import Progress
from pipeline.report import html
from pipeline.run.main import RunOptions, run

RECORDS = Path(__file__).parent / "golden" / "records"


def kpipe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True,
                          text=True, env=dict(os.environ))


@pytest.fixture
def mixed_run() -> Path:
    """The mixed record as a run under $KPIPE_REPORTS/runs."""
    rec = json.loads((RECORDS / "mixed" / "results.json").read_text())
    target = paths.runs_dir() / rec["run_id"]
    shutil.copytree(RECORDS / "mixed", target)
    return target


def test_report_html_by_run_id_writes_the_page_into_the_run_dir(mixed_run: Path) -> None:
    proc = kpipe("report", mixed_run.name)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(mixed_run / "report.html")
    page = (mixed_run / "report.html").read_text()
    assert 'data-col="build" data-status="fail"' in page


def test_report_markdown_prints_and_all_writes_every_file(mixed_run: Path,
                                                          tmp_path: Path) -> None:
    md = kpipe("report", str(mixed_run), "--format", "markdown")
    assert md.returncode == 0 and md.stdout.startswith("### kpipe: ")
    out = tmp_path / "junit.xml"
    junit = kpipe("report", str(mixed_run), "--format", "junit", "-o", str(out))
    assert junit.returncode == 0 and out.read_text().startswith("<?xml")
    every = kpipe("report", str(mixed_run), "--format", "all")
    assert every.returncode == 0, every.stderr
    for name in ("report.html", "report.mail", "summary.md", "junit.xml", "kcidb.json"):
        assert (mixed_run / name).stat().st_size > 0, name
    assert (paths.reports_dir() / "index.html").exists()
    assert json.loads((mixed_run / "kcidb.json").read_text())["version"] == \
        {"major": 5, "minor": 3}


def test_report_of_an_unknown_run_is_bad_input() -> None:
    proc = kpipe("report", "20990101-000000-beef")
    assert proc.returncode == 2
    assert "no run record" in proc.stderr


def _bad_input_run() -> tuple[int, Path]:
    return run(RunOptions(series="/nonexistent/series", argv=["kpipe", "run"]),
               Progress(quiet=True))


def test_a_run_renders_its_page_and_the_index_after_the_last_record_write() -> None:
    code, run_dir = _bad_input_run()
    assert code == 2
    page = (run_dir / "report.html").read_text()
    assert "bad input" in page and run_dir.name in page
    index = (paths.reports_dir() / "index.html").read_text()
    assert f'data-run="{run_dir.name}"' in index


def test_a_rendering_failure_changes_neither_exit_code_nor_record(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    def broken(*args: object, **kwargs: object) -> Path:
        raise RuntimeError("template exploded")

    monkeypatch.setattr(html, "write_run", broken)
    code, run_dir = _bad_input_run()
    assert code == 2
    rec = json.loads((run_dir / "results.json").read_text())
    assert rec["status"] == "bad-input" and rec["exit_code"] == 2
    assert not (run_dir / "report.html").exists()
    err = capsys.readouterr().err
    assert "could not render the report" in err and "template exploded" in err


def test_all_formats_for_a_run_dir_outside_a_reports_dir(tmp_path: Path) -> None:
    """A CI job's own run dir (not <reports>/runs/<id>): files written, no index next to it."""
    run_dir = tmp_path / "job" / "run"
    shutil.copytree(RECORDS / "mixed", run_dir)
    proc = kpipe("report", str(run_dir), "--format", "all")
    assert proc.returncode == 0, proc.stderr
    assert sorted(Path(p).name for p in proc.stdout.split()) == \
        ["junit.xml", "kcidb.json", "report.html", "report.mail", "summary.md"]
    assert not (tmp_path / "index.html").exists()
    assert "all runs</a>" not in (run_dir / "report.html").read_text()
