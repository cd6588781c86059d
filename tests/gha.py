"""A local stand-in for the GitHub Actions runner, enough to run kpipe's workflows on this host.

Reads a workflow file; runs its jobs' `run:` steps with bash exactly as written, in a
per-job workspace and runner temp directory, with the environment the runner gives
(GITHUB_WORKSPACE, RUNNER_TEMP, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, env: blocks evaluated) and
the `${{ }}` expressions evaluated the way the runner does (tests/gha_expr.py). The `uses:` steps
are the few actions kpipe's workflows name, done locally: checkout links a directory the test
provides, caches are no-ops (the host's caches are warm), artifacts are copied through a store
directory. The job container is not started: the host is Debian 12 like the container.
An action or expression it does not know is an error, so the workflow cannot drift from what
the test exercises.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from gha_expr import Evaluator, ExprError, condition, interpolate, to_str

# --- workflows, jobs, steps -----------------------------------------------------------------

def load(path: Path) -> dict:
    wf = yaml.safe_load(path.read_text())
    wf["on"] = wf.pop(True, wf.get("on"))  # YAML 1.1 reads the key `on` as true
    return wf


@dataclass
class StepResult:
    name: str
    outcome: str  # success | failure | skipped
    why: str = ""
    log: str = ""


@dataclass
class JobResult:
    name: str
    result: str
    outputs: dict
    steps: list[StepResult]
    summary: str
    workspace: Path
    temp: Path


@dataclass
class Runner:
    """Runs one workflow's jobs on this host, each in its own workspace under `root`."""

    workflow: dict
    inputs: dict
    root: Path
    checkouts: dict[str, Path]  # repository (owner/name) -> directory it stands for
    repository: str = "kpipe/kpipe"
    skip: dict[str, Callable[[], str | None]] = field(default_factory=dict)
    job_env: Callable[[str, dict], dict] = lambda job, matrix: {}
    artifacts: Path = field(init=False)

    def __post_init__(self) -> None:
        self.artifacts = self.root / "artifacts"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.inputs = self._inputs_with_defaults(self.inputs)

    def _inputs_with_defaults(self, given: dict) -> dict:
        spec = (self.workflow["on"].get("workflow_dispatch") or {}).get("inputs", {})
        out = {name: d.get("default", "" if d.get("type") != "boolean" else False)
               for name, d in spec.items()}
        unknown = set(given) - set(spec)
        if unknown:
            raise ExprError(f"inputs {sorted(unknown)} are not declared")
        return out | given

    def _github(self, job: str, workspace: Path) -> dict:
        return {"repository": self.repository, "workspace": str(workspace), "job": job,
                "run_id": "1", "run_attempt": "1", "server_url": "https://github.com",
                "event_name": "workflow_dispatch", "ref": "refs/heads/main", "sha": "0" * 40,
                "ref_name": "main"}

    def run_job(self, name: str, needs: dict, matrix: dict | None = None) -> JobResult:
        job = self.workflow["jobs"][name]
        label = name + "".join(f"-{v}" for v in (matrix or {}).values())
        ws, temp = self.root / label / "work", self.root / label / "temp"
        ws.mkdir(parents=True)
        temp.mkdir(parents=True)
        summary = temp / "step_summary.md"
        summary.touch()
        ctx = {"inputs": self.inputs, "github": self._github(name, ws),
               "runner": {"temp": str(temp), "os": "Linux"}, "matrix": matrix or {},
               "needs": needs, "steps": {}, "env": {}, "secrets": {}, "job": {}}
        env = dict(os.environ, CI="true", GITHUB_ACTIONS="true", GITHUB_WORKSPACE=str(ws),
                   RUNNER_TEMP=str(temp), GITHUB_STEP_SUMMARY=str(summary),
                   GITHUB_REPOSITORY=self.repository, GITHUB_RUN_ID="1")
        env |= self.job_env(name, matrix or {})
        for block in (self.workflow.get("env", {}), job.get("env", {})):
            evaluated = {k: to_str(v) for k, v in interpolate(block, Evaluator(ctx)).items()}
            env |= evaluated
            ctx["env"] = ctx["env"] | evaluated
        shell = (self.workflow.get("defaults", {}).get("run", {}).get("shell"))
        status, results = "success", []
        for i, step in enumerate(job["steps"]):
            sname = step.get("name") or step.get("uses") or f"step {i}"
            ev = Evaluator(ctx, status, ws)
            if not condition(step.get("if"), ev):
                results.append(StepResult(sname, "skipped", "its if: is false"))
                continue
            reason = self.skip[sname]() if sname in self.skip else None
            if reason:
                results.append(StepResult(sname, "skipped", reason))
                continue
            outputs_file = temp / f"output-{i}"
            outputs_file.touch()
            step_env = env | {k: to_str(v) for k, v in
                              interpolate(step.get("env", {}), ev).items()}
            step_env["GITHUB_OUTPUT"] = str(outputs_file)
            if "uses" in step:
                ok, log, outputs = self._action(step, ev, ws)
            else:
                ok, log = self._shell(step, ev, ws, temp, step_env, shell or step.get("shell"), i)
                outputs = _read_outputs(outputs_file)
            outcome = "success" if ok else "failure"
            if step.get("id"):
                ctx["steps"][step["id"]] = {"outputs": outputs, "outcome": outcome,
                                            "conclusion": outcome}
            results.append(StepResult(sname, outcome, log=log))
            if not ok and not step.get("continue-on-error"):
                status = "failure"
        outputs = {k: to_str(v) for k, v in
                   interpolate(job.get("outputs", {}), Evaluator(ctx, status, ws)).items()}
        return JobResult(label, status, outputs, results, summary.read_text(), ws, temp)

    def _shell(self, step: dict, ev: Evaluator, ws: Path, temp: Path, env: dict,
               shell: str | None, i: int) -> tuple[bool, str]:
        script = temp / f"step-{i}.sh"
        script.write_text(interpolate(step["run"], ev))
        cwd = ws / interpolate(step.get("working-directory", "."), ev)
        if shell == "bash":
            cmd = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)]
        else:
            cmd = ["sh", "-e", str(script)]
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=60 * float(step.get("timeout-minutes", 360)))
        return proc.returncode == 0, f"$ {step['run']}\n{proc.stdout}{proc.stderr}"

    def _action(self, step: dict, ev: Evaluator, ws: Path) -> tuple[bool, str, dict]:
        name = step["uses"].split("@")[0]
        args = {k: to_str(v) for k, v in interpolate(step.get("with", {}), ev).items()}
        if name == "actions/checkout":
            repo = args.get("repository") or self.repository
            dest = ws / args.get("path", "")
            if repo not in self.checkouts:
                return False, f"no checkout stands for {repo}", {}
            if dest == ws:
                raise ExprError("checkout into the workspace root is not supported here")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(self.checkouts[repo])
            return True, f"checkout {repo} -> {dest}", {}
        if name in ("actions/cache", "actions/cache/restore", "actions/cache/save"):
            return True, f"cache {args.get('key')}: the host's cache is used as it is", {}
        if name in ("actions/upload-artifact", "actions/upload-pages-artifact"):
            art = args.get("name") or "github-pages"
            return (*self._upload(art, Path(args["path"]), args), {})
        if name == "actions/download-artifact":
            return (*self._download(args), {})
        if name == "actions/deploy-pages":
            ok = (self.artifacts / "github-pages").is_dir()
            return ok, "deploy the github-pages artifact", {"page_url": "https://example.test/"}
        raise ExprError(f"action {name} is not known to this stand-in")

    def _upload(self, name: str, path: Path, args: dict) -> tuple[bool, str]:
        dest = self.artifacts / name
        if dest.exists():
            return False, f"artifact {name} uploaded twice"
        hidden = args.get("include-hidden-files") == "true"
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        if not hidden:
            files = [p for p in files if not any(part.startswith(".") for part in
                                                 p.relative_to(path.parent).parts)]
        if not files:
            return args.get("if-no-files-found", "warn") != "error", f"{path}: no files"
        for f in files:
            rel = f.name if path.is_file() else f.relative_to(path)
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest / rel)
        return True, f"uploaded {len(files)} file(s) as {name}"

    def _download(self, args: dict) -> tuple[bool, str]:
        dest = Path(args["path"])
        if args.get("name"):
            src = self.artifacts / args["name"]
            if not src.is_dir():
                return False, f"no artifact {args['name']}"
            shutil.copytree(src, dest, dirs_exist_ok=True)
            return True, f"downloaded {args['name']}"
        names = sorted(p.name for p in self.artifacts.iterdir()
                       if fnmatch.fnmatch(p.name, args.get("pattern", "*")))
        for art in names:
            target = dest if args.get("merge-multiple") == "true" else dest / art
            shutil.copytree(self.artifacts / art, target, dirs_exist_ok=True)
        return True, f"downloaded {', '.join(names)}"

    def matrix(self, name: str, needs: dict) -> list[dict]:
        strategy = self.workflow["jobs"][name].get("strategy", {})
        spec = interpolate(strategy.get("matrix", {}), Evaluator({
            "inputs": self.inputs, "needs": needs, "github": self._github(name, self.root)}))
        if not spec:
            return [{}]
        keys = list(spec)
        return [dict(zip(keys, combo, strict=True))
                for combo in itertools.product(*(spec[k] for k in keys))]

    def run(self) -> dict[str, list[JobResult]]:
        """Every job, in the order of `needs:`; a matrix job's instances one after another."""
        done: dict[str, list[JobResult]] = {}
        jobs = self.workflow["jobs"]
        while len(done) < len(jobs):
            ready = [n for n in jobs if n not in done and all(
                d in done for d in _needs(jobs[n]))]
            if not ready:
                raise ExprError("the jobs' needs: form a cycle")
            for name in ready:
                needs = {d: _needs_context(done[d]) for d in _needs(jobs[name])}
                upstream_ok = all(n["result"] == "success" for n in needs.values())
                ev = Evaluator({"inputs": self.inputs, "needs": needs,
                                "github": self._github(name, self.root)},
                               "success" if upstream_ok else "failure")
                if not condition(jobs[name].get("if"), ev):
                    done[name] = []
                    continue
                done[name] = [self.run_job(name, needs, m) for m in self.matrix(name, needs)]
        return done


def _needs(job: dict) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _needs_context(results: list[JobResult]) -> dict:
    if not results:
        return {"result": "skipped", "outputs": {}}
    outputs: dict = {}
    for r in results:
        outputs |= {k: v for k, v in r.outputs.items() if v != ""}
    failed = any(r.result != "success" for r in results)
    return {"result": "failure" if failed else "success", "outputs": outputs}


def _read_outputs(path: Path) -> dict:
    """key=value lines and key<<DELIM heredocs, as the runner reads $GITHUB_OUTPUT."""
    out: dict[str, str] = {}
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            body = []
            i += 1
            while lines[i] != delim:
                body.append(lines[i])
                i += 1
            out[key] = "\n".join(body)
        elif "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
        i += 1
    return out


__all__ = ["Evaluator", "ExprError", "JobResult", "Runner", "load"]
