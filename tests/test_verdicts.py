"""Verdicts and exit codes from step records (DESIGN.md's definitions)."""

from __future__ import annotations

from pipeline.record import verdicts


def _step(k: int, tests: dict[str, str] | None = None, apply: str = "applied",
          build: str = "pass", boot: str = "pass", warnings: int = 0,
          splats: list[dict] | None = None) -> dict:
    return {
        "index": k, "config": "default", "patch": k or None, "commit": "0" * 40,
        "apply": {"status": apply, "detail": ""},
        "build": {"status": build, "warnings_new": [
            {"file": "drivers/vhost/scsi.c", "line": 10 + i, "message": f"w{i}"}
            for i in range(warnings)]},
        "boot": {"status": boot},
        "tests": [{"suite": "s", "case": c, "status": st} for c, st in (tests or {}).items()],
        "splats": splats or [], "reused_from": None,
    }


def _kinds(steps: list[dict]) -> list[tuple[str, int]]:
    return [(v["kind"], v["step"]) for v in verdicts.compute(steps)]


def test_fixed_by_is_the_first_step_of_the_passing_tail() -> None:
    steps = [_step(0, {"a": "fail"}), _step(1, {"a": "fail"}), _step(2, {"a": "pass"}),
             _step(3, {"a": "pass"})]
    assert _kinds(steps) == [("fixed-by", 2)]
    assert verdicts.exit_code({"verdicts": verdicts.compute(steps), "steps": steps}) == 0


def test_regressed_and_broken() -> None:
    regressed = [_step(0, {"a": "pass"}), _step(1, {"a": "fail"}), _step(2, {"a": "fail"})]
    assert _kinds(regressed) == [("regressed-at", 1)]
    broken = [_step(0, {"a": "pass"}), _step(1, {"a": "fail"}), _step(2, {"a": "pass"})]
    assert _kinds(broken) == [("broken-at", 1)]
    assert verdicts.exit_code({"verdicts": verdicts.compute(broken), "steps": broken}) == 1


def test_not_bisectable_when_a_middle_step_fails_to_build() -> None:
    steps = [_step(0), _step(1, build="fail"), _step(2)]
    assert _kinds(steps) == [("not-bisectable-at", 1)]
    # when the tip fails too, it is no bisectability verdict but a failing tip: exit 1
    steps = [_step(0), _step(1, build="fail"), _step(2, build="fail")]
    assert _kinds(steps) == [("tip-fails", 2)]
    assert verdicts.exit_code({"verdicts": [], "steps": steps}) == 1


def test_new_warning_and_new_splat() -> None:
    splat = {"kind": "warning", "title": "WARNING at drivers/vhost/vhost.c:100", "test": "s/a"}
    steps = [_step(0), _step(1, warnings=2), _step(2, splats=[splat]), _step(3, splats=[splat])]
    assert _kinds(steps) == [("new-warning-at", 1), ("new-splat-at", 2)]


def test_a_splat_already_at_the_base_is_not_new() -> None:
    splat = {"kind": "warning", "title": "old", "test": None}
    steps = [_step(0, splats=[splat]), _step(1, splats=[splat])]
    assert _kinds(steps) == []


def test_conflict_makes_the_tip_fail() -> None:
    steps = [_step(0), _step(1, apply="conflict", build="blocked", boot="blocked"),
             _step(2, apply="blocked", build="blocked", boot="blocked")]
    assert verdicts.exit_code({"verdicts": verdicts.compute(steps), "steps": steps}) == 1


def test_clean_series_exits_zero() -> None:
    steps = [_step(0, {"a": "pass"}), _step(1, {"a": "pass"})]
    assert verdicts.exit_code({"verdicts": verdicts.compute(steps), "steps": steps}) == 0


