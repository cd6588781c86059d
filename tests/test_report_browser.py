"""The viewer in headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

Reads the real records in tests/golden/records/; writes a reports dir under a tmp dir (the
records as runs, the viewer rendered by `kpipe report --format all`) and serves it with
`kpipe serve`; and 60 synthetic runs made from one (tests/synthetic_runs.py), served. Checks:
index and run pages load with no console error over file:// and HTTP, the matrix shows the
right status in the right cell, a patch subject with <script> and <img onerror> is text, the
served index pages and filters (series, outcome, tree), a failing cell shows the test's
history, and the two-revision comparison shows the difference.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
RECORDS = Path(__file__).parent / "golden" / "records"


def _run_id(name: str) -> str:
    return json.loads((RECORDS / name / "results.json").read_text())["run_id"]


@pytest.fixture(scope="session")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reports dir holding every golden record as a run, rendered with `kpipe report`."""
    root = tmp_path_factory.mktemp("viewer") / "reports"
    for rec_dir in sorted(p for p in RECORDS.iterdir() if (p / "results.json").exists()):
        shutil.copytree(rec_dir, root / "runs" / _run_id(rec_dir.name))
    for run in sorted((root / "runs").iterdir()):
        proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "report", str(run),
                               "--format", "all"], capture_output=True, text=True,
                              env=dict(os.environ, KPIPE_REPORTS=str(root)))
        assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(scope="session")
