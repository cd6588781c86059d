"""The build sandbox: a series whose Makefile reaches outside its tree is stopped, and a
machine where the sandbox cannot start stops the run unless told --no-sandbox.

The hostile series patches the tree's top Makefile so that `make prepare` first writes into
the shared ccache and into the test's tmp dir, then connects to a port this test listens on.
Its base is the LKDTM kernel's (fixture `lkdtm_kernel`), so only the patched step is built,
and it fails in its first seconds. Reads the imported tree; writes the series, the runs and a
bin dir without bwrap under the test's tmp dir.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import sparse_checkout
from series_factory import _commit_all, _name_cover

from pipeline import paths

KPIPE = [sys.executable, "-m", "pipeline.cli"]


def host_address() -> str:
    """This host's address on its default route (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        return probe.getsockname()[0]


def hostile_series(repo: Path, base: str, out: Path, outside: Path, port: int) -> Path:
    """One patch to the top Makefile: a `prepare` prerequisite that writes outside the tree
    (the shared ccache, a tmp file) and connects to this host's address (not loopback: the
    sandbox has a loopback of its own)."""
    rule = (f"PHONY += kpipe-escape\nprepare: kpipe-escape\nkpipe-escape:\n"
            f"\t-echo poisoned > {paths.ccache_dir()}/kpipe-escape\n"
            f"\t-echo escaped > {outside}\n"
            f"\tpython3 -c 'import socket; socket.create_connection("
            f"(\"{host_address()}\", {port}), timeout=5)'\n\n")
    wt = out.parent / f".{out.name}-wt"
    sparse_checkout(repo, wt, base, "/Makefile")
    try:
        _commit_all(wt, [("Makefile", "PHONY += FORCE\nFORCE:\n",
                          rule + "PHONY += FORCE\nFORCE:\n", "kbuild: reach outside")])
        subprocess.run(["git", "-C", str(wt), "format-patch", "-q", "--thread",
                        "--cover-letter", f"--base={base}", "-o", str(out), f"{base}..HEAD"],
                       check=True)
        _name_cover(out, "kpipe test: a hostile Makefile")
    finally:
        subprocess.run(["rm", "-rf", str(wt)], check=True)
        subprocess.run(["git", "-C", str(repo), "worktree", "prune"], check=True)
    return out


@pytest.mark.e2e
def test_a_makefile_reaching_outside_is_refused_and_nothing_outside_changes(
        kernel_tree, lkdtm_kernel, tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind((host_address(), 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    outside = tmp_path / "outside.txt"
    series = hostile_series(kernel_tree.path, kernel_tree.head, tmp_path / "series", outside,
                            port)
    env = dict(os.environ, KPIPE_REPORTS=str(lkdtm_kernel.run_dir.parent.parent))
    proc = subprocess.run([*KPIPE, "run", str(series), "--fragment", "lkdtm", "--no-boot",
                           "--json"], capture_output=True, text=True, env=env)
    rec = json.loads(proc.stdout)
    assert rec["host"]["sandbox"]["used"] is True
    base, step = rec["steps"]
    assert base["reused_from"] == lkdtm_kernel.run_dir.name  # only the patch is built
    assert step["build"]["status"] == "fail", step["build"]
    refused = step["build"]["sandbox_refused"]
    assert any("Read-only file system" in line for line in refused), refused
    assert any("Network is unreachable" in line for line in refused), refused
    assert step["build"]["errors"][0]["message"].startswith("the build sandbox refused: ")
    assert proc.returncode == 1
    # nothing outside changed: no file in the shared ccache, none in tmp, no connection
    assert not (paths.ccache_dir() / "kpipe-escape").exists()
    assert not outside.exists()
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()


def test_without_bwrap_the_run_says_why_and_stops_unless_told_no_sandbox(tmp_path: Path):
    """A PATH holding every tool but bwrap: `kpipe run` stops (exit 3) naming it; with
    --no-sandbox the same run goes past the check (and stops at its bad series, exit 2)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for entry in os.environ["PATH"].split(os.pathsep):
        for tool in Path(entry).glob("*") if Path(entry).is_dir() else []:
            if tool.name != "bwrap" and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    env = dict(os.environ, PATH=str(bin_dir))
    missing = str(tmp_path / "no-such-series")
    proc = subprocess.run([*KPIPE, "run", missing, "--no-boot"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 3, proc.stderr
    assert "the build sandbox cannot start here: bwrap not found" in proc.stderr
    assert "--no-sandbox" in proc.stderr
    run = next((Path(env.get("KPIPE_REPORTS", "")) / "runs").iterdir())
    assert json.loads((run / "results.json").read_text())["host"]["sandbox"]["used"] is False
    proc = subprocess.run([*KPIPE, "run", missing, "--no-boot", "--no-sandbox"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "sandbox cannot start" not in proc.stderr
