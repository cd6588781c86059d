"""The suite.toml `steps` rule and `memory_mb`: where a slow suite runs, what the record says
at the steps it leaves out, the verdicts that name a narrowed range, and the guest memory a
boot asks for.

Reads suite definitions written to tmp_path and hand-built step records; writes nothing else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.boot import suites as suitemod
from pipeline.options import RunOptions
from pipeline.record import keys, verdicts
from pipeline.run import boot_steps


def _suite(root: Path, name: str, extra: str = "") -> suitemod.Suite:
    sdir = root / name
    sdir.mkdir(parents=True)
    prog = sdir / "t.sh"
    prog.write_text("#!/bin/sh\n")
    prog.chmod(0o755)
    (sdir / "suite.toml").write_text(f'name = "{name}"\n{extra}\n'
                                     '[[program]]\npath = "t.sh"\ntimeout = 5\n')
    return suitemod.load_suite(name, root)


def test_suite_toml_reads_steps_and_memory(tmp_path: Path) -> None:
    plain = _suite(tmp_path, "plain")
    assert (plain.steps, plain.memory_mb) == ("all", None)
    slow = _suite(tmp_path, "slow", 'steps = "ends"\nmemory_mb = 2048')
    assert (slow.steps, slow.memory_mb) == ("ends", 2048)
    for bad in ('steps = "some"', "memory_mb = 64", 'memory_mb = "2G"'):
        with pytest.raises(suitemod.SuiteError):
            _suite(tmp_path / bad.split()[0] / str(len(bad)), "bad", bad)


def test_a_slow_suite_runs_at_the_base_and_the_tip_unless_told_all(tmp_path: Path) -> None:
    plain = _suite(tmp_path, "plain")
    slow = _suite(tmp_path, "slow", 'steps = "ends"')
    assert [k for k in range(7) if suitemod.runs_at(slow, k, 6)] == [0, 6]
    assert [k for k in range(7) if suitemod.runs_at(slow, k, 6, "all")] == list(range(7))
    assert [k for k in range(7) if suitemod.runs_at(plain, k, 6)] == list(range(7))


def test_guest_memory_is_the_largest_asked_for(tmp_path: Path) -> None:
    plain = _suite(tmp_path, "plain")
    big = _suite(tmp_path, "big", "memory_mb = 2048")
    assert suitemod.guest_memory([plain], 1024) == 1024
    assert suitemod.guest_memory([plain, big], 1024) == 2048
    assert boot_steps.boot_settings("default", [plain, big]).memory_mb == 2048
    assert boot_steps.boot_settings("default", [plain]).memory_mb == 1024


def test_left_out_cases_are_not_run_by_the_steps_rule(tmp_path: Path) -> None:
    slow = _suite(tmp_path, "slow", 'steps = "ends"')
    base = {"index": 0, "config": "default",
            "tests": [{"suite": "slow", "case": "migrate", "status": "fail"},
                      {"suite": "other", "case": "x", "status": "pass"}]}
    step = {"index": 3, "config": "default"}
    out = boot_steps.left_out_tests({"steps": [base]}, step, [slow])
    assert [(t["suite"], t["case"], t["status"]) for t in out] == [("slow", "migrate", "not-run")]
    assert out[0]["message"].startswith("not-run (steps rule)")
    # without the base (a shard that starts later) the program stands for its cases
    assert [t["case"] for t in boot_steps.left_out_tests({"steps": []}, step, [slow])] == ["t.sh"]


def _step(k: int, status: str) -> dict:
    message = "not-run (steps rule): suite slow runs at the base and the tip only"
    test = {"suite": "slow", "case": "migrate", "status": status,
            "message": message if status == "not-run" else ""}
    return {"index": k, "config": "default", "patch": k or None, "commit": "0" * 40,
            "apply": {"status": "applied", "detail": ""}, "build": {"status": "pass"},
            "boot": {"status": "pass"}, "tests": [test], "splats": [], "reused_from": None}


def test_verdicts_name_the_range_the_steps_rule_left() -> None:
    steps = [_step(0, "fail")] + [_step(k, "not-run") for k in range(1, 6)] + [_step(6, "pass")]
    (verdict,) = verdicts.compute(steps)
    assert (verdict["kind"], verdict["step"], verdict["range"]) == ("fixed-by", 6, [1, 6])
    assert "fixed within patches 1\u20136" in verdict["detail"]
    assert verdicts.exit_code({"verdicts": [verdict], "steps": steps}) == 0
    steps = [_step(0, "pass")] + [_step(k, "not-run") for k in range(1, 6)] + [_step(6, "fail")]
    (verdict,) = verdicts.compute(steps)
    assert (verdict["kind"], verdict["range"]) == ("regressed-at", [1, 6])
    assert "breaks within patches 1\u20136" in verdict["detail"]
    # run everywhere (--slow-steps all), the verdict names one patch again
    steps = [_step(0, "fail"), _step(1, "fail"), _step(2, "pass"), _step(3, "pass")]
    (verdict,) = verdicts.compute(steps)
    assert (verdict["step"], "range" in verdict) == (2, False)
    assert "passes from patch 2 on" in verdict["detail"]


def test_a_not_run_test_that_is_no_steps_rule_is_still_no_pass() -> None:
    steps = [_step(0, "fail"), _step(1, "pass"), _step(2, "pass")]
    steps[1]["tests"][0] |= {"status": "not-run", "message": "never started: guest died"}
    assert [(v["kind"], v["step"]) for v in verdicts.compute(steps)] == [("fixed-by", 2)]


def test_slow_steps_and_memory_are_in_the_key_and_the_plan() -> None:
    extra = {"boot": True, "suites": {}, "config_name": "default"}
    key = keys.step_key("a" * 40, [], "h", extra | keys.boot_key(None, "ends"))
    assert key != keys.step_key("a" * 40, [], "h", extra | keys.boot_key(None, "all"))
    assert key != keys.step_key("a" * 40, [], "h", extra | keys.boot_key(2048, "ends"))
    plan = {"options": {"configs": ["default"], "fragments": [], "boot": True, "suites": []}}
    assert RunOptions.from_plan(plan).slow_steps == "ends"
    plan["options"]["slow_steps"] = "all"
    assert RunOptions.from_plan(plan).slow_steps == "all"