def server(reports: Path) -> Iterator[str]:
    """`kpipe serve --port 0` over the reports dir; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, KPIPE_REPORTS=str(reports)))
    try:
        line = proc.stdout.readline()
        assert line.startswith("kpipe viewer: http://127.0.0.1:"), line
        yield line.split()[2].rstrip("/")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup.sh --test installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Opened:
    """A page with the console errors, page errors and dialogs it produced."""

    def __init__(self, browser, url: str) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page = browser.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        response = self.page.goto(url)
        assert response is None or response.ok, f"{url}: HTTP {response.status}"
        self.page.wait_for_load_state("load")

    def cell(self, step: int, col: str, config: str = "default"):
        return self.page.locator(
            f'table.matrix[data-config="{config}"] td[data-step="{step}"][data-col="{col}"]')


@pytest.fixture(params=["file", "http"])
def base_url(request: pytest.FixtureRequest, reports: Path) -> str:
    if request.param == "file":
        return reports.as_uri()
    return request.getfixturevalue("server")


def test_index_and_every_run_page_load_without_console_errors(browser, base_url: str,
                                                              reports: Path) -> None:
    index = Opened(browser, f"{base_url}/index.html")
    rows = index.page.locator("#runs tr.run")
    run_ids = sorted(p.name for p in (reports / "runs").iterdir())
    assert rows.count() == len(run_ids)
    assert index.errors == []
    for run_id in run_ids:
        page = Opened(browser, f"{base_url}/runs/{run_id}/report.html")
        assert page.errors == [], run_id
        assert page.page.locator("table.matrix").count() >= 1
        assert run_id in page.page.locator("body").inner_text()
        page.page.close()
    index.page.close()


def test_default_series_matrix_shows_each_status_in_its_cell(browser, reports: Path) -> None:
    run = Opened(browser, f"{reports.as_uri()}/runs/{_run_id('default-series')}/report.html")
    expect = {(0, "vhost-scsi/io-bitmap"): "fail", (2, "vhost-scsi/io-bitmap"): "fail",
              (3, "vhost-scsi/io-bitmap"): "pass", (3, "vhost-scsi/ctrl-log"): "fail",
              (4, "vhost-scsi/ctrl-log"): "pass", (4, "vhost-scsi/event-log"): "fail",
              (5, "vhost-scsi/event-log"): "pass", (6, "smoke/lio_configfs"): "pass",
              (0, "build"): "pass", (6, "boot"): "pass", (1, "apply"): "applied",
              (0, "splats"): "known"}
    for (step, col), status in expect.items():
        cell = run.cell(step, col)
        assert cell.count() == 1, (step, col)
        assert cell.get_attribute("data-status") == status, (step, col)
        text = cell.inner_text().strip().splitlines()[0]  # a failing test's history follows
        assert text == {"known": "1"}.get(status, status), (step, col)
    fail_bg = run.cell(0, "vhost-scsi/io-bitmap").evaluate("e => getComputedStyle(e).background")
    pass_bg = run.cell(3, "vhost-scsi/io-bitmap").evaluate("e => getComputedStyle(e).background")
    assert fail_bg != pass_bg
    verdicts = run.page.locator("#verdicts li").all_inner_texts()
    assert len(verdicts) == 6 and all(v.startswith("fixed-by") for v in verdicts)
    link = run.cell(3, "vhost-scsi/io-bitmap").locator("a").get_attribute("href")
    assert link == "steps/default/3/boot/tests/vhost-scsi/io-bitmap.log"


def test_mixed_series_matrix_shows_warning_and_broken_build(browser, reports: Path) -> None:
    rec = json.loads((RECORDS / "mixed" / "results.json").read_text())
    run = Opened(browser, f"{reports.as_uri()}/runs/{rec['run_id']}/report.html")
    for step in rec["steps"]:
        k = step["index"]
        assert run.cell(k, "build").get_attribute("data-status") == step["build"]["status"]
        assert run.cell(k, "apply").get_attribute("data-status") == step["apply"]["status"]
        n_new = len(step["build"]["warnings_new"])
        assert run.cell(k, "warnings").inner_text().strip() == str(n_new), k
    assert run.cell(2, "warnings").get_attribute("data-status") == "fail"
    assert run.cell(3, "build").get_attribute("data-status") == "fail"
    assert run.page.locator("#warnings li").count() >= 1
    assert "touches Kconfig" in run.page.locator("table.matrix tr[data-step='5']").inner_text()
    assert run.errors == []


def test_hostile_subject_renders_as_text(browser, base_url: str) -> None:
    rec = json.loads((RECORDS / "hostile-subject" / "results.json").read_text())
    subject = rec["series"]["patches"][0]["subject"]
    assert "<script>" in subject and "onerror" in subject
    run = Opened(browser, f"{base_url}/runs/{rec['run_id']}/report.html")
    assert run.page.locator("script").count() == 0
    assert run.page.locator("img").count() == 0
    assert subject in run.page.locator("table.matrix tr[data-step='1']").inner_text()
    assert run.page.locator("#title").inner_text().startswith(
        rec["series"]["subject"].split("<")[0])
    assert run.dialogs == [] and run.errors == []
    index = Opened(browser, f"{base_url}/index.html")
    assert index.page.locator("img").count() == 0
    assert index.page.locator("script").count() == 2  # the viewer's own: pair list, filters
    series = index.page.locator(f"#runs tr[data-run='{rec['run_id']}'] td").nth(2)
    assert series.inner_text() == rec["series"]["subject"]
    assert index.dialogs == [] and index.errors == []


def test_index_filters_by_series_and_outcome(browser, server: str, reports: Path) -> None:
    rev = json.loads((RECORDS / "rev1" / "results.json").read_text())["series"]["subject"]
    index = Opened(browser, f"{server}/index.html")
    rows = index.page.locator("#runs tr.run")
    total = rows.count()
    index.page.select_option("#f-series", rev)
    index.page.click("#f-go")
    index.page.wait_for_url("**series=*")
    assert rows.count() == 2
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.series)")) == {rev}
    index.page.select_option("#f-outcome", "bad")
    index.page.click("#f-go")
    index.page.wait_for_url("**outcome=bad*")
    assert rows.count() == 1  # v1 adds a warning, v2 does not
    assert rows.first.get_attribute("data-run") == _run_id("rev1")
    index.page.select_option("#f-series", "")
    index.page.select_option("#f-outcome", "")
    index.page.click("#f-go")
    index.page.wait_for_load_state("load")
    assert rows.count() == total
    assert index.errors == []
    offline = Opened(browser, f"{reports.as_uri()}/index.html")
    assert "kpipe serve" in offline.page.locator("#f-note").inner_text()
    assert offline.errors == []


@pytest.fixture(scope="session")
def long_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`kpipe serve` over 60 synthetic runs of the default series (every 5th fails its tests);
    yields its base URL."""
    sys.path.insert(0, str(Path(__file__).parent))
    import synthetic_runs

    root = tmp_path_factory.mktemp("history") / "reports"
    synthetic_runs.make_runs(root, 60, flaky=5)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, KPIPE_REPORTS=str(root)))
    try:
        yield proc.stdout.readline().split()[2].rstrip("/")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_index_pages_and_filters_a_long_history(browser, long_history: str) -> None:
    import synthetic_runs

    index = Opened(browser, f"{long_history}/index.html")
    rows = index.page.locator("#runs tr.run")
    assert rows.count() == 50
    assert rows.first.get_attribute("data-run") == synthetic_runs.run_id(59)
    index.page.click("#older")
    index.page.wait_for_url("**page=2*")
    assert [r for r in rows.evaluate_all("rows => rows.map(r => r.dataset.run)")] == \
        [synthetic_runs.run_id(i) for i in range(9, -1, -1)]
    assert index.page.locator("#older").count() == 0
    index.page.select_option("#f-tree", "debian-6.12.117")
    index.page.select_option("#f-outcome", "infrastructure error")  # runs 3, 7, 11 ... 59
    index.page.click("#f-go")
    index.page.wait_for_url("**outcome=*")
    assert rows.count() == 15 and index.page.locator("#older").count() == 0
    assert index.errors == []


