"""Boot and test one step: the `boot`, `tests` and `splats` parts of a step's record.

Reads the step's bzImage, System.map and .config, the suites (virtme-tests/<suite>/suite.toml)
and the splat pattern lists (configs/splats/). Writes into out_dir: the guest plan and the
guest's results (guest-<n>/: events, per-program KTAP, dmesg, kmemleak), one console log and
one vng command line per attempt, and one log per test case (tests/<suite>/<case>.log).
Returns {"boot": ..., "tests": [...], "splats": [...]} with every path relative to out_dir.
"""

from __future__ import annotations

import json
import re
import sys
import sysconfig
import threading
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from pipeline import paths
from pipeline.boot import ktap
from pipeline.boot import lockdep as lockdepmod
from pipeline.boot import splats as splatmod
from pipeline.boot import suites as suitemod
from pipeline.boot import vng as bootmod
from pipeline.boot.vng import BootSettings
from pipeline.build import kconfig

RUNNER = paths.VIRTME_TESTS_DIR / "runner.py"
# Debian's python3 (installed with python3-venv) runs the guest runner and, in forks of it, the
# suites' Python programs: its binary is 7 MB against a 23 MB libpython for a pyenv build, and
# every page of it comes over 9p under TCG (its start took 7.9 s against 10.4 s in a guest).
DEBIAN_PYTHON = Path("/usr/bin/python3")
GUEST_PYTHON = (DEBIAN_PYTHON if DEBIAN_PYTHON.exists()
                else Path(sys.base_prefix) / "bin" / "python3")
PYTHON_DEPS = sysconfig.get_paths()["purelib"]
OOM_RE = re.compile(r"invoked oom-killer|Out of memory: Killed process")


def default_settings() -> BootSettings:
    """The settings a run uses unless told otherwise (TCG-safe: 1 vCPU, 1 GiB)."""
    return BootSettings()


def settings_for(config: str) -> BootSettings:
    """The default boot settings, with the named config's own boot timeout if it has one."""
    settings = default_settings()
    timeout = kconfig.load_spec(config).boot_timeout  # a named config of configs.toml
    return replace(settings, boot_timeout=float(timeout)) if timeout else settings


def settings_record(settings: BootSettings) -> dict:
    """The settings as the record (and the reuse key) hold them."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()}


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def to_run(loaded: list[suitemod.Suite], skipped: dict[str, list[str]],
           unavailable: dict[str, str]) -> list[suitemod.Suite]:
    """The suites the guest runs: not those the config cannot run (`skipped`: suite name ->
    unmet requirements) nor those without what the host provides (`unavailable`)."""
    return [s for s in loaded if not skipped.get(s.name) and s.name not in unavailable]


def _plan(run: list[suitemod.Suite], localversion: str, attempt: int,
          env: dict[str, str] | None = None) -> dict:
    return {
        # KPIPE_PYTHON_DEPS: this venv's site-packages (qemu.qmp), for programs that need more
        # than the stdlib: the guest's python runs with -I -S on the host's root fs
        "env": {"KPIPE_LOCALVERSION": localversion, "KPIPE_PYTHON_DEPS": PYTHON_DEPS,
                **(env or {})},
        "attempt": attempt,
        "sysctl": {"kernel.hung_task_timeout_secs": 10},
        "kmemleak": True,
        "suites": [{"name": s.name, "dir": str(s.directory),
                    "programs": [{"path": str(p.path), "rel": p.rel, "timeout": p.timeout}
                                 for p in s.programs]} for s in run],
    }


def precompile(folders: list[Path]) -> None:
    """Write the bytecode of the guest's Python files beside them, on the host.

    The guest sees these folders read-only over 9p, so it can keep no bytecode and would
    compile every module at every boot under TCG; the host's Python has the same bytecode
    version (3.11) as the guest's. A folder the host cannot write is left as it is.
    """
    import compileall

    for folder in folders:
        compileall.compile_dir(folder, maxlevels=0, quiet=2)


def _error_record(message: str, accel: str = "", cpu_model: str = "") -> dict:
    return {"boot": {"status": "error", "seconds": 0.0, "accel": accel, "cpu_model": cpu_model,
                     "console": None, "attempts": [], "detail": message},
            "tests": [], "splats": []}


def boot_status(outcome: bootmod.BootOutcome) -> tuple[str, str]:
    """(status, detail) for the step's boot from its attempts."""
    final = outcome.final
    if final.reason == "ok":
        return "pass", "guest runner completed"
    if final.early_failure:
        infra = final.reason.startswith(("no-console", "boot-timeout-no-console"))
        tries = len(outcome.attempts)
        what = "no kernel output" if infra else final.reason
        return ("error" if infra else "fail"), f"guest runner never started ({what}), {tries} tries"
    if final.reason == "run-timeout":
        return "fail", "guest hung: killed at the run timeout"
    if final.reason == "guest-died":
        return "fail", f"guest died while tests ran (vng rc {final.rc})"
    return "fail", f"guest runner ended but vng returned {final.rc}"


