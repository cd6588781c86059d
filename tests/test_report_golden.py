"""Golden files for the mail, Markdown, JUnit and KCIDB renderings of real run records.

Reads tests/golden/records/<name>/ (results.json of a real kpipe run, its COMMAND, the few logs
the renderings need); compares with tests/golden/reports/<name>/. To regenerate the goldens
after an intended change, run with KPIPE_UPDATE_GOLDEN=1 and review the diff:

    KPIPE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_report_golden.py
"""

from __future__ import annotations

import copy
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from pipeline.record import store as record
from pipeline.record import verdicts
from pipeline.report import html, junit, kcidb, mail, markdown, summary

RECORDS = Path(__file__).parent / "golden" / "records"
REPORTS = Path(__file__).parent / "golden" / "reports"
NAMES = sorted(p.name for p in RECORDS.iterdir() if (p / "results.json").is_file())
RENDERERS = {
    "report.mail": mail.render_mail,
    "summary.md": markdown.render_markdown,
    "junit.xml": junit.render_junit,
    "kcidb.json": lambda rec: json.dumps(kcidb.export(rec), indent=1) + "\n",
}


def load(name: str) -> dict:
    return json.loads((RECORDS / name / "results.json").read_text())


@pytest.fixture(autouse=True)
def _default_reporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KPIPE_REPORTER", raising=False)


def test_every_record_has_its_command_and_is_a_valid_record() -> None:
    assert {"default-series", "mixed", "mixed-rerun", "hostile-subject", "rev1", "rev2"} <= \
        set(NAMES)
    for name in NAMES:
        assert "kpipe run" in (RECORDS / name / "COMMAND").read_text(), name
        record.validate(load(name))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("filename", sorted(RENDERERS))
