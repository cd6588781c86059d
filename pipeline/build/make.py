"""Building one step of a run: make in the run's O= directory, with ccache.

Reads the worktree (at the step's commit) and the O= directory's .config; make runs in the
build sandbox (pipeline/build/sandbox.py) when it is given one; writes the build log
and the step's artifacts (bzImage, System.map, .config) into the step directory. Returns the
`build` part of the step record, plus the diagnostics used for warning attribution.

The O= directory is a direct child of the worktree, so kbuild uses the relative srctree `..`:
every compiler command line is then the same whatever the worktree's path, and ccache hits
across runs and machines without path rewriting.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.build import diagnostics, linked
from pipeline.build.sandbox import Jail, ccache_env, refusals
from pipeline.procgroup import kill_group

ARTIFACTS = {"bzImage": "arch/x86/boot/bzImage", "System.map": "System.map", ".config": ".config"}
BUILD_TIMESTAMP = "Thu Jan  1 00:00:00 UTC 2026"


@dataclass
class BuildOutcome:
    record: dict
    warnings: list[diagnostics.Diagnostic]
    disk_full: bool = False


def make_env(jail: Jail | None = None, build_dir: Path | None = None) -> dict[str, str]:
    """make's environment: reproducible kbuild stamps, and ccache as the sandbox allows."""
    env = dict(os.environ)
    env.update(ccache_env(jail, build_dir or Path(".")))
    env.update({
        # Depend mode: on a miss ccache compiles once and hashes the headers gcc's -MMD lists
        # (kbuild always asks for them), instead of running the preprocessor first to hash its
        # output. 40 kernel units of the lean config, cold: 30.8 CPU s in ccache's default
        # mode, 21.0 in depend mode, 20.8 with gcc alone; hits cost the same (0.4 s).
        "CCACHE_DEPEND": "1",
        "CCACHE_NOHASHDIR": "true",
        "CCACHE_SLOPPINESS": "time_macros",
        "KBUILD_BUILD_USER": "kpipe",
        "KBUILD_BUILD_HOST": "kpipe",
        "KBUILD_BUILD_TIMESTAMP": BUILD_TIMESTAMP,
        "LC_ALL": "C",
    })
    return env


def make_args(localversion: str, jobs: int) -> list[str]:
    return [f"-j{jobs}", "CC=ccache gcc", "HOSTCC=ccache gcc", f"LOCALVERSION={localversion}"]


def reproduce_command(worktree_rel: str, build_dir: str, localversion: str) -> str:
    return (f"make -C {worktree_rel} O={build_dir} -j$(nproc) CC='ccache gcc' "
            f"LOCALVERSION={localversion}")


def _in_place_file(build_dir: Path) -> Path:
    """Beside the O= directory, in the worktree (a sandboxed build cannot write it)."""
    return build_dir.with_name(build_dir.name + ".warnings.json")


def build(worktree: Path, build_dir: Path, localversion: str, step_dir: Path,
          previous: list[diagnostics.Diagnostic], jobs: int | None = None,
          progress: Callable[[str, int], None] | None = None,
          jail: Jail | None = None) -> BuildOutcome:
    """Run make for one step (inside `jail`, the sandbox, unless None); collect status, time,
    log, errors, new warnings (against `previous`), artifacts.

    The warnings in force after it are those the O= directory held after its last build
    (pipeline/intake/pool.py keeps places between runs; beside the O= a file says what they
    were) with those of the units make rebuilt replaced, and, after a build that linked, only
    those of units the kernel still links: make rebuilds only what changed since the last
    build in this O=, whatever step, config or caller built there. `previous`, the warnings of
    the step before in the caller's walk, is what the new ones are counted against, and the
    basis only in an O= that has no such file (a new one, or one a build left cut short)."""

    jobs = jobs or os.cpu_count() or 2
    step_dir.mkdir(parents=True, exist_ok=True)
    held = _in_place_file(build_dir)
    try:
        in_place = diagnostics.load(held) if held.exists() else previous
    except ValueError:  # unreadable: as if this O= had none
        in_place = previous
    held.unlink(missing_ok=True)  # until this build ends
    log_path = step_dir / "build.log"
    cmd = ["make", "-C", str(worktree), f"O={build_dir}", *make_args(localversion, jobs)]
    start = time.monotonic()
    units = 0
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(jail.wrap(cmd) if jail else cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                errors="replace", env=make_env(jail, build_dir),
                                start_new_session=True)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                log.write(line)
                if line.startswith("  CC") and progress:
                    units += 1
                    progress(line.split()[-1], units)
            rc = proc.wait()
        except BaseException:
            _kill(proc)
            raise
    seconds = round(time.monotonic() - start, 1)
    text = log_path.read_text(errors="replace")
    # what the kernel links is known only from a build that linked it (a failed one may leave
    # a half-written vmlinux.a): after a failure every carried warning stays
    current = diagnostics.carry(in_place, text,
                                linked.linked_units(build_dir) if rc == 0 else None)
    new = diagnostics.new_warnings(previous, current)
    record = {
        "status": "pass" if rc == 0 else "fail",
        "seconds": seconds,
        "log": "build.log",
        "units_rebuilt": len(diagnostics.rebuilt_units(text)),
        "warnings_new": [d.as_dict() for d in new],
        "warnings_total": len({d.key for d in current}),
        "errors": diagnostics.errors_with_context(text) if rc else [],
        "artifacts": {},
        "command": reproduce_command("<tree>", f"<tree>/{build_dir.name}", localversion),
    }
    if rc == 0:
        for name, rel in ARTIFACTS.items():
            src = build_dir / rel
            if src.exists():
                shutil.copyfile(src, step_dir / name)
                record["artifacts"][name] = name
        missing = set(ARTIFACTS) - set(record["artifacts"])
        if missing:
            record["status"] = "error"
            record["errors"] = [{"message": f"make succeeded but left no {', '.join(missing)}"}]
    if rc and jail and (refused := refusals(text)):
        record["sandbox_refused"] = refused
        record["errors"].insert(0, {"message": "the build sandbox refused: " + refused[0]})
    if rc and not ((worktree / "Makefile").is_file() and (worktree / ".git").exists()):
        record["status"] = "error"  # never reused: it says nothing about the patch
        record["errors"].insert(0, {"message": f"the build place {worktree} was gone when "
                                               "make ended: not the patch's failure"})
    disk_full = bool(re.search(r"No space left on device", text))
    if not disk_full and build_dir.parent.is_dir():
        diagnostics.save(held, current)
    if disk_full:
        record["status"] = "error"
        record["errors"].insert(0, {"message": "disk full: No space left on device"})
    return BuildOutcome(record, current, disk_full)


def _kill(proc: subprocess.Popen) -> None:
    """make's whole group: bubblewrap's compilers may outlive their leader by a moment, and the
    build place must be free of them before it is given back."""
    kill_group(proc.pid, proc)
    proc.wait()
