"""The run page on real records: untrusted text escaped, huge and coloured logs capped and cleaned.

Reads tests/golden/records/; writes copies of runs under the test's tmp dir (the mixed run's
failed build log is grown to a few MB of coloured compiler output to check the cap).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipeline.report import html

RECORDS = Path(__file__).parent / "golden" / "records"


def copy_run(name: str, tmp_path: Path) -> tuple[Path, dict]:
    run_dir = tmp_path / "runs" / name
    shutil.copytree(RECORDS / name, run_dir)
    return run_dir, json.loads((run_dir / "results.json").read_text())


def test_a_huge_coloured_build_log_is_capped_cleaned_and_linked(tmp_path: Path) -> None:
    run_dir, rec = copy_run("mixed", tmp_path)
    log = run_dir / "steps" / "default" / "3" / "build.log"
    noise = "\x1b[01m\x1b[Kdrivers/vhost/scsi.c:1:\x1b[m\x1b[K \x1b[01;35mwarning: \x1b[mnoise\n"
    log.write_text(log.read_text() + noise * 60000)
    page = html.render_run(rec, run_dir)
    assert len(page) < 400_000  # the log alone is several MB
    assert "\x1b" not in page
    assert "characters left out here: open the full log" in page
    assert '<a href="steps/default/3/build.log">steps/default/3/build.log</a>' in page
    assert "drivers/vhost/scsi.c:1: warning: noise" in page


def test_hostile_subject_is_escaped_in_every_place_it_appears(tmp_path: Path) -> None:
    run_dir, rec = copy_run("hostile-subject", tmp_path)
    page = html.render_run(rec, run_dir)
    assert "<script" not in page and "<img" not in page
    escaped = "vhost-scsi: &lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=alert(2)&gt;"
    assert page.count(escaped) >= 2  # the matrix row and the patch list
    assert "kpipe test: &lt;b&gt;hostile&lt;/b&gt; subject" in page


def test_logs_missing_from_a_run_are_said_so(tmp_path: Path) -> None:
    run_dir, rec = copy_run("default-series", tmp_path)
    failed = next(t for s in rec["steps"] for t in s["tests"] if t["status"] == "fail")
    (run_dir / failed["log"]).unlink()
    page = html.render_run(rec, run_dir)
    assert f"Log <code>{failed['log']}</code> is not kept with this run." in page


def test_lockdep_coverage_is_said_per_step_and_in_the_splats_cell(tmp_path: Path) -> None:
    from pipeline.boot import lockdep, splats

    run_dir, rec = copy_run("default-series", tmp_path)
    log = Path(__file__).parent / "golden" / "dmesg" / "vhost-scsi-lockdep.log"
    found = [s for s in splats.scan(log.read_text(), splats.load_patterns())
             if s.kind == "lockdep"]
    prog, names = "vhost_scsi_tests.py", {("vhost-scsi", "vhost_scsi_tests.py", 1):
                                          "vhost-scsi/io-bitmap"}
    evs = [{"event": "runner-start", "debug_locks": 1},
           {"event": "program-start", "debug_locks": 1, "suite": "vhost-scsi", "program": prog}]
    case = [{"event": k, "suite": "vhost-scsi", "program": prog, "case": 1}
            for k in ("case-start", "case-end")]
    on = {"CONFIG_PROVE_LOCKING": "y"}
    rec["steps"][0]["boot"]["lockdep"] = lockdep.coverage(
        on, evs + [{**e, "debug_locks": 0} for e in case], found, names)
    rec["steps"][1]["boot"]["lockdep"] = lockdep.coverage(
        on, evs + [{**e, "debug_locks": 1} for e in case], [], names)
    page = html.render_run(rec, run_dir)
    assert "<h2>Lockdep coverage</h2>" in page
    assert "<b>off from vhost-scsi set-up, before its first case</b>" in page
    assert "(allow-listed); 1 of 1 cases ran without it" in page
    assert "on throughout: 1 cases checked" in page
    row0 = page[page.index('<tr data-step="0">'):page.index('<tr data-step="1">')]
    assert "(lockdep off)" in row0
    row1 = page[page.index('<tr data-step="1">'):]
    assert "(lockdep off)" not in row1[:row1.index("</tr>")]
