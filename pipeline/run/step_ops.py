"""The small operations a walk does on one step: check out its commit, (re-)merge the config,
save and load the warnings in force, name its LOCALVERSION and shape its record entry.

Reads and writes the run's worktree (git checkout, the O= directory's .config, a scratch O=
the sandboxed configure runs in) and the step's warnings.json.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path

from pipeline.build import diagnostics, kconfig, sandbox
from pipeline.errors import InfraError
from pipeline.intake import apply, pool

KCONFIG_FILES = ("Kconfig", "kvm_guest.config", "x86_64_defconfig")


def config_record(spec: kconfig.ConfigSpec, final: Path, dropped: list[dict],
                  spec_hash: str) -> dict:
    final_values = kconfig.read_config(final)
    return {"name": spec.name, "base": spec.base, "fragments": spec.fragments,
            "requested": spec.requested,
            "final": {s: final_values.get(s, "n") for s in spec.requested},
            "dropped": dropped, "hash": spec_hash}


def configure(spec: kconfig.ConfigSpec, wt: Path, build_dir: Path,
              sandboxed: bool = False) -> list[dict]:
    """Merge the config into build_dir/.config, run olddefconfig; return the dropped symbols.
    Sandboxed, the tree's scripts run in a scratch O= (<build_dir>-config) and only the
    resulting .config is copied over: no posted code runs in the build's own O= directory."""
    out, jail = build_dir, None
    if sandboxed:
        out = build_dir.with_name(build_dir.name + "-config")
        shutil.rmtree(out, ignore_errors=True)
        jail = sandbox.for_build(wt, out, trusted=False)
    else:
        pool.mark_untrusted(build_dir)  # the tip's Kconfig tools run in the build's own O=
    kconfig.merge(spec, wt, out / ".config", jail)
    proc = kconfig.olddefconfig(wt, out, [], jail)
    if proc.returncode != 0:
        raise InfraError(f"make olddefconfig failed: {proc.stderr.strip()[-400:]}")
    if sandboxed:
        build_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / ".config", build_dir / ".config")
    return kconfig.dropped_symbols(spec, build_dir / ".config", wt)


def jail(sandboxed: bool, wt: Path, build_dir: Path, base_step: bool) -> sandbox.Jail | None:
    """The sandbox of one build (None with --no-sandbox). Only the base step, in an O= no
    posted code has built in since the build place made or wiped it, may write the shared
    ccache; any other build marks its O= first (pool.mark_untrusted), even without the
    sandbox, so a later run's base build there only reads the cache."""
    trusted = base_step and pool.may_feed_the_cache(build_dir)
    if not trusted:
        pool.mark_untrusted(build_dir)
    return sandbox.for_build(wt, build_dir, trusted) if sandboxed else None


def localversion(config_name: str, k: int) -> str:
    return f"-kpipe-{config_name}-s{k}" if config_name != "default" else f"-kpipe-s{k}"


def raise_disk_full(step_dir: Path) -> None:
    raise OSError(errno.ENOSPC, "No space left on device during the build",
                  str(step_dir / "build.log"))


def new_step(k: int, config: str, step_in: dict, step_rel: str, version: str) -> dict:
    return {"index": k, "config": config, "dir": step_rel, "localversion": version,
            "key": "", "patch": k or None, "commit": step_in["commit"],
            "apply": step_in["apply"], "build": {"status": "not-run", "config": config},
            "boot": {"status": "not-run"}, "tests": [], "splats": [], "reused_from": None}


def prefix_paths(build_rec: dict, step_rel: str) -> dict:
    """A build record (paths relative to the step) with paths relative to the run."""
    out = dict(build_rec)
    out["log"] = f"{step_rel}/{build_rec['log']}"
    out["artifacts"] = {k: f"{step_rel}/{v}" for k, v in build_rec["artifacts"].items()}
    return out


def save_warnings(step_dir: Path, found: list[diagnostics.Diagnostic]) -> None:
    diagnostics.save(step_dir / "warnings.json", found)


def load_warnings(step_dir: Path) -> list[diagnostics.Diagnostic]:
    return diagnostics.load(step_dir / "warnings.json")


def checkout(wt: Path, commit: str) -> None:
    proc = subprocess.run(["git", "-C", str(wt), "checkout", "-q", "--detach", commit],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise InfraError(f"git checkout {commit[:12]} failed: {proc.stderr.strip()}")


def touches_kconfig(patch: Path) -> bool:
    return any(Path(f).name.startswith(KCONFIG_FILES) for f in apply.touched_files(patch))