def test_a_failing_cell_shows_the_tests_history(browser, long_history: str) -> None:
    import synthetic_runs

    run = Opened(browser, f"{long_history}/runs/{synthetic_runs.run_id(50)}/report.html")
    failing = run.page.locator("table.matrix td.st[data-status='fail'] .history")
    assert failing.count() > 0
    assert set(failing.all_inner_texts()) == {"failed 4 of the last 20 runs on this tree"}
    assert run.errors == []


def _check_revision_compare(page) -> None:
    diff = page.locator("#diffs tr.diff[data-what='new warnings'][data-step='2']")
    assert diff.count() == 1
    cells = diff.locator("td.st")
    assert cells.nth(0).get_attribute("data-status") == "fail"
    assert cells.nth(0).inner_text().strip() == "1"
    assert cells.nth(1).get_attribute("data-status") == "pass"
    assert cells.nth(1).inner_text().strip() == "0"
    only = page.locator("#verdict-diffs li").all_inner_texts()
    assert any(t.startswith("only in A: new-warning-at patch 2") for t in only), only
    assert page.locator(".side-matrix table.matrix").count() == 2


def test_compare_two_revisions_shows_the_new_warning(browser, base_url: str) -> None:
    index = Opened(browser, f"{base_url}/index.html")
    row = index.page.locator(f"#runs tr[data-run='{_run_id('rev2')}']")
    row.locator("a.compare-prev").click()
    index.page.wait_for_load_state("load")
    assert index.page.url.endswith(f"/compare/{_run_id('rev1')}..{_run_id('rev2')}.html")
    _check_revision_compare(index.page)
    assert index.errors == []


def test_compare_a_rerun_shows_no_difference(browser, base_url: str) -> None:
    index = Opened(browser, f"{base_url}/index.html")
    index.page.locator(f"#runs tr[data-run='{_run_id('mixed-rerun')}'] a.compare-prev").click()
    index.page.wait_for_load_state("load")
    assert index.page.url.endswith(f"/compare/{_run_id('mixed')}..{_run_id('mixed-rerun')}.html")
    assert index.page.locator("#diffs").inner_text().startswith("No difference")
    assert index.page.locator("#verdict-diffs").count() == 0
    assert index.errors == []


def test_served_viewer_compares_any_pair_on_demand(browser, server: str) -> None:
    a, b = _run_id("default-series"), _run_id("mixed")
    index = Opened(browser, f"{server}/index.html")
    index.page.select_option("#c-a", a)
    index.page.select_option("#c-b", b)
    index.page.click("#c-go")
    index.page.wait_for_url(f"**/compare/{min(a, b)}..{max(a, b)}.html")
    assert index.page.locator("#diffs tr.diff").count() > 0
    assert index.errors == []
    rev = Opened(browser, f"{server}/compare/{_run_id('rev1')}..{_run_id('rev2')}.html")
    _check_revision_compare(rev.page)


def test_maintainer_series_page_names_the_conflict(browser, reports: Path) -> None:
    """Patches 1-2 already in the tree together, 3 applied, 4 conflicting in two of five hunks."""
    rec = json.loads((RECORDS / "maintainer" / "results.json").read_text())
    run = Opened(browser, f"{reports.as_uri()}/runs/{rec['run_id']}/report.html")
    statuses = [run.cell(k, "apply").get_attribute("data-status") for k in range(1, 5)]
    assert statuses == ["already-present", "already-present", "applied", "conflict"]
    title = run.cell(4, "apply").get_attribute("title")
    assert "drivers/vhost/scsi.c: hunk #2 at lines" in title and "3 of 5 hunk(s)" in title
    verdicts = run.page.locator("#verdicts li").all_inner_texts()
    conflict = [v for v in verdicts if v.startswith("does-not-apply-at")]
    assert len(conflict) == 1 and "hunk #4" in conflict[0], verdicts
    assert "together with patches 1..2" in run.cell(1, "apply").get_attribute("title")
    assert run.errors == []
