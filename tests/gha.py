"""A local stand-in for the GitHub Actions runner, enough to run kpipe's workflows on this host.

Reads a workflow file; runs its jobs' `run:` steps with bash exactly as written, in a
per-job workspace and runner temp directory, with the environment the runner gives
(GITHUB_WORKSPACE, RUNNER_TEMP, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, env: blocks evaluated) and
the `${{ }}` expressions evaluated the way the runner does: contexts (inputs, github, runner,
matrix, needs, steps, env), operators, and the functions the workflows use. The `uses:` steps
are the few actions kpipe's workflows name, done locally: checkout links a directory the test
provides, caches are no-ops (the host's caches are warm), artifacts are copied through a store
directory. The job container is not started: the host is Debian 12 like the container.
An action or expression it does not know is an error, so the workflow cannot drift from what
the test exercises.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# --- expressions -------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'(?:[^']|'')*')|"
                    r"(?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\].,*])|(?P<name>[A-Za-z_][\w-]*))")


class ExprError(Exception):
    pass


def _tokens(text: str) -> list[tuple[str, object]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"cannot read expression at {text[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "num":
            value = float(value) if "." in value else int(value)
        elif kind == "str":
            value = value[1:-1].replace("''", "'")
        out.append((kind, value))
    return out


def truthy(value: object) -> bool:
    return value not in (None, False, 0, "") and value == value


def to_str(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _equal(a: object, b: object) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if type(a) is not type(b) and not (isinstance(a, int | float) and isinstance(b, int | float)):
        try:
            return float(to_str(a) or 0) == float(to_str(b) or 0)
        except ValueError:
            return False
    return a == b


class Evaluator:
    """Evaluates one expression against the contexts; `status` answers success()/failure()."""

    def __init__(self, contexts: dict, status: str = "success",
                 workspace: Path | None = None) -> None:
        self.contexts, self.status, self.workspace = contexts, status, workspace

    def eval(self, text: str) -> object:
        self.toks, self.pos = _tokens(text), 0
        value = self._or()
        if self.pos != len(self.toks):
            raise ExprError(f"unexpected {self.toks[self.pos][1]!r} in {text!r}")
        return value

    def _peek(self) -> tuple[str, object] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def _take(self, op: str | None = None) -> tuple[str, object]:
        tok = self._peek()
        if tok is None or (op is not None and tok[1] != op):
            raise ExprError(f"expected {op or 'more'} in expression")
        self.pos += 1
        return tok

    def _or(self) -> object:
        value = self._and()
        while self._peek() == ("op", "||"):
            self._take()
            right = self._and()
            value = value if truthy(value) else right
        return value

    def _and(self) -> object:
        value = self._cmp()
        while self._peek() == ("op", "&&"):
            self._take()
            right = self._cmp()
            value = right if truthy(value) else value
        return value

    def _cmp(self) -> object:
        left = self._unary()
        tok = self._peek()
        if tok and tok[0] == "op" and tok[1] in ("==", "!=", "<", "<=", ">", ">="):
            self._take()
            right = self._unary()
            if tok[1] in ("==", "!="):
                return _equal(left, right) == (tok[1] == "==")
            a, b = float(to_str(left) or 0), float(to_str(right) or 0)
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[tok[1]]
        return left

    def _unary(self) -> object:
        if self._peek() == ("op", "!"):
            self._take()
            return not truthy(self._unary())
        return self._primary()

    def _primary(self) -> object:
        kind, value = self._take()
        if kind in ("num", "str"):
            return value
        if (kind, value) == ("op", "("):
            inner = self._or()
            self._take(")")
            return inner
        if kind != "name":
            raise ExprError(f"unexpected {value!r}")
        if value in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[value]
        if self._peek() == ("op", "("):
            self._take()
            args = []
            while self._peek() != ("op", ")"):
                args.append(self._or())
                if self._peek() == ("op", ","):
                    self._take()
            self._take(")")
            return self._call(value, args)
        if value not in self.contexts:
            raise ExprError(f"unknown context {value!r}")
        obj = self.contexts[value]
        while self._peek() in (("op", "."), ("op", "[")):
            if self._take()[1] == ".":
                key = self._take()[1]
            else:
                key = self._or()
                self._take("]")
            obj = obj.get(key) if isinstance(obj, dict) else None
        return obj

    def _call(self, name: str, args: list) -> object:
        simple = {
            "contains": lambda a, b: (to_str(b).lower() in to_str(a).lower()
                                      if not isinstance(a, list) else
                                      any(_equal(x, b) for x in a)),
            "startsWith": lambda a, b: to_str(a).lower().startswith(to_str(b).lower()),
            "endsWith": lambda a, b: to_str(a).lower().endswith(to_str(b).lower()),
            "fromJSON": lambda a: json.loads(a),
            "toJSON": lambda a: json.dumps(a),
            "format": lambda f, *a: re.sub(r"\{(\d+)\}", lambda m: to_str(a[int(m[1])]), f),
            "always": lambda: True,
            "success": lambda: self.status == "success",
            "failure": lambda: self.status == "failure",
            "cancelled": lambda: False,
            "hashFiles": self._hash_files,
        }
        if name not in simple:
            raise ExprError(f"function {name}() is not known to this stand-in")
        return simple[name](*args)

    def _hash_files(self, *patterns: str) -> str:
        assert self.workspace is not None
        digest = hashlib.sha256()
        for pattern in patterns:
            for path in sorted(self.workspace.glob(pattern)):
                if path.is_file():
                    digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()


_EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def interpolate(value: object, ev: Evaluator) -> object:
    """A workflow value with its ${{ }} parts evaluated (a lone expression keeps its type)."""
    if isinstance(value, dict):
        return {k: interpolate(v, ev) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, ev) for v in value]
    if not isinstance(value, str):
        return value
    whole = _EXPR.fullmatch(value.strip())
    if whole:
        return ev.eval(whole.group(1))
    return _EXPR.sub(lambda m: to_str(ev.eval(m.group(1))), value)


def condition(text: object, ev: Evaluator) -> bool:
    """A step's or job's `if:`; without a status function it means `success() && (...)`."""
    if text is None:
        return ev.status == "success"
    expr = str(text).strip()
    if m := _EXPR.fullmatch(expr):
        expr = m.group(1)
    if not re.search(r"\b(always|success|failure|cancelled)\(", expr):
        expr = f"success() && ({expr})"
    return truthy(ev.eval(expr))


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
