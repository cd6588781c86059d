"""`kpipe doctor`: is this machine ready for kpipe, and what is missing?

Reads the installed tools' versions, dpkg's package list, free disk, the accelerator probe,
whether the build sandbox starts (pipeline/build/sandbox.py), whether kpipe's home
(pipeline/paths.py: configs/, virtme-tests/, the default series) is there and the known trees
(configs/trees.toml) with what of them is imported; writes nothing. Each check is {name, ok,
detail, fix}: a failing check names the command that installs what is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from pipeline import paths
from pipeline.intake import tree, trees

WANT_KERNEL = "6.12.117"
MIN_FREE_GB = 20

TOOLS = [  # (command, version flag, fix)
    ("git", "--version", "apt-get install git"),
    ("make", "--version", "apt-get install make"),
    ("gcc", "--version", "apt-get install gcc"),
    ("ccache", "--version", "apt-get install ccache"),
    ("flex", "--version", "apt-get install flex"),
    ("bison", "--version", "apt-get install bison"),
    ("bc", "--version", "apt-get install bc"),
    ("b4", "--version", "scripts/setup.sh (pip install b4)"),
    ("vng", "--version", "scripts/setup.sh (pip install virtme-ng)"),
    ("qemu-system-x86_64", "--version", "apt-get install qemu-system-x86"),
    ("busybox", "--help", "apt-get install busybox-static"),
    ("depmod", "--version", "apt-get install kmod"),
    ("udevadm", "--version", "apt-get install udev"),
]


def _which(cmd: str) -> str | None:
    return shutil.which(cmd) or (str(Path(sys.executable).with_name(cmd))
                                 if Path(sys.executable).with_name(cmd).exists() else None)


def _version(exe: str, flag: str) -> str:
    proc = subprocess.run([exe, flag], capture_output=True, text=True)
    out = (proc.stdout or proc.stderr).strip().splitlines()
    return out[0] if out else "?"


def kernel_source_version() -> str | None:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "linux-source-6.12"],
                          capture_output=True, text=True)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def checks(probe_accel: bool = True) -> list[dict]:
    out = []
    for cmd, flag, fix in TOOLS:
        exe = _which(cmd)
        out.append({"name": cmd, "ok": exe is not None,
                    "detail": _version(exe, flag) if exe else "not found", "fix": fix})
    ver = kernel_source_version()
    tarball = paths.DEBIAN_TARBALL
    ok = ver is not None and tarball.exists()
    detail = f"linux-source-6.12 {ver}" if ver else "linux-source-6.12 not installed"
    if ver and not ver.startswith(WANT_KERNEL):
        detail += f" (kpipe's default series is written for {WANT_KERNEL}; results may differ)"
    out.append({"name": "kernel-source", "ok": ok, "detail": detail,
                "fix": f"apt-get install linux-source-6.12={WANT_KERNEL}-1~deb12u1"})
    out.append(home_check())
    out.append(sandbox_check())
    out += tree_checks()
    free = shutil.disk_usage(paths.cache_dir()).free / 1e9
    out.append({"name": "disk", "ok": free >= MIN_FREE_GB,
                "detail": f"{free:.1f} GB free in {paths.cache_dir()}",
                "fix": f"free space: kpipe needs about {MIN_FREE_GB} GB for a run"})
    if probe_accel:
        out.append(_accel())
    return out


def _size_gb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9


def tree_checks() -> list[dict]:
    """One check per importable tree: its version when imported, and the disk it needs (its
    repository, plus trees.toml's `run_gb`: a checkout and one config's O= directory)."""
    out = []
    for name, entry in trees.known_trees().items():
        if entry.get("source") not in trees.IMPORTABLE:
            continue
        got = tree.imported(name)
        run_gb = entry.get("run_gb", 0)
        if got is not None:
            ok = True
            detail = (f"Linux {got.version} imported ({got.describe}, "
                      f"{_size_gb(got.path):.1f} GB in {got.path}); a run needs ~{run_gb} GB more")
        else:
            ok = entry["source"] == "debian-package" or Path(entry["tarball"]).is_file()
            detail = (f"not imported; `kpipe tree {name}` imports it: ~{entry.get('import_gb', 0)}"
                      f" GB, and a run needs ~{run_gb} GB more")
            if entry["source"] == "debian-package":
                detail += f" ({entry['package']} {entry['version']}, {entry['suite']})"
        out.append({"name": f"tree {name}", "ok": ok, "detail": detail,
                    "fix": f"kpipe tree {name}" if entry["source"] == "debian-package"
                    else f"apt-get install {Path(entry.get('tarball', '')).name[:-7]}"})
    return out


def sandbox_check() -> dict:
    """Whether the build sandbox (bubblewrap) starts here."""
    from pipeline.build import sandbox

    why = sandbox.probe()
    return {"name": "sandbox", "ok": why is None,
            "detail": why or f"{sandbox.version()}: builds run with no network, the host "
                             "read-only",
            "fix": "apt-get install bubblewrap; in a container, allow user namespaces (or run "
                   "kpipe run --no-sandbox: the series' code then builds with your rights)"}


def home_check() -> dict:
    """configs/, virtme-tests/ and the default series where kpipe looks for them."""
    wanted = [paths.CONFIGS_DIR / "configs.toml", paths.VIRTME_TESTS_DIR / "runner.py",
              paths.DEFAULT_SERIES]
    missing = [str(p) for p in wanted if not p.exists()]
    return {"name": "home", "ok": not missing,
            "detail": f"{paths.HOME}" + (f" lacks {', '.join(missing)}" if missing else ""),
            "fix": "set KPIPE_HOME to a folder holding configs/, virtme-tests/ and patches/ "
                   "(a kpipe checkout), or reinstall kpipe"}


def _accel() -> dict:
    try:
        from pipeline.boot import accel
    except ImportError as exc:
        return {"name": "accel", "ok": False, "detail": f"probe unavailable: {exc}", "fix": ""}
    result = accel.probe()
    return {"name": "accel", "ok": True,
            "detail": f"{result['accel']}: {result.get('reason', '')}", "fix": ""}
