"""Plans and shards without building: the split, the plan file's checks, the command line's
refusals, and the lead-in walk (with a stand-in for make).

The plan tests read a real one-patch series with b4 against the imported tree (a few seconds);
nothing here runs make.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from series_factory import one_patch_series

from pipeline.build import diagnostics as diag
from pipeline.build.make import BuildOutcome
from pipeline.fanout import plan
from pipeline.options import RunOptions
from pipeline.progress import Progress
from pipeline.run import lead_in, step_ops
from pipeline.run.reuse import ConfigPlan

KPIPE = [sys.executable, "-m", "pipeline.cli"]


def kpipe(*args: str, reports: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, KPIPE_REPORTS=str(reports))
    return subprocess.run([*KPIPE, *args], capture_output=True, text=True, env=env)


def test_split_is_even_contiguous_and_covers_every_step() -> None:
    shards = plan.split(["default", "kasan"], 6, 5)
    units = [(r["config"], k) for s in shards for r in s["ranges"]
             for k in range(r["first"], r["last"] + 1)]
    assert units == [(c, k) for c in ("default", "kasan") for k in range(6)]
    assert [s["n"] for s in shards] == [1, 2, 3, 4, 5]
    sizes = [sum(r["last"] - r["first"] + 1 for r in s["ranges"]) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    assert shards[2]["ranges"] == [{"config": "default", "first": 4, "last": 5},
                                   {"config": "kasan", "first": 0, "last": 0}]
    assert len(plan.split(["default"], 2, 8)) == 2  # never more shards than steps
    with pytest.raises(plan.PlanError):
        plan.split(["default"], 2, 0)


@pytest.fixture(scope="module")
def plan_file(kernel_tree, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("plan")
    series = one_patch_series(kernel_tree.path, kernel_tree.head, work / "series", "plan")
    out = work / "plan.json"
    proc = kpipe("plan", str(series), "-o", str(out), "--shards", "2", "--no-boot",
                 reports=work / "reports")
    assert proc.returncode == 0, proc.stderr
    return out


def test_plan_freezes_series_base_configs_and_shards(plan_file: Path, tmp_path: Path) -> None:
    p = plan.load(plan_file)
    assert p["base"]["rule"] == "trailer" and p["steps"] == 2
    assert p["options"] == {"configs": ["default"], "fragments": [], "boot": False,
                            "suites": [], "slow_steps": "ends", "tree_name": "debian-6.12"}
    assert RunOptions.from_plan(p, 1).tree_name == "debian-6.12"  # a shard opens that tree
    assert [s["ranges"] for s in p["shards"]] == [[{"config": "default", "first": 0, "last": 0}],
                                                  [{"config": "default", "first": 1, "last": 1}]]
    series = plan.restore_series(p, tmp_path)
    assert series["patches"][0]["subject"] == "vhost-scsi: comment plan"
    assert (tmp_path / series["mbox"]).read_bytes().count(b"\nFrom: ") == 1


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: p.update(kpipe_version="0.0.1"), "was made by kpipe 0.0.1"),
    (lambda p: p.update(schema="kpipe-plan/0"), "schema 'kpipe-plan/0'"),
    (lambda p: p["shards"].pop(), "does not match its id"),
    (lambda p: p.pop("base"), "'base' is a required property"),
])
def test_a_bad_plan_is_refused_with_exit_2(plan_file: Path, tmp_path: Path, change,
                                           message: str) -> None:
    data = json.loads(plan_file.read_text())
    change(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    proc = kpipe("run", "--plan", str(bad), "--shard", "1", reports=tmp_path / "reports")
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not (tmp_path / "reports" / "runs").exists() or \
        not any((tmp_path / "reports" / "runs").iterdir())


@pytest.mark.parametrize(("args", "message"), [
    (["--shard", "3"], "the plan has shards 1..2"),
    (["--shard", "1", "--config", "kasan"], "drop --config"),
    (["--shard", "1", "--no-boot"], "drop --boot/--no-boot"),
])
def test_run_with_a_plan_refuses_what_the_plan_fixes(plan_file: Path, tmp_path: Path,
                                                     args: list[str], message: str) -> None:
    proc = kpipe("run", "--plan", str(plan_file), *args, reports=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr


def test_other_bad_input_exits_2(plan_file: Path, tmp_path: Path) -> None:
    assert "needs --plan" in kpipe("run", "--shard", "1", reports=tmp_path).stderr
    missing = kpipe("run", "--plan", str(tmp_path / "none.json"), reports=tmp_path)
    assert missing.returncode == 2 and "cannot read it" in missing.stderr
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    proc = kpipe("run", "--plan", str(plan_file), "--shard", "1", "--run-dir", str(used),
                 reports=tmp_path)
    assert proc.returncode == 2 and "not a new or empty directory" in proc.stderr
    assert [p.name for p in used.iterdir()] == ["keep.txt"]
    proc = kpipe("merge", str(tmp_path / "no-such-partial"), reports=tmp_path)
    assert proc.returncode == 2 and "no partial record here" in proc.stderr


def _fake_walk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, failing: set[int],
               kconfig_patches: set[int]) -> tuple[list, list, list]:
    """Run lead_in(k=3) over five stand-in steps; return the builds and config merges."""
    builds: list[tuple[int, int]] = []
    merges: list[str] = []
    commits: list[str] = []

    def fake_build(wt, build_dir, localversion, step_dir, previous, jobs, progress, jail):
        j = int(localversion.rsplit("s", 1)[1])
        builds.append((j, len(previous)))
        assert jail is not None and not jail.ccache_writable  # posted code: reads ccache only
        mine = diag.Diagnostic(f"f{j}.c", 1, "warning", f"f{j}.c")
        return BuildOutcome({"status": "fail" if j in failing else "pass"}, [*previous, mine])

    monkeypatch.setattr(lead_in, "build", fake_build)
    monkeypatch.setattr(step_ops, "checkout", lambda wt, commit: commits.append(commit))
    monkeypatch.setattr(step_ops, "configure",
                        lambda spec, wt, build_dir, sandboxed: merges.append(commits[-1]) or [])
    patches = []
    for k in range(1, 5):
        path = tmp_path / f"{k}.patch"
        name = "drivers/vhost/Kconfig" if k in kconfig_patches else "drivers/vhost/scsi.c"
        path.write_text(f"--- a/{name}\n+++ b/{name}\n")
        patches.append(path)
    applied = [{"commit": f"c{k}", "apply": {"status": "applied"}} for k in range(5)]
    cplan = ConfigPlan(SimpleNamespace(name="default"), "h", ["key"] * 5, ["bkey"] * 5)
    opts = RunOptions(series="", no_cache=True)
    found = lead_in.lead_in(opts, {"run_id": "x"}, tmp_path, cplan, applied, patches, 3,
                            Progress(quiet=True))
    return builds, merges, found


def test_lead_in_builds_the_step_before_the_range(monkeypatch, tmp_path: Path) -> None:
    builds, merges, found = _fake_walk(monkeypatch, tmp_path, set(), set())
    assert builds == [(3, 0)] and merges == []
    assert [d.file for d in found] == ["f3.c"]


def test_lead_in_walks_back_past_failing_builds(monkeypatch, tmp_path: Path) -> None:
    """Steps 3 and 2 fail: build 3, 2, 1 (passes), then 2 and 3 again, carrying warnings."""
    builds, merges, found = _fake_walk(monkeypatch, tmp_path, {2, 3}, set())
    assert [j for j, _ in builds] == [3, 2, 1, 2, 3]
    assert [n for _, n in builds] == [0, 1, 2, 3, 4]
    assert found[-1].file == "f3.c"


def test_lead_in_uses_the_config_the_walk_had(monkeypatch, tmp_path: Path) -> None:
    """Patch 2 touched Kconfig: the walk re-merged the config at step 2, so the lead-in does."""
    builds, merges, found = _fake_walk(monkeypatch, tmp_path, set(), {2})
    assert builds == [(3, 0)] and merges == ["c3"]
    builds, merges, found = _fake_walk(monkeypatch, tmp_path, {3}, {3})
    assert [j for j, _ in builds] == [3, 2, 3]
    assert merges == ["c3", "c4", "c3"]  # at 3 (touched), back to the tip's for 2, 3 again