def boot_and_test(bzimage: Path, system_map: Path, kconfig: Path, localversion: str,
                  suites: list[str], out_dir: Path, settings: BootSettings,
                  suites_root: Path | None = None, attempt: int = 1,
                  stop: threading.Event | None = None,
                  env: dict[str, str] | None = None,
                  unavailable: dict[str, str] | None = None) -> dict:
    """Boot one step's kernel, run `suites` in the guest, scan the kernel log for splats.
    `attempt` says which run on this kernel it is (the guest runner passes it on); setting
    `stop` kills the guest and raises vng.Interrupted (pipeline/boot/vng.py); `env` is
    added to the programs' environment; the suites of `unavailable` (name -> why: an L2
    kernel that did not build) are not run, each of their programs an `error` with the why."""
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        patterns = splatmod.load_patterns()
        kcfg = suitemod.read_kconfig(kconfig)
        loaded = [suitemod.load_suite(name, suites_root) for name in suites]
    except (splatmod.SplatConfigError, suitemod.SuiteError) as exc:
        return _error_record(str(exc))
    if not bzimage.is_file():
        return _error_record(f"{bzimage} not found")
    skipped = {s.name: suitemod.missing_requirements(s, kcfg) for s in loaded}
    unavailable = unavailable or {}
    run = to_run(loaded, skipped, unavailable)
    plan = _plan(run, localversion, attempt, env)
    run_timeout = sum(p.timeout for s in run for p in s.programs) + settings.run_margin
    precompile([RUNNER.parent, *(s.directory for s in run)])

    def prepare(rwdir: Path) -> None:
        (rwdir / "plan.json").write_text(json.dumps(plan, indent=1))

    def exec_cmd(rwdir: Path) -> str:
        # -I -S: no site-packages scan; every file look-up is a 9p round trip under TCG
        return f"{GUEST_PYTHON} -I -S {RUNNER} --plan {rwdir / 'plan.json'}"

    try:
        outcome = bootmod.boot(bzimage, exec_cmd, out_dir, run_timeout, settings, prepare, stop)
    except bootmod.BootError as exc:
        return _error_record(str(exc))
    final = outcome.final
    rwdir = out_dir / f"guest-{len(outcome.attempts)}"
    info = {}
    if (rwdir / "info.json").is_file():
        info = json.loads((rwdir / "info.json").read_text())

    # The kernel log: the guest's own dmesg when the runner finished, else the console.
    dmesg = rwdir / "dmesg.txt"
    log_text = dmesg.read_text(errors="replace") if dmesg.is_file() else (
        final.console.read_text(errors="replace") if final.console.exists() else "")
    smap = splatmod.SystemMap(system_map) if system_map.is_file() else None
    found = splatmod.scan(log_text, patterns, smap)
    kmemleak = rwdir / "kmemleak.txt"
    if kmemleak.is_file():
        found = [s for s in found if not (s.kind == "kmemleak" and s.lines[0].startswith(
            "kmemleak:"))]
        found += splatmod.scan(kmemleak.read_text(errors="replace"), patterns, smap,
                               require_stamps=False)

    status, detail = boot_status(outcome)
    if OOM_RE.search(log_text):
        detail += "; the guest ran out of memory"
    tests, names = collect_tests(loaded, skipped, rwdir, found, log_text, out_dir, detail,
                                 unavailable)
    splat_records = _dedupe([s.as_record(names.get(s.window) if s.window else None)
                             for s in found if not s.allowed])
    boot_rec = {
        "status": status,
        "seconds": final.runner_started if final.runner_started is not None else final.seconds,
        "accel": outcome.accel,
        "cpu_model": info.get("cpu_model") or outcome.cpu_model,
        "console": _rel(final.console, out_dir),
        "attempts": [{"reason": a.reason, "console": _rel(a.console, out_dir),
                      "rc": a.rc, "seconds": a.seconds, "started": _utc(a.started)}
                     for a in outcome.attempts],
        "detail": detail,
        "total_seconds": final.seconds,
        "started": _utc(final.started),  # with total_seconds: when this boot's guest ran
        "first_test_seconds": final.first_case,
        "accel_reason": outcome.accel_reason,
        "guest_release": info.get("release"),
        "command": (out_dir / f"command-{len(outcome.attempts)}.txt").read_text().strip(),
        "settings": settings_record(settings),
        "udev": bootmod.udev_state(settings),
        "allowed_splats": [{"kind": s.kind, "title": s.title, "reason": s.allowed}
                           for s in found if s.allowed],
        "leftover_qemu": any(a.leftover for a in outcome.attempts),
        "lockdep": lockdepmod.coverage(kcfg, read_events(rwdir), found, names),
    }
    return {"boot": boot_rec, "tests": tests, "splats": splat_records}


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _dedupe(records: list[dict]) -> list[dict]:
    """One record per (kind, title, test); repeats (a hung task is reported every check
    interval) only raise its `count`."""
    out: dict[tuple, dict] = {}
    for rec in records:
        key = (rec["kind"], rec["title"], rec["test"])
        if key in out:
            out[key]["count"] += 1
        else:
            out[key] = {**rec, "count": 1}
    return list(out.values())


