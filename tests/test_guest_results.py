"""A finished guest's results (pipeline.boot.step.collect_tests): each program's KTAP, its
timings from the runner's events, a timeout, a guest that died and a splat in a case's window,
read from a guest results directory written here, with no boot.
"""

from __future__ import annotations

import json
from pathlib import Path


def _guest(tmp_path: Path, ktap_text: str, events: list[dict], suite_name: str = "s"):
    from pipeline.boot import suites as suitemod

    sdir = tmp_path / "suites" / suite_name
    sdir.mkdir(parents=True)
    prog = sdir / "t.sh"
    prog.write_text("#!/bin/sh\n")
    prog.chmod(0o755)
    (sdir / "suite.toml").write_text(f'name = "{suite_name}"\nrequires = []\n'
                                     '[[program]]\npath = "t.sh"\ntimeout = 5\n')
    rw = tmp_path / "guest-1"
    (rw / "out" / suite_name).mkdir(parents=True)
    (rw / "out" / suite_name / "t.sh.ktap").write_text(ktap_text)
    (rw / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return suitemod.load_suite(suite_name, tmp_path / "suites"), rw


def _collect(tmp_path, ktap_text, events, log_text="", detail="guest died"):
    from pipeline.boot import splats
    from pipeline.boot import step as bootstep

    suite, rw = _guest(tmp_path, ktap_text, events)
    allow = tmp_path / "allow.txt"
    allow.write_text("warning in never_matches # test allow list\n")
    found = splats.scan(log_text, splats.load_patterns(allow=allow))
    tests, names = bootstep.collect_tests([suite], {"s": []}, rw, found, log_text, tmp_path,
                                          detail)
    return {t["case"]: t for t in tests}, found, names


START = [{"t": 0, "event": "program-start", "suite": "s", "program": "t.sh"}]


def test_complete_program_results_and_timings(tmp_path):
    ev = START + [{"t": 1, "event": "case-start", "suite": "s", "program": "t.sh", "case": 1},
                  {"t": 3.5, "event": "case-end", "suite": "s", "program": "t.sh", "case": 1},
                  {"t": 4, "event": "program-end", "suite": "s", "program": "t.sh", "rc": 1}]
    cases, _, _ = _collect(tmp_path, "KTAP version 1\n1..1\nnot ok 1 a # broke\n", ev)
    assert cases["a"]["status"] == "fail" and cases["a"]["message"] == "broke"
    assert cases["a"]["seconds"] == 2.5


def test_skip_when_prerequisites_are_met_is_an_error(tmp_path):
    ev = START + [{"t": 4, "event": "program-end", "suite": "s", "program": "t.sh", "rc": 0}]
    cases, _, _ = _collect(tmp_path, "KTAP version 1\n1..1\nok 1 a # SKIP no device\n", ev)
    assert cases["a"]["status"] == "error" and "no device" in cases["a"]["message"]


def test_program_without_plan_is_an_error(tmp_path):
    ev = START + [{"t": 4, "event": "program-end", "suite": "s", "program": "t.sh", "rc": 139}]
    cases, _, _ = _collect(tmp_path, "Segmentation fault\n", ev)
    assert list(cases) == ["t.sh"]
    assert cases["t.sh"]["status"] == "error" and "rc 139" in cases["t.sh"]["message"]


def test_timeout_fails_the_running_case_and_skips_the_rest(tmp_path):
    ev = START + [{"t": 9, "event": "program-end", "suite": "s", "program": "t.sh", "rc": -9,
                   "timed_out": True}]
    cases, _, _ = _collect(tmp_path, "KTAP version 1\n1..3\nok 1 a\n# waiting\n", ev)
    assert cases["a"]["status"] == "pass"
    assert cases["t.sh#2"]["status"] == "fail" and "timed out" in cases["t.sh#2"]["message"]
    assert cases["t.sh#3"]["status"] == "not-run"


def test_guest_death_attributes_the_panic_to_the_running_case(tmp_path):
    log = ("[    5.000000] kpipe: case s/1 start prog=t.sh\n"
           "[    6.000000] kpipe: case s/2 start prog=t.sh\n"
           "[    7.000000] Kernel panic - not syncing: dumptest\n"
           "[    7.100000] ---[ end Kernel panic - not syncing: dumptest ]---\n")
    cases, found, names = _collect(tmp_path, "KTAP version 1\n1..3\nok 1 a\n", START, log)
    assert cases["a"]["status"] == "pass" and cases["a"]["splats"] == []
    hit = cases["t.sh#2"]
    assert hit["status"] == "fail" and hit["splats"][0]["kind"] == "panic"
    assert hit["splats"][0]["test"] == "s/t.sh#2"
    assert cases["t.sh#3"]["status"] == "not-run"
    assert names[("s", "t.sh", 2)] == "s/t.sh#2"
    assert "Kernel panic" in (tmp_path / hit["log"]).read_text()


def test_splat_in_window_fails_a_passing_case(tmp_path):
    log = ("[    5.000000] kpipe: case s/1 start prog=t.sh\n"
           "[    5.500000] WARNING: CPU: 0 PID: 9 at a.c:1 f+0x1/0x2\n"
           "[    5.600000] ---[ end trace 0000000000000000 ]---\n"
           "[    6.000000] kpipe: case s/2 start prog=t.sh\n"
           "[    7.000000] kpipe: program s/t.sh end rc=0\n")
    ev = START + [{"t": 4, "event": "program-end", "suite": "s", "program": "t.sh", "rc": 0}]
    cases, _, _ = _collect(tmp_path, "KTAP version 1\n1..2\nok 1 a\nok 2 b\n", ev, log)
    assert cases["a"]["status"] == "fail" and "splat: WARNING in f" in cases["a"]["message"]
    assert cases["b"]["status"] == "pass"