def test_golden(name: str, filename: str) -> None:
    out = RENDERERS[filename](load(name))
    golden = REPORTS / name / filename
    if os.environ.get("KPIPE_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(out)
    assert golden.exists(), f"no golden {golden}: run with KPIPE_UPDATE_GOLDEN=1"
    assert out == golden.read_text()


@pytest.mark.parametrize("name", NAMES)
def test_kcidb_export_passes_kcidb_io_validation(name: str) -> None:
    doc = kcidb.export(load(name))
    kcidb.validate(doc)
    rec = load(name)
    assert len(doc["builds"]) == len(rec["steps"])
    assert len({c["id"] for c in doc["checkouts"]}) == len(doc["checkouts"])
    assert len({t["id"] for t in doc["tests"]}) == len(doc["tests"])


def test_kcidb_validation_rejects_a_broken_document() -> None:
    doc = kcidb.export(load("default-series"))
    broken = copy.deepcopy(doc)
    broken["tests"][0]["status"] = "pass"  # KCIDB wants PASS
    with pytest.raises(jsonschema.ValidationError):
        kcidb.validate(broken)
    broken = copy.deepcopy(doc)
    broken["builds"][0]["id"] = "no origin prefix"
    with pytest.raises(jsonschema.ValidationError):
        kcidb.validate(broken)


@pytest.mark.parametrize("name", NAMES)
def test_junit_parses_back_with_one_case_per_step_and_cell(name: str) -> None:
    rec = load(name)
    root = ET.fromstring(junit.render_junit(rec))
    suites = root.findall("testsuite")
    assert len(suites) == len(rec["steps"])
    for suite, step in zip(suites, rec["steps"], strict=True):
        names = [c.get("name") for c in suite.findall("testcase")]
        tests = [f"{t['suite']}/{t['case']}" for t in step["tests"]]
        assert names == ["apply", "build", "new-warnings", "boot", *tests, "splats"]
        for test in step["tests"]:
            case = suite.find(f"testcase[@name='{test['suite']}/{test['case']}']")
            assert (case.find("failure") is not None) == (test["status"] == "fail")
            assert (case.find("error") is not None) == (test["status"] == "error")
        build = suite.find("testcase[@name='build']")
        assert (build.find("failure") is not None) == (step["build"]["status"] == "fail")
        assert int(suite.get("tests")) == len(names)
    assert int(root.get("failures")) == sum(int(s.get("failures")) for s in suites)


def test_default_series_mail_says_fixed_and_offers_tested_by() -> None:
    text = mail.render_mail(load("default-series"))
    assert "Subject: [kpipe] vhost-scsi: log write descriptors for live migration (6.12) (v1)" \
        in text
    assert "Tested-by: kpipe <kpipe@localhost>" in text
    assert "Reported-by" not in text
    assert "fixed-by patch 3 [default]: vhost-scsi/io-bitmap fails at the base" in text
    assert "vhost-scsi/event-log     fail  patch 5       pass   pass" in text
    assert "also at the base: not introduced by the series" in text


def test_mixed_mail_reports_the_warning_and_the_broken_build() -> None:
    rec = load("mixed")
    text = mail.render_mail(rec)
    warning = next(w for s in rec["steps"] for w in s["build"]["warnings_new"])
    assert f"patch 2 [default]: {warning['file']}:{warning['line']}: " in text
    assert "Reported-by: kpipe <kpipe@localhost>" in text
    patch2 = rec["series"]["patches"][1]["msgid"]
    assert f"Closes: https://lore.kernel.org/all/{patch2}/" in text
    assert "Tested-by" not in text
    assert "drivers/vhost/scsi.c" in text.split("Build errors:")[1]


def test_reporter_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPIPE_REPORTER", "CI bot <ci@example.org>")
    assert "Tested-by: CI bot <ci@example.org>" in mail.render_mail(load("default-series"))


def test_hostile_subject_is_inert_in_markdown_and_junit() -> None:
    rec = load("hostile-subject")
    assert "<script>" in rec["series"]["patches"][0]["subject"]
    md = markdown.render_markdown(rec)
    assert "<script>" not in md and "<img" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    root = ET.fromstring(junit.render_junit(rec))
    patch = root.find("testsuite[2]/properties/property[@name='patch']")
    assert patch.get("value") == rec["series"]["patches"][0]["subject"]


@pytest.mark.parametrize("name", NAMES)
def test_verdicts_recomputed_from_the_steps_equal_the_recorded_ones(name: str) -> None:
    """Every real record's verdicts follow from its steps (an interrupted run's from the steps
    it reached), and a complete run's exit code from its verdicts and tip."""
    rec = load(name)
    assert verdicts.compute(rec["steps"]) == rec["verdicts"]
    if rec["status"] == "complete":
        assert verdicts.exit_code(rec) == rec["exit_code"]
    else:
        assert (rec["status"], rec["exit_code"]) == ("interrupted", 130)


@pytest.mark.parametrize("name", NAMES)
def test_a_bad_run_has_a_bad_verdict(name: str) -> None:
    """A record whose exit code is 1 (a bad badge) is explained by at least one bad verdict."""
    rec = load(name)
    if rec["exit_code"] == 1:
        assert summary.bad_verdicts(rec), f"{name}: bad badge, no verdict says why"


def test_a_test_failing_at_base_and_tip_is_fails_at_tip() -> None:
    """default-series with one fixed test failing again at the tip: no fixed-by for it, a
    fails-at-tip instead, and the run is bad."""
    rec = copy.deepcopy(load("default-series"))
    fixed = next(v for v in rec["verdicts"] if v["kind"] == "fixed-by")
    tip = max(rec["steps"], key=lambda s: s["index"])
    test = next(t for t in tip["tests"] if f"{t['suite']}/{t['case']}" == fixed["test"])
    test["status"] = "fail"
    found = verdicts.compute(rec["steps"])
    kinds = {v["kind"] for v in found if v["test"] == fixed["test"]}
    assert kinds == {"fails-at-tip"}
    rec["verdicts"] = found
    assert verdicts.exit_code(rec) == 1 and summary.bad_verdicts(rec)


def test_a_base_not_in_the_tree_says_what_to_pass() -> None:
    """rev2 as if its base-commit had not been in the tree (the base guessed as HEAD)."""
    rec = copy.deepcopy(load("rev2"))
    assert rec["series"]["base_commit"]
    for text in (markdown.render_markdown(rec), mail.render_mail(rec)):
        assert "--base-remote" not in text
    rec["base"]["rule"] = "head"
    page = html.render_run(rec, RECORDS / "rev2")
    for text in (markdown.render_markdown(rec), mail.render_mail(rec), page):
        assert "--base-remote URL" in text and "--tree DIR" in text
        assert rec["series"]["base_commit"][:12] in text


def test_conflict_mail_and_summary_name_the_file_and_hunks() -> None:
    rec = load("maintainer")
    for text in (markdown.render_markdown(rec), mail.render_mail(rec)):
        assert "does-not-apply-at" in text
        plain = text.replace("\\#", "#")  # Markdown escapes the hash
        assert "drivers/vhost/scsi.c: hunk #2 at lines" in plain and "hunk #4" in plain
        assert "hint:" not in text and "git am --skip" not in text


def test_a_flaky_case_shows_in_the_cell_mail_and_summary_and_fails_nothing() -> None:
    """default-series with one case at the tip flaky (failed, then passed on its re-run): the
    verdict is flaky, the run stays good, and the page, mail and summary all say flaky."""
    rec = copy.deepcopy(load("default-series"))
    tip = max(rec["steps"], key=lambda s: s["index"])
    test = tip["tests"][0]
    test["attempts"] = [{"attempt": 1, "status": "fail", "message": "", "log": test["log"]},
                        {"attempt": 2, "status": "pass", "message": "", "log": test["log"]}]
    verdicts.judge_attempts(test)
    assert test["status"] == "flaky"
    rec["verdicts"] = verdicts.compute(rec["steps"])
    rec["exit_code"] = verdicts.exit_code(rec)
    jsonschema.validate(rec, json.loads(record.SCHEMA_FILE.read_text()))
    name = f"{test['suite']}/{test['case']}"
    assert ("flaky", name) in {(v["kind"], v["test"]) for v in rec["verdicts"]}
    assert rec["exit_code"] == 0 and not summary.bad_verdicts(rec)
    page = html.render_run(rec, RECORDS / "default-series")
    assert 'data-status="flaky"' in page
    for text in (markdown.render_markdown(rec), mail.render_mail(rec)):
        assert "flaky" in text


def test_the_mail_puts_the_next_step_on_a_line_of_its_own() -> None:
    """A posted base-commit the tree lacks: the mail says what to run next, below the base."""
    rec = load("default-series")
    rec["series"]["base_commit"] = "b8de4257265c" + "0" * 28
    rec["base"]["rule"] = "blob-guess"
    lines = mail.render_mail(rec).splitlines()
    base = next(i for i, line in enumerate(lines) if line.startswith("base:"))
    assert lines[base].endswith("(rule: blob-guess)"), lines[base]
    assert lines[base + 1].startswith("next:      the posted base-commit b8de4257265c is not")
    rec["base"]["rule"] = "trailer"  # no next step: the series' link follows the base
    lines = mail.render_mail(rec).splitlines()
    base = next(i for i, line in enumerate(lines) if line.startswith("base:"))
    assert lines[base + 1].startswith("link:") and not any(line.startswith("next:")
                                                           for line in lines)
