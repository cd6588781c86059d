"""The sandbox a step's configure and build run in: bubblewrap (Debian's `bubblewrap`).

A posted patch is untrusted code: its Makefiles, Kconfig `$(shell ...)` calls and scripts run
when the tree is configured and built. Inside the sandbox they get no network (a network
namespace of their own), the host read-only, a private empty /tmp and $HOME (tmpfs: writes
there vanish with the sandbox), the worktree read-only, and write access only to the paths
the build is given: its O= directory and, for a trusted build, the shared ccache. Trusted is
the base (the tree's own commit, not posted code) built in an O= directory no posted code
has run in since the build place made or wiped it (pipeline/intake/pool.py marks an O= as soon
as posted code is about to build in it; pipeline/run/step_ops.jail decides): the walk
configures in a scratch O= (with the tip checked out, as it must) and copies only the
resulting .config over. Every other build reads the shared ccache and never
writes it (ccache's read-only mode, and the directory mounted read-only): that is the run's
own ccache view, so an untrusted build cannot poison what later builds take from the cache;
what it compiles stays in its O= directory for the next step.
Hand-written over bwrap's command line: there is no Python binding of it in Debian.

Reads nothing itself; runs `bwrap` (probe) and wraps the commands of pipeline/build/make.py
and pipeline/build/kconfig.py. Writes nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline import paths
from pipeline.errors import InfraError

BWRAP = "bwrap"
BASE_ARGS = ("--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net",
             "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent")
# What a process sees when the sandbox stops it: a write outside its paths, a connection
REFUSED_RE = re.compile(r".*(Read-only file system|Network is unreachable|Temporary failure in "
                        r"name resolution|Cannot assign requested address).*")


class SandboxError(InfraError):
    """The sandbox cannot start on this machine (and the run was not told --no-sandbox)."""


@dataclass(frozen=True)
class Jail:
    """One build's sandbox: the paths it may write and the hidden ones it may read."""

    writable: tuple[Path, ...]
    readable: tuple[Path, ...] = ()
    ccache_writable: bool = False

    def also_reading(self, extra: list[Path]) -> Jail:
        """This jail, with `extra` (files or folders: a fragment given by path) readable."""
        return replace(self, readable=tuple(dict.fromkeys(
            [*self.readable, *(p.resolve() for p in extra)])))

    def wrap(self, cmd: list[str]) -> list[str]:
        """`cmd` run inside bwrap with this jail's mounts."""
        args = [BWRAP, *BASE_ARGS, "--tmpfs", "/tmp"]
        home = Path.home()
        if home != Path("/"):
            args += ["--tmpfs", str(home)]
        for path in self.readable:
            args += ["--ro-bind-try", str(path), str(path)]
        for path in self.writable:
            path.mkdir(parents=True, exist_ok=True)
            args += ["--bind", str(path), str(path)]
        return [*args, "--", *cmd]


def for_build(worktree: Path, build_dir: Path, trusted: bool) -> Jail:
    """The jail of one configure or build: writes to its O= directory, and to the shared
    ccache only when `trusted`; reads the worktree and its git repository, kpipe's configs/,
    the ccache and the tools on $PATH even where /tmp and $HOME are hidden. The worktree
    itself stays read-only: with O= kbuild writes nothing into the source tree, and a build
    that cannot plant files there cannot leave any for a later one."""
    ccache = paths.ccache_dir()
    readable = [worktree, _git_common_dir(worktree), paths.CONFIGS_DIR, ccache, *_tool_dirs()]
    writable = [build_dir] + ([ccache] if trusted else [])
    return Jail(tuple(dict.fromkeys(p.resolve() for p in writable)),
                tuple(dict.fromkeys(p.resolve() for p in readable)), trusted)


def _tool_dirs() -> list[Path]:
    """The $PATH entries, each under $HOME widened to its top folder there (~/.pyenv, not
    ~/.pyenv/shims: a shim runs what lies beside it)."""
    home = Path.home()
    out = []
    for entry in filter(None, os.environ.get("PATH", "").split(os.pathsep)):
        path = Path(entry)
        if path.is_relative_to(home) and path != home:
            path = home / path.relative_to(home).parts[0]
        out.append(path)
    return out


def _git_common_dir(worktree: Path) -> Path:
    proc = subprocess.run(["git", "-C", str(worktree), "rev-parse", "--git-common-dir"],
                          capture_output=True, text=True)
    out = proc.stdout.strip()
    return (worktree / out).resolve() if proc.returncode == 0 and out else worktree


def ccache_env(jail: Jail | None, build_dir: Path) -> dict[str, str]:
    """ccache's settings for a build: the shared cache, read-only for an untrusted one."""
    env = {"CCACHE_DIR": str(paths.ccache_dir())}
    if jail is not None and not jail.ccache_writable:
        env.update(CCACHE_READONLY="1", CCACHE_NOSTATS="1",
                   CCACHE_TEMPDIR=str(build_dir / ".ccache-tmp"))
    return env


def probe() -> str | None:
    """Why the sandbox cannot start on this machine, or None when it can."""
    if shutil.which(BWRAP) is None:
        return f"{BWRAP} not found (apt-get install bubblewrap)"
    try:
        proc = subprocess.run([BWRAP, *BASE_ARGS, "--tmpfs", "/tmp", "--", "true"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{BWRAP} did not run: {exc}"
    if proc.returncode != 0:
        return f"{BWRAP} cannot make its namespaces here: {proc.stderr.strip()[-300:]}"
    return None


def version() -> str | None:
    try:
        out = subprocess.run([BWRAP, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return None
    return out.strip() or None


def refusals(log_text: str) -> list[str]:
    """The lines of a failed sandboxed build that say the sandbox stopped something."""
    return list(dict.fromkeys(m.group(0).strip() for m in REFUSED_RE.finditer(log_text)))[:5]
