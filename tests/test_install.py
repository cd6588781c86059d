"""A real install: `pip install` of this checkout (not editable) into a fresh venv, then
`kpipe doctor` and `kpipe report` from another directory.

Reads the checkout's tracked files and tests/golden/; writes a copy of the checkout, the venv,
a home directory and a run copy under the test's tmp_path. Quick: the package is
installed without its dependencies, which
come from the project's .venv through a .pth file added after the install (so pip never sees,
nor touches, the project's editable kpipe). The build backend (setuptools, pyproject.toml's
build-system) is pip's own isolated build environment, from the package index.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
SHIPPED = ("configs", "virtme-tests", "patches")


def _tracked() -> list[str]:
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    return [f for f in out if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    for rel in _tracked():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], capture_output=True, text=True, check=True)
    site_dir = Path(purelib.stdout.strip())
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (site_dir / "zz-kpipe-test-deps.pth").write_text("\n".join(deps) + "\n")
    home = tmp / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("KPIPE_REPORTS", "KPIPE_HOME", "PYTHONPATH", "XDG_DATA_HOME")}
    env |= {"HOME": str(home), "KPIPE_CACHE": str(tmp / "cache")}
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return {"venv": venv, "site": site_dir, "env": env, "cwd": elsewhere, "home": home}


def kpipe(inst: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(inst["venv"] / "bin" / "kpipe"), *args], capture_output=True,
                          text=True, env=inst["env"], cwd=inst["cwd"])


def test_the_installed_package_is_the_copy_not_the_checkout(installed):
    py = installed["venv"] / "bin" / "python"
    proc = subprocess.run([str(py), "-c", "import pipeline; print(pipeline.__file__)"],
                          capture_output=True, text=True, env=installed["env"],
                          cwd=installed["cwd"])
    assert Path(proc.stdout.strip()).is_relative_to(installed["site"]), proc.stderr
    assert (installed["site"] / "pipeline" / "report" / "templates").is_dir()


def test_every_shipped_file_is_installed(installed):
    share = installed["venv"] / "share" / "kpipe"
    missing = [rel for rel in _tracked() if rel.split("/")[0] in SHIPPED  # dotfiles stay
               and not Path(rel).name.startswith(".")
               and not (share / rel).is_file()]
    assert not missing, f"not in pyproject.toml's data-files: {missing}"


def test_doctor_finds_its_home_in_the_install(installed):
    proc = kpipe(installed, "doctor", "--no-accel", "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert checks["home"]["ok"], checks["home"]
    assert checks["home"]["detail"] == str(installed["venv"] / "share" / "kpipe")
    # scripts/setup.sh installs bubblewrap; the doctor starts it
    assert checks["sandbox"]["ok"], checks["sandbox"]


def test_report_renders_a_golden_record_from_another_directory(installed, tmp_path):
    run = tmp_path / "mixed"
    shutil.copytree(GOLDEN / "records" / "mixed", run)
    proc = kpipe(installed, "report", str(run), "--format", "mail")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (GOLDEN / "reports" / "mixed" / "report.mail").read_text()
    proc = kpipe(installed, "report", str(run))
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == run / "report.html"
    assert json.loads((run / "results.json").read_text())["run_id"] in \
        (run / "report.html").read_text()


def test_generated_output_goes_to_the_per_user_place(installed):
    proc = kpipe(installed, "report", "no-such-run")
    assert proc.returncode == 2
    want = installed["home"] / ".local" / "share" / "kpipe" / "reports" / "runs" / "no-such-run"
    assert str(want) in proc.stderr
    assert not list(installed["site"].glob("reports")), "wrote into site-packages"
