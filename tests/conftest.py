"""Shared fixtures: the imported tree, a sparse worktree for quick git work, isolated dirs.

Session-scoped fixtures share one imported kernel tree and one ccache (the cache in
$KPIPE_CACHE, default ~/.cache/kpipe) across every test, so CI imports and cold-builds once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import paths
from pipeline.intake import tree

GOLDEN = Path(__file__).parent / "golden"

# The fixtures that import the real kernel tree or build and boot a kernel from it: a test
# that uses one is marked e2e, so that `pytest -m "not e2e"` is the quick subset.
KERNEL_FIXTURES = {"kernel_tree", "sparse_worktree", "full_worktree", "mixed_run",
                   "base_kernel", "lkdtm_kernel", "fresh73", "tree73"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if KERNEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test writes its runs and b4's cache under its own tmp dir."""
    monkeypatch.setenv("KPIPE_REPORTS", str(tmp_path / "reports"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture(scope="session")
def kernel_tree() -> tree.TreeInfo:
    """The Debian 6.12 tree imported into the shared cache (imported once per cache)."""
    return tree.open_tree()


@pytest.fixture
def sparse_worktree(kernel_tree: tree.TreeInfo, tmp_path: Path):
    """A worktree of the imported tree with only drivers/vhost checked out (fast git work)."""
    path = tmp_path / "sparse"
    git = ["git", "-C", str(kernel_tree.path)]
    sparse_checkout(kernel_tree.path, path, kernel_tree.head)
    yield path
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([*git, "worktree", "prune"], check=True)


def sparse_checkout(repo: Path, path: Path, commit: str, cone: str = "/drivers/vhost/") -> None:
    """A worktree with only `cone` checked out.

    `git sparse-checkout` would turn on extensions.worktreeConfig in the shared repository
    (which GitPython misreads as non-bare), so the sparse file is written by hand and
    core.sparseCheckout is given to the one checkout that needs it.
    """
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "--no-checkout",
                    "--detach", str(path), commit], check=True)
    gitdir = Path(subprocess.run(["git", "-C", str(path), "rev-parse", "--absolute-git-dir"],
                                 check=True, capture_output=True, text=True).stdout.strip())
    (gitdir / "info").mkdir(exist_ok=True)
    (gitdir / "info" / "sparse-checkout").write_text(cone + "\n")
    subprocess.run(["git", "-C", str(path), "-c", "core.sparseCheckout=true", "checkout", "-q"],
                   check=True)


IDENTITY = {"GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "test@example.org",
            "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "test@example.org",
            "GIT_AUTHOR_DATE": "2026-11-20T10:00:00Z",
            "GIT_COMMITTER_DATE": "2026-11-20T10:00:00Z"}


def git(wt: Path, *args: str, env: dict | None = None) -> str:
    full = dict(os.environ, **IDENTITY, **(env or {}))
    return subprocess.run(["git", "-C", str(wt), *args], check=True, capture_output=True,
                          text=True, env=full).stdout.strip()


@pytest.fixture(scope="session")
def full_worktree(kernel_tree: tree.TreeInfo, tmp_path_factory: pytest.TempPathFactory):
    """A full checkout of the imported tree at its commit (for Kconfig work), shared."""
    path = tmp_path_factory.mktemp("full") / "linux"
    subprocess.run(["git", "-C", str(kernel_tree.path), "worktree", "add", "-q", "--detach",
                    str(path), kernel_tree.head], check=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["git", "-C", str(kernel_tree.path), "worktree", "prune"], check=True)


@pytest.fixture(scope="session")
def shared_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One reports dir for the session's kernel runs, so equal steps are built once."""
    return tmp_path_factory.mktemp("shared-reports")


@dataclass
class Kernel:
    bzimage: Path
    system_map: Path
    config: Path
    localversion: str
    run_dir: Path
    series: Path | None = None  # the series the run was given


def kpipe_run(args: list[str], reports: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, KPIPE_REPORTS=str(reports))
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "run", *args, "--json",
                           "--no-boot"],
                          capture_output=True, text=True, env=env)


def printed_record(proc: subprocess.CompletedProcess) -> dict:
    """The record `kpipe run --json` printed; a run that printed none fails the test."""
    import json

    try:
        return json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"kpipe run printed no record (exit {proc.returncode}):\n"
                    f"{proc.stderr[-3000:]}")


