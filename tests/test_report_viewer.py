"""The viewer without a browser: comparisons, pairing of runs, the index, and `kpipe serve`.

Reads the real records in tests/golden/records/; writes a reports dir under the test's tmp dir.
"""

from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipeline.report import compare, serve, viewer

RECORDS = Path(__file__).parent / "golden" / "records"


def load(name: str) -> dict:
    return json.loads((RECORDS / name / "results.json").read_text())


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    root = tmp_path / "reports"
    for rec_dir in RECORDS.iterdir():
        if (rec_dir / "results.json").exists():
            shutil.copytree(rec_dir, root / "runs" / load(rec_dir.name)["run_id"])
    return root


def test_two_revisions_differ_in_the_warning_of_patch_2() -> None:
    diffs = compare.differences(load("rev1"), load("rev2"))
    warn = [d for d in diffs if d.what == "new warnings"]
    assert [(d.index, d.a.status, d.a.text, d.b.status, d.b.text) for d in warn] == \
        [(2, "fail", "1", "pass", "0")]
    only_v1 = compare.verdicts_only_in(load("rev1"), load("rev2"))
    assert [(v["kind"], v["step"]) for v in only_v1] == [("new-warning-at", 2)]
    assert compare.verdicts_only_in(load("rev2"), load("rev1")) == []


def test_a_run_compared_with_itself_has_no_difference() -> None:
    rec = load("default-series")
    assert compare.differences(rec, rec) == []
    assert compare.verdicts_only_in(rec, rec) == []


def test_a_rerun_reusing_every_step_has_no_difference() -> None:
    assert compare.differences(load("mixed"), load("mixed-rerun")) == []
    assert compare.verdicts_only_in(load("mixed"), load("mixed-rerun")) == []


def test_pairs_are_runs_of_the_same_series(reports: Path) -> None:
    runs = viewer.load_runs(reports)
    names = ("default-series", "kasan-interrupted", "mixed", "mixed-rerun", "rev1", "rev2")
    ids = {name: load(name)["run_id"] for name in names}
    assert sorted((a.id, b.id) for a, b in viewer.pairs(runs)) == sorted(
        [(ids["default-series"], ids["kasan-interrupted"]), (ids["mixed"], ids["mixed-rerun"]),
         (ids["rev1"], ids["rev2"])])


def test_write_viewer_lists_every_run_and_prerenders_the_pair(reports: Path) -> None:
    index = viewer.write_viewer(reports).read_text()
    for run in (reports / "runs").iterdir():
        assert f'data-run="{run.name}"' in index
        assert (run / "report.html").exists()
    pair = viewer.compare_name(load("rev1")["run_id"], load("rev2")["run_id"])
    page = (reports / "compare" / pair).read_text()
    assert 'data-what="new warnings"' in page
    assert "only in A: <b>new-warning-at</b> patch 2" in page
    assert "&lt;b&gt;hostile&lt;/b&gt;" in index and "<b>hostile" not in index


def test_serve_binds_loopback_and_renders_on_demand(reports: Path) -> None:
    server = serve.make_server(reports, 0)
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://{host}:{port}"
    try:
        with urllib.request.urlopen(f"{base}/") as resp:
            body = resp.read().decode()
        assert all(f'data-run="{r.name}"' in body for r in (reports / "runs").iterdir())
        a, b = sorted([load("default-series")["run_id"], load("mixed")["run_id"]])
        assert not (reports / "compare" / viewer.compare_name(a, b)).exists()
        with urllib.request.urlopen(f"{base}/compare/{viewer.compare_name(a, b)}") as resp:
            assert resp.status == 200 and "tr class=\"diff\"" in resp.read().decode()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/compare/20990101-000000-0000..20990101-000000-0001.html")
        assert err.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