def read_events(rwdir: Path) -> list[dict]:
    path = rwdir / "events.jsonl"
    events = []
    if path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                break  # a torn last line from a guest that died mid-write
    return events


def case_windows(log_text: str) -> dict[tuple[str, str, int], list[str]]:
    """Kernel log lines per case window, keyed (suite, program, n), from the kpipe markers."""
    windows: dict[tuple[str, str, int], list[str]] = {}
    cur: list[str] | None = None
    for line in log_text.splitlines():
        msg = splatmod.message(line)
        if msg is None:
            continue
        if m := splatmod.MARKER_RE.match(msg):
            cur = None
            if m.group(1):
                cur = windows.setdefault((m.group(1), m.group(3), int(m.group(2))), [])
            continue
        if cur is not None:
            cur.append(line)
    return windows


def _case_seconds(events: list[dict], suite: str, prog: str) -> dict[int, float]:
    starts: dict[int, float] = {}
    secs: dict[int, float] = {}
    for ev in events:
        if ev.get("suite") != suite or ev.get("program") != prog:
            continue
        if ev["event"] == "case-start":
            starts[ev["case"]] = ev["t"]
        elif ev["event"] == "case-end" and ev["case"] in starts:
            secs[ev["case"]] = round(ev["t"] - starts[ev["case"]], 3)
    return secs