def _step_kernel(proc: subprocess.CompletedProcess, reports: Path, index: int) -> Kernel:
    rec = printed_record(proc)
    run_dir = reports / "runs" / rec["run_id"]
    step = next(s for s in rec["steps"] if s["index"] == index)
    if step["build"]["status"] != "pass":
        pytest.fail(f"step {index} did not build: {step['build']}")
    art = step["build"]["artifacts"]
    return Kernel(run_dir / art["bzImage"], run_dir / art["System.map"], run_dir / art[".config"],
                  step["localversion"], run_dir)


@pytest.fixture(scope="session")
def mixed_run(kernel_tree: tree.TreeInfo, shared_reports: Path,
              tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`kpipe run --no-boot` of the five-patch series of series_factory.mixed_series."""
    from series_factory import mixed_series

    series = mixed_series(kernel_tree.path, kernel_tree.head,
                          tmp_path_factory.mktemp("e2e") / "series")
    proc = kpipe_run([str(series)], shared_reports)
    rec = printed_record(proc)
    run_dir = shared_reports / "runs" / rec["run_id"]
    return {"proc": proc, "run_dir": run_dir, "record": rec, "series": series,
            "reports": shared_reports}


@pytest.fixture(scope="session")
def base_kernel(mixed_run: dict) -> Kernel:
    """The imported 6.12.117 tree built with the default config: step 0 of the mixed run."""
    return _step_kernel(mixed_run["proc"], mixed_run["reports"], 0)


@pytest.fixture(scope="session")
def lkdtm_kernel(kernel_tree: tree.TreeInfo, shared_reports: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Kernel:
    """The same base with the test-only LKDTM fragment (the one extra kernel of the boot tests)."""
    from series_factory import one_patch_series

    series = one_patch_series(kernel_tree.path, kernel_tree.head,
                              tmp_path_factory.mktemp("lkdtm-kernel") / "series", "lkdtm")
    proc = kpipe_run([str(series), "--fragment", "lkdtm"], shared_reports)
    kernel = _step_kernel(proc, shared_reports, 0)
    dropped = json.loads((kernel.run_dir / "results.json").read_text())["configs"][0]["dropped"]
    assert dropped == [], f"the LKDTM kernel lacks what its tests provoke with: {dropped}"
    kernel.series = series
    return kernel


def tree_refs(repo: Path) -> str:
    """Every ref of a repository with its commit (what an import may or may not move)."""
    return subprocess.run(["git", "-C", str(repo), "for-each-ref", "--format=%(refname) "
                           "%(objectname)"], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="session")
def fresh73(kernel_tree: tree.TreeInfo, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A cache as on a fresh machine that imported 6.12 and then ran `kpipe tree debian-7.3`.

    Its tree.git is a mirror of the session's 6.12 repository (hard links, every ref); its
    ccache is the shared one and the accelerator probe's answer is copied in. The 7.3 import is
    the real one, in kpipe's one implementation (pipeline/intake/debpkg.py: apt-get download
    with kpipe's own source list, dpkg-deb; tree.py: git fast-import), ~80 s. Gives the cache,
    its environment, what `kpipe tree --json` printed and tree.git's refs before and after.
    """
    cache = tmp_path_factory.mktemp("fresh-cache")
    subprocess.run(["git", "clone", "-q", "--mirror", "--local", str(kernel_tree.path),
                    str(cache / "tree.git")], check=True)
    (cache / "ccache").symlink_to(paths.ccache_dir())
    if (paths.cache_dir() / "accel.json").is_file():
        shutil.copy(paths.cache_dir() / "accel.json", cache / "accel.json")
    env = dict(os.environ, KPIPE_CACHE=str(cache))
    before = tree_refs(cache / "tree.git")
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "tree", "debian-7.3", "--json"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return {"cache": cache, "env": env, "tree": json.loads(proc.stdout), "refs_before": before,
            "refs_after": tree_refs(cache / "tree.git")}


@pytest.fixture(scope="session")
def tree73(fresh73: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full checkout of Debian's 7.3 as `kpipe tree debian-7.3` imported it (fresh73).

    It and its repository live in the session's temporary directory, which pytest's own
    retention removes: deleting 1.7 GB at teardown took 108 s on a loaded host."""
    path = tmp_path_factory.mktemp("linux73") / "linux"
    subprocess.run(["git", "-C", fresh73["tree"]["path"], "worktree", "add", "-q", "--detach",
                    str(path), fresh73["tree"]["commit"]], check=True)
    return path
