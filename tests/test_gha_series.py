"""series.yml, run here: plan -> 2 shards -> merge with exactly the workflow's `run:` steps.

tests/gha.py stands in for the runner (workspaces, $RUNNER_TEMP, $GITHUB_OUTPUT, expressions,
artifacts); every `run:` step runs with bash as written. The series is the five-patch mixed
series of series_factory, passed as a path in the calling repository; boot is off (`--no-boot`,
as the `boot: false` input makes the plan step pass it).

The one-machine run is the session's `mixed_run` (shared with test_e2e_run, so no extra build
for it). Its six steps are planned into two shards, 0..2 and 3..5. Each job gets its own
reports directory, as each runner has its own disk, except that shard 1's runner is given the
session's shared reports: it stands for a runner whose reports already hold those steps, so
shard 1 reuses all three and builds nothing. Shard 2's runner starts empty and really builds:
its lead-in (step 2, a full build with the warm ccache) and steps 3, 4 and 5, incrementally, in
the shard path. The cut falls after patch 2's new warning, so a shard that did not build its
lead-in would blame patch 3 for it (and for every warning of the tree).

The only steps skipped are the two `kpipe report` steps while `kpipe report` (issue 6) is not
in this tree: SKIP lists them with that reason, and they run as soon as it exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gha
import jsonschema
import pytest

from pipeline import paths
from pipeline.record import store as record

pytestmark = pytest.mark.e2e  # builds shard 2's lead-in and steps 3-5 (and the mixed run)

SERIES_YML = paths.PROJECT_ROOT / ".github" / "workflows" / "series.yml"
KPIPE_REPO, CALLER_REPO = "kpipe/kpipe", "maintainer/linux"
REPORT_PENDING = "`kpipe report` (issue 6) is not in this tree yet"


def _report_pending() -> str | None:
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "report", "--help"],
                          capture_output=True)
    return REPORT_PENDING if proc.returncode != 0 else None


SKIP = {"Job summary": _report_pending, "Render the report": _report_pending}


@pytest.fixture(scope="module")
def workflow(mixed_run: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("gha")
    caller = root / "caller-repo"
    shutil.copytree(mixed_run["series"], caller / "series" / "mixed")

    def job_env(job: str, matrix: dict) -> dict:
        if job == "shard" and matrix["shard"] == 1:
            return {"KPIPE_REPORTS": str(mixed_run["reports"])}
        return {"KPIPE_REPORTS": str(root / "disks" / f"{job}{matrix.get('shard', '')}")}

    runner = gha.Runner(
        gha.load(SERIES_YML),
        {"series": "series/mixed", "boot": False, "shards": 2, "publish-pages": True,
         "kpipe-repository": KPIPE_REPO},
        root / "runner", {KPIPE_REPO: paths.PROJECT_ROOT, CALLER_REPO: caller},
        repository=CALLER_REPO, skip=SKIP, job_env=job_env)
    jobs = runner.run()
    return {"jobs": jobs, "runner": runner, "one_machine": mixed_run["record"]}


def _job(workflow: dict, name: str, n: int = 0) -> gha.JobResult:
    return workflow["jobs"][name][n]


def _explain(job: gha.JobResult) -> str:
    return "\n".join(f"--- {s.name}: {s.outcome} {s.why}\n{s.log[-3000:]}" for s in job.steps)


def _merged(workflow: dict) -> dict:
    return record.load(_job(workflow, "merge").temp / "report")


def _partial(workflow: dict, n: int) -> dict:
    return record.load(_job(workflow, "shard", n - 1).temp / "partial")


TIMING_KEYS = {"seconds", "stages"}
RUN_KEYS = {"run_id", "created", "argv", "host", "reused_from", "build_reused_from", "plan",
            "shards"}
_ABS = re.compile(r"(^|[^\w.~/-])/[^\s:'\"),]+")


# kbuild's own progress lines ("  CC      drivers/vhost/scsi.o"): under make -j2 which of them
# come just before an error depends on scheduling, so an error's context is compared without them
_KBUILD_LINE = re.compile(r"^  [A-Z][A-Z0-9_]* {2,}\S")


def comparable(value: object) -> object:
    """The record without timings, hosts, run ids, dates, reuse, argv and absolute paths, and
    with errors' context without kbuild's progress lines."""
    if isinstance(value, dict):
        return {k: (_without_kbuild_lines(v) if k == "context" and isinstance(v, str)
                    else comparable(v))
                for k, v in value.items() if k not in TIMING_KEYS | RUN_KEYS}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, str):
        return _ABS.sub(r"\1<path>", value)
    return value


def _without_kbuild_lines(context: str) -> str:
    return "\n".join(line for line in comparable(context).splitlines()
                     if not _KBUILD_LINE.match(line))


def test_every_job_ran_its_run_steps(workflow: dict) -> None:
    jobs = workflow["jobs"]
    assert [len(jobs[n]) for n in ("plan", "shard", "merge", "pages")] == [1, 2, 1, 1]
    for name in ("plan", "shard", "pages"):
        for job in jobs[name]:
            assert job.result == "success", _explain(job)
    merge = _job(workflow, "merge")
    # the merge job fails with kpipe's exit code: the mixed series has bad verdicts (exit 1)
    assert merge.outputs["exit-code"] == "1", _explain(merge)
    assert merge.steps[-1].name == "Verdict" and merge.steps[-1].outcome == "failure"
    skipped = {s.name: s.why for j in jobs.values() for job in j for s in job.steps
               if s.outcome == "skipped"}
    allowed = {name: why() for name, why in SKIP.items() if why()}
    assert skipped == allowed | {"Enable KVM": "its if: is false"}


def test_merged_record_equals_the_one_machine_run(workflow: dict) -> None:
    merged, single = _merged(workflow), workflow["one_machine"]
    assert single["status"] == "complete"
    assert comparable(merged) == comparable(single)
    assert merged["exit_code"] == single["exit_code"] == 1
    kinds = [(v["kind"], v["step"]) for v in merged["verdicts"]]
    assert kinds == [("not-bisectable-at", 3), ("new-warning-at", 2), ("new-warning-at", 3)]


def test_shard_2_built_its_steps_after_a_lead_in(workflow: dict) -> None:
    part = _partial(workflow, 2)
    assert [s["index"] for s in part["steps"]] == [3, 4, 5]
    assert all(s["reused_from"] is None for s in part["steps"])
    assert [s["build"]["status"] for s in part["steps"]] == ["fail", "pass", "pass"]
    # patch 2's warning was in force before the range: only patch 3's own warning is new
    new3 = [w["message"] for w in part["steps"][0]["build"]["warnings_new"]]
    assert any("kpipe_broken" in m for m in new3)
    assert not any("kpipe_unused_helper" in m for m in new3)
    run_step = next(s for s in _job(workflow, "shard", 1).steps if s.name == "Run the shard")
    assert "lead-in step 2" in run_step.log and "built (pass)" in run_step.log


def test_partials_are_valid_partial_records(workflow: dict) -> None:
    schema = json.loads(record.SCHEMA_FILE.read_text())
    for n in (1, 2):
        part = _partial(workflow, n)
        jsonschema.validate(part, schema)
        assert part["status"] == "complete" and part["exit_code"] == 0
        assert part["verdicts"] == [] and part["plan"]["shard"] == n
    assert all(s["reused_from"] for s in _partial(workflow, 1)["steps"])


def test_merged_run_holds_every_steps_files_and_the_shards(workflow: dict) -> None:
    run_dir = _job(workflow, "merge").temp / "report"
    merged = _merged(workflow)
    for s in merged["steps"]:
        for rel in [s["build"]["log"], *s["build"].get("artifacts", {}).values()]:
            assert (run_dir / rel).is_file(), rel
    assert [(s["n"], s["ranges"][0]["first"], s["ranges"][0]["last"])
            for s in merged["shards"]] == [(1, 0, 2), (2, 3, 5)]
    assert (workflow["runner"].artifacts / "kpipe-report" / "results.json").is_file()
    assert (workflow["runner"].artifacts / "github-pages" / "results.json").is_file()


def test_job_summary_is_the_markdown_report(workflow: dict) -> None:
    if _report_pending():
        pytest.skip(REPORT_PENDING)
    summary = _job(workflow, "merge").summary
    assert "kpipe e2e: five small patches" in summary


def _partials(workflow: dict, tmp_path: Path) -> list[Path]:
    """Copies of the two partial run directories (the originals stay as the jobs left them)."""
    out = []
    for n in (1, 2):
        dst = tmp_path / f"p{n}"
        shutil.copytree(_job(workflow, "shard", n - 1).temp / "partial", dst)
        out.append(dst)
    return out


def _merge(args: list[Path], tmp_path: Path) -> subprocess.CompletedProcess:
    out = tmp_path / "merged"
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "merge", *map(str, args),
                           "--run-dir", str(out)], capture_output=True, text=True)


def _edit(run_dir: Path, change) -> None:  # noqa: ANN001
    rec = record.load(run_dir)
    change(rec)
    (run_dir / "results.json").write_text(json.dumps(rec))


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda p1, p2: [p1], "shard(s) 2 of 2 missing"),
    (lambda p1, p2: [p1, p1, p2], "shard 1 given twice"),
    (lambda p1, p2: [p1, p2.parent / "gone"], "no partial record here"),
    (lambda p1, p2: _edit(p2, lambda r: r["plan"].update(id="0" * 16)) or [p1, p2],
     "different plans"),
    (lambda p1, p2: _edit(p2, lambda r: r["steps"].pop()) or [p1, p2],
     "shard 2 should hold steps default/3, default/4, default/5"),
    (lambda p1, p2: _edit(p2, lambda r: r.update(kpipe_version="0.0.1")) or [p1, p2],
     "made by kpipe 0.0.1"),
    (lambda p1, p2: (p2 / "steps/default/4/.config").unlink() or [p1, p2],
     "steps/default/4/.config is missing"),
])
def test_bad_partials_exit_2_and_nothing_is_lost(workflow: dict, tmp_path: Path, mutate,
                                                 message: str) -> None:
    p1, p2 = _partials(workflow, tmp_path)
    args = mutate(p1, p2)
    before = {p: sorted(q.relative_to(p) for q in p.rglob("*")) for p in (p1, p2)}
    proc = _merge(args, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "merged").exists()
    assert {p: sorted(q.relative_to(p) for q in p.rglob("*")) for p in (p1, p2)} == before


def test_one_machine_run_of_the_plan_equals_the_plain_run(workflow: dict,
                                                          mixed_run: dict) -> None:
    """`kpipe run --plan plan.json` (no --shard) is the one-machine run of the plan."""
    plan_file = workflow["runner"].artifacts / "kpipe-plan" / "plan.json"
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--plan",
                           str(plan_file), "--json"], capture_output=True, text=True,
                          env={**os.environ, "KPIPE_REPORTS": str(mixed_run["reports"])})
    rec = json.loads(proc.stdout)
    assert comparable(rec) == comparable(mixed_run["record"])
    assert proc.returncode == 1


def test_a_failed_shard_fails_the_merged_run_the_same_way(workflow: dict,
                                                           tmp_path: Path) -> None:
    """A shard cut short (infrastructure error after step 3) still merges: exit 3, its error."""
    p1, p2 = _partials(workflow, tmp_path)
    _edit(p2, lambda r: r.update(status="infra-error", exit_code=3, error="disk full",
                                 steps=r["steps"][:1]))
    proc = _merge([p1, p2], tmp_path)
    assert proc.returncode == 3, proc.stderr
    merged = record.load(tmp_path / "merged")
    assert (merged["status"], merged["exit_code"]) == ("infra-error", 3)
    assert merged["error"] == "shard 2: disk full"
    assert [s["index"] for s in merged["steps"]] == [0, 1, 2, 3]