def collect_tests(loaded: list[suitemod.Suite], skipped: dict[str, list[str]], rwdir: Path,
                  found: list[splatmod.Splat], log_text: str, out_dir: Path,
                  boot_detail: str, unavailable: dict[str, str] | None = None,
                  ) -> tuple[list[dict], dict]:
    """One test record per KTAP case (plus one per program that could not report its cases,
    and an `error` per program of a suite in `unavailable`, with its reason).

    Returns the records and {window key: "suite/case"} for attributing splats.
    """
    events = read_events(rwdir)
    windows = case_windows(log_text)
    ends = {(e["suite"], e["program"]): e for e in events if e["event"] == "program-end"}
    started = {(e["suite"], e["program"]) for e in events if e["event"] == "program-start"}
    tests: list[dict] = []
    names: dict[tuple[str, str, int], str] = {}

    def add(suite: str, prog: str, n: int | None, case: str, status: str, message: str,
            log_lines: list[str], seconds: float | None) -> None:
        key = (suite, prog, n) if n is not None else None
        mine = [s for s in found if key and s.window == key and not s.allowed]
        if mine and status in ("pass", "skip", "error", "not-run"):
            status = "fail"
        if mine:
            titles = dict.fromkeys(f"splat: {s.title}" for s in mine)
            message = "; ".join(filter(None, [message, *titles]))
        if key and any(OOM_RE.search(line) for line in windows.get(key, [])):
            message = "; ".join(filter(None, [message, "the guest ran out of memory"]))
        log_path = out_dir / "tests" / suite / f"{case.replace('/', '_')}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("\n".join(log_lines + ["--- kernel log in this case's window ---"]
                                      + windows.get(key, []) if key else log_lines) + "\n")
        if key:
            names[key] = f"{suite}/{case}"
        tests.append({"suite": suite, "case": case, "status": status, "seconds": seconds,
                      "message": message, "log": _rel(log_path, out_dir),
                      "splats": _dedupe([s.as_record(f"{suite}/{case}") for s in mine])})

    for suite in loaded:
        for prog in suite.programs:
            rel = prog.rel
            if skipped[suite.name]:
                add(suite.name, rel, None, rel, "skip",
                    "missing prerequisite: " + ", ".join(skipped[suite.name]), [], None)
                continue
            if suite.name in (unavailable or {}):
                why = (unavailable or {})[suite.name]
                add(suite.name, rel, None, rel, "error", why, [why], None)
                continue
            if (suite.name, rel) not in started:
                add(suite.name, rel, None, rel, "not-run", f"never started: {boot_detail}",
                    [], None)
                continue
            _program_tests(add, suite.name, rel, rwdir, ends.get((suite.name, rel)),
                           _case_seconds(events, suite.name, rel), boot_detail)
    return tests, names


def _program_tests(add, suite: str, rel: str, rwdir: Path, end: dict | None,
                   seconds: dict[int, float], boot_detail: str) -> None:
    ktap_file = rwdir / "out" / suite / f"{rel.replace('/', '_')}.ktap"
    text = ktap_file.read_text(errors="replace") if ktap_file.is_file() else ""
    parsed = ktap.parse(text)
    for case in parsed.cases:
        status, message = case.status, case.message
        if status == "skip":  # the suite's prerequisites are met, so a skip is an error
            status, message = "error", f"skipped although the config meets the suite's " \
                f"requirements: {message}"
        add(suite, rel, case.number, case.name, status, message,
            case.log + [f"{'ok' if status == 'pass' else 'not ok'} {case.number} {case.name}"],
            seconds.get(case.number))
    if parsed.complete:
        return
    if end is None:
        why = f"guest died: {boot_detail}"
    elif end.get("timed_out"):
        why = "timed out"
    else:
        why = f"program exited with rc {end.get('rc')}"
    if parsed.plan is None:
        if parsed.bail_out is None and parsed.cases:
            why = f"no plan line; {why}"
        add(suite, rel, 1 if end is None or end.get("timed_out") else None, rel,
            "error", f"no KTAP plan ({why})", parsed.trailing, None)
        return
    if parsed.plan == 0:
        add(suite, rel, None, rel, "error", f"plan 1..0 {parsed.plan_comment}".strip(), [], None)
        return
    done = {c.number for c in parsed.cases}
    missing = [n for n in range(1, parsed.plan + 1) if n not in done]
    for i, n in enumerate(missing):
        if i == 0:
            status = "fail" if why == "timed out" else "error"
            add(suite, rel, n, f"{rel}#{n}", status, f"case did not report: {why}",
                parsed.trailing, None)
        else:
            add(suite, rel, n, f"{rel}#{n}", "not-run", f"not reached: {why}", [], None)