def test_a_conflict_is_does_not_apply_at_the_first_conflicting_patch() -> None:
    steps = [_step(0), _step(1), _step(2, apply="conflict", build="blocked", boot="blocked"),
             _step(3, apply="blocked", build="blocked", boot="blocked")]
    steps[2]["apply"] |= {"files": ["drivers/vhost/scsi.c"],
                          "detail": "1 of 2 hunk(s) apply; failing: drivers/vhost/scsi.c: "
                                    "hunk #2 at lines 10-16"}
    found = verdicts.compute(steps)
    assert [(v["kind"], v["step"]) for v in found] == [("does-not-apply-at", 2)]
    assert "drivers/vhost/scsi.c" in found[0]["detail"] and "hunk #2" in found[0]["detail"]


def test_a_test_failing_at_base_and_tip_is_fails_at_tip() -> None:
    steps = [_step(0, {"a": "fail", "b": "fail"}), _step(1, {"a": "pass", "b": "fail"}),
             _step(2, {"a": "fail", "b": "pass"})]
    # a: fixed at 1 and failing again at the tip; b: fixed by 2
    assert _kinds(steps) == [("fails-at-tip", 2), ("fixed-by", 2)]
    rec = {"verdicts": verdicts.compute(steps), "steps": steps}
    assert verdicts.exit_code(rec) == 1


def test_the_failing_side_of_each_change_and_a_failing_tip_are_confirmed() -> None:
    steps = [_step(0, {"a": "pass", "b": "fail", "c": "fail"}),
             _step(1, {"a": "fail", "b": "fail", "c": "fail"}),
             _step(2, {"a": "fail", "b": "pass", "c": "fail"}),
             _step(3, {"a": "fail", "b": "pass", "c": "pass"})]
    todo = verdicts.to_confirm(steps, tip=3)
    # a: 0->1 (1 fails) and the tip; b: 1->2 (1 fails); c: 2->3 (2 fails)
    assert todo == {("default", 1): {"s/a", "s/b"}, ("default", 3): {"s/a"},
                    ("default", 2): {"s/c"}}
    # a shard that ran steps 1..2 alone cannot see 0 or 3: its failures at both ends decide
    shard = steps[1:3]
    assert verdicts.to_confirm(shard, tip=3) == {("default", 1): {"s/b"}}
    ends = frozenset({("default", 1), ("default", 2)})
    assert verdicts.to_confirm(shard, tip=3, open_ends=ends) == {
        ("default", 1): {"s/a", "s/b", "s/c"}, ("default", 2): {"s/a", "s/c"}}


def test_a_case_whose_attempts_disagree_is_flaky_and_never_a_regression() -> None:
    steps = [_step(0, {"a": "pass"}), _step(1, {"a": "fail"})]
    test = steps[1]["tests"][0]
    test["attempts"] = [{"attempt": 1, "status": "fail"}, {"attempt": 2, "status": "fail"}]
    verdicts.judge_attempts(test)
    assert test["status"] == "fail" and _kinds(steps) == [("regressed-at", 1)]
    assert verdicts.to_confirm(steps, tip=1) == {}  # confirmed once: never re-run again
    test["attempts"][1]["status"] = "pass"
    verdicts.judge_attempts(test)
    assert test["status"] == "flaky"
    assert _kinds(steps) == [("flaky", 1)]
    assert verdicts.exit_code({"verdicts": verdicts.compute(steps), "steps": steps}) == 0


def test_a_slow_suite_is_confirmed_only_where_it_decides() -> None:
    """A suite run at the base and the tip only (steps rule): the steps between are no side
    of a change, so only the failing tip is re-run."""
    left_out = {"status": "not-run", "message": verdicts.STEPS_RULE + ": slow suite"}
    steps = [_step(0, {"a": "pass"}), _step(1, {"a": "not-run"}), _step(2, {"a": "fail"})]
    steps[1]["tests"][0].update(left_out)
    assert verdicts.to_confirm(steps, tip=2) == {("default", 2): {"s/a"}}
    steps[2]["tests"][0]["status"] = "pass"
    steps[0]["tests"][0]["status"] = "fail"  # fails at the base, fixed within 1-2
    assert verdicts.to_confirm(steps, tip=2) == {("default", 0): {"s/a"}}
