"""Step reuse keys: every input that changes a step's result changes its key."""

from __future__ import annotations

from pathlib import Path

from pipeline.record import keys as steps


def test_key_depends_on_every_input() -> None:
    extra = {"boot": False, "suites": {}, "config_name": "default"}
    key = steps.step_key("a" * 40, [], "hash1", extra)
    assert key == steps.step_key("a" * 40, [], "hash1", dict(extra))
    assert key != steps.step_key("a" * 40, [], "hash2", extra)  # another config content
    assert key != steps.step_key("b" * 40, [], "hash1", extra)
    assert key != steps.step_key("a" * 40, ["p1"], "hash1", extra)
    assert key != steps.step_key("a" * 40, [], "hash1", {**extra, "boot": True})
    assert key != steps.step_key("a" * 40, [], "hash1", {**extra, "config_name": "kasan"})
    # extra keys never override the config hash
    assert key != steps.step_key("a" * 40, [], "hash2", {**extra, "config_hash": "hash1"})


def test_content_hash_moves_with_the_content_not_the_place(tmp_path, monkeypatch) -> None:
    """A copy of configs/ hashes the same; one line of the allow list changes the result
    inputs but not the build inputs."""
    import shutil

    from pipeline import paths

    copy = tmp_path / "configs"
    shutil.copytree(paths.CONFIGS_DIR, copy)
    vng = Path(paths.PROJECT_ROOT / ".venv" / "bin" / "vng")
    before, build_before = steps.result_inputs(vng), steps.build_inputs()
    monkeypatch.setattr(paths, "CONFIGS_DIR", copy)
    assert steps.result_inputs(vng) == before
    allow = copy / "splats" / "allow.txt"
    allow.write_text(allow.read_text() + "warning kpipe-test-only # a test's own line\n")
    changed = steps.result_inputs(vng)
    assert changed["configs"] != before["configs"]
    assert {k: v for k, v in changed.items() if k != "configs"} == {
        k: v for k, v in before.items() if k != "configs"}
    assert steps.build_inputs() == build_before
    assert before["qemu"].startswith("QEMU emulator version")
    assert before["vng"].startswith("virtme-ng")


def test_code_hashes_cover_the_runner_and_the_judges_not_the_renderers() -> None:
    names = {p.split("/")[0] for p in steps.RESULT_CODE}
    assert {"boot", "record", "build", "run", "intake"} <= names
    assert "report" not in names
    assert (steps.CODE / "record" / "verdicts.py").is_file()


def test_a_timed_out_boot_is_never_reused(tmp_path) -> None:
    """Two earlier runs of one step (synthetic copies of a real record): the look-up takes the
    newer, unless its boot timed out; its build stays reusable by the build key."""
    import json

    import synthetic_runs

    from pipeline import paths

    reports = Path(paths.reports_dir())
    synthetic_runs.make_runs(reports, 2)
    runs = [reports / "runs" / synthetic_runs.run_id(i) for i in range(2)]
    recs = [json.loads((r / "results.json").read_text()) for r in runs]
    for rec in recs:
        rec["steps"][0]["key"], rec["steps"][0]["build_key"] = "k" * 24, "b" * 24
    assert recs[1]["steps"][0]["boot"]["status"] == "pass"
    (runs[0] / "results.json").write_text(json.dumps(recs[0]))
    (runs[1] / "results.json").write_text(json.dumps(recs[1]))
    assert steps.find_reusable("k" * 24, "none")[0] == runs[1].name
    recs[1]["steps"][0]["boot"]["attempts"][-1]["reason"] = "run-timeout"
    (runs[1] / "results.json").write_text(json.dumps(recs[1]))
    assert steps.find_reusable("k" * 24, "none") is None
    assert steps.find_reusable_scan("k" * 24, "none")[0] == runs[1].name  # the raw look-up
    assert steps.find_reusable("b" * 24, "none", "build_key")[0] == runs[1].name
    retried = {"boot": {"attempts": [{"reason": "boot-timeout"}, {"reason": "ok"}]}}
    assert not steps.timed_out(retried)  # retried and booted: a valid result


def test_a_boot_cut_short_is_never_reused_but_its_build_is(tmp_path) -> None:
    """A step whose boot a Ctrl-C cut short (or never started: the boot worker had it queued)
    is built but not booted: a later run takes its build by the build key and boots it."""
    import json

    import synthetic_runs

    from pipeline import paths
    from pipeline.run import boot_steps

    reports = Path(paths.reports_dir())
    synthetic_runs.make_runs(reports, 1)
    run = reports / "runs" / synthetic_runs.run_id(0)
    rec = json.loads((run / "results.json").read_text())
    rec["steps"][0]["key"], rec["steps"][0]["build_key"] = "k" * 24, "b" * 24
    (run / "results.json").write_text(json.dumps(rec))
    assert steps.find_reusable("k" * 24, "none")[0] == run.name
    rec["steps"][0]["boot"] = boot_steps.not_booted(boot_steps.KILLED)
    (run / "results.json").write_text(json.dumps(rec))
    assert steps.find_reusable("k" * 24, "none") is None
    assert steps.find_reusable("b" * 24, "none", "build_key")[0] == run.name
