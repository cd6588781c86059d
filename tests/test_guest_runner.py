"""The guest runner (virtme-tests/runner.py) run on the host with a plan of its own: a Python
program runs in a fork of the runner's interpreter as `python3 PATH` would run it, any other
program is exec'ed, and both keep their output, exit code and timeout.

The runner runs here under the interpreter the guest uses (pipeline/boot/step.py GUEST_PYTHON,
with -I -S); only what needs the guest (/dev/kmsg markers, kmemleak) is left out of the plan
or fails softly on the host.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pipeline.boot import step as bootstep

PY = """#!/usr/bin/env python3
import atexit, os, sys, threading, time
import helper
atexit.register(lambda: print("# atexit ran", flush=True))
threading.Thread(target=lambda: (time.sleep(0.2), print("# thread done", flush=True))).start()
print("KTAP version 1")
print("1..2")
print(f"ok 1 name={__name__} argv0={os.path.basename(sys.argv[0])} cwd={os.getcwd()} "
      f"helper={helper.X} suite={os.environ.get('KPIPE_SUITE')} "
      f"attempt={os.environ.get('KPIPE_ATTEMPT')} stdin={sys.stdin.read()!r}")
print("not ok 2 second", flush=True)
print("to stderr", file=sys.stderr)
sys.exit(3)
"""
RAISES = "#!/usr/bin/python3\nprint('KTAP version 1\\n1..1')\nraise RuntimeError('boom')\n"
SLEEPS = "#!/usr/bin/python3 -IS\nimport time\nprint('KTAP version 1\\n1..1', flush=True)\n" \
         "time.sleep(100)\n"
SHELL = "#!/bin/sh\necho 'KTAP version 1'; echo '1..1'; echo \"ok 1 sh pid=$$\"\n"


def _run(tmp_path: Path) -> tuple[dict, Path]:
    suite = tmp_path / "s"
    suite.mkdir()
    (suite / "helper.py").write_text("X = 42\n")
    progs = {"p.py": PY, "raises.py": RAISES, "sleeps.py": SLEEPS, "t.sh": SHELL}
    for name, text in progs.items():
        (suite / name).write_text(text)
        (suite / name).chmod(0o755)
    timeouts = {"sleeps.py": 2}
    res = tmp_path / "res"
    res.mkdir()
    plan = {"env": {}, "attempt": 2, "kmemleak": False, "markers": False, "suites": [{
        "name": "s", "dir": str(suite),
        "programs": [{"rel": n, "path": str(suite / n), "timeout": timeouts.get(n, 30)}
                     for n in progs]}]}
    (res / "plan.json").write_text(json.dumps(plan))
    proc = subprocess.run([str(bootstep.GUEST_PYTHON), "-I", "-S", str(bootstep.RUNNER),
                           "--plan", str(res / "plan.json")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((res / "results.json").read_text())
    return {p["program"]: p for p in results["programs"]}, res


def test_python_and_shell_programs_keep_output_exit_code_and_timeout(tmp_path: Path) -> None:
    progs, res = _run(tmp_path)
    assert [(n, p["rc"], p["timed_out"]) for n, p in progs.items()] == [
        ("p.py", 3, False), ("raises.py", 1, False), ("sleeps.py", -9, True), ("t.sh", 0, False)]
    out = (res / progs["p.py"]["ktap"]).read_text()
    suite = tmp_path / "s"
    assert (f"ok 1 name=__main__ argv0=p.py cwd={suite} helper=42 suite=s attempt=2 stdin=''\n"
            "not ok 2 second\n") in out
    # the interpreter's exit: non-daemon threads joined, then the atexit functions
    assert out.endswith("# thread done\n# atexit ran\n")
    assert (res / progs["p.py"]["stderr"]).read_text() == "to stderr\n"
    raised = (res / progs["raises.py"]["stderr"]).read_text()
    assert "RuntimeError: boom" in raised and "raises.py" in raised
    assert "ok 1 sh pid=" in (res / progs["t.sh"]["ktap"]).read_text()
    assert progs["sleeps.py"]["seconds"] < 30


def test_only_programs_whose_first_line_names_python_are_forked(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("guest_runner", bootstep.RUNNER)
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    for name, text, forked in (("a", "#!/usr/bin/env python3\n", True),
                               ("b", "#!/usr/bin/python3 -IS\n", True),
                               ("c", "#!/bin/sh\n# python\n", False), ("d", "print(1)\n", False)):
        (tmp_path / name).write_text(text)
        assert runner.is_python(str(tmp_path / name)) is forked, name
    assert runner.is_python(str(tmp_path / "missing")) is False
