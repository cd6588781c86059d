"""Fetching a Debian linux-source package's tarball without touching the system's apt setup.

Reads a tree entry of configs/trees.toml (`package`, `version`, `suite`) and the Debian archive
over the network; writes, under <dir>: a private apt source list and package lists, the
downloaded .deb (removed once read) and the tarball it holds (`usr/src/<package>.tar.xz`).

apt-get is pointed at kpipe's own source list with `-o Dir::Etc::SourceList=...`,
`Dir::Etc::SourceParts=/nonexistent` and `Dir::State::Lists=...`, so /etc/apt and the system's
lists stay as they are; the archive key is Debian's keyring from the debian-archive-keyring
package. `dpkg-deb --fsys-tarfile` streams the package's files and Python's tarfile picks the
one tarball out of that stream, so nothing else of the package lands on disk.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

from pipeline.errors import InfraError

ARCHIVE = "http://deb.debian.org/debian"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


class FetchError(InfraError):
    """The package could not be downloaded or read (network, archive, disk): exit code 3."""


def _apt(top: Path) -> list[str]:
    return ["apt-get", "-q", "-o", f"Dir::Etc::SourceList={top / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", f"Dir::State::Lists={top / 'lists'}",
            "-o", f"Dir::Cache::archives={top / 'archives'}"]


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FetchError(f"{what} failed (exit {proc.returncode}): " + " | ".join(tail))


def download(entry: dict, top: Path) -> Path:
    """apt-get download `package=version` from `suite` into `top`; return the .deb."""
    pkg, version, suite = entry["package"], entry["version"], entry["suite"]
    if not KEYRING.is_file():
        raise FetchError(f"{KEYRING} not found: apt-get install debian-archive-keyring")
    (top / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (top / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (top / "sources.list").write_text(f"deb [signed-by={KEYRING}] {ARCHIVE} {suite} main\n")
    _run([*_apt(top), "update"], top, f"apt-get update of {suite}")
    _run([*_apt(top), "download", f"{pkg}={version}"], top, f"apt-get download {pkg}={version}")
    debs = sorted(top.glob(f"{pkg}_*.deb"))
    if not debs:
        raise FetchError(f"apt-get download {pkg}={version} wrote no .deb in {top}")
    return debs[0]


def extract_tarball(deb: Path, package: str, target: Path) -> Path:
    """Copy ./usr/src/<package>.tar.xz out of the .deb into `target`; return it."""
    inner = f"./usr/src/{package}.tar.xz"
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    found = False
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if member.name == inner and member.isfile():
                    src = tar.extractfile(member)
                    assert src is not None
                    partial = target.with_name(target.name + ".part")
                    with open(partial, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    partial.rename(target)
                    found = True
                    break
    finally:
        proc.kill()
        proc.wait()
    if not found:
        raise FetchError(f"{deb.name} holds no {inner}")
    return target


def fetch_tarball(entry: dict, top: Path) -> Path:
    """The package's kernel tarball in `top` (downloaded and extracted unless already there)."""
    top.mkdir(parents=True, exist_ok=True)
    target = top / f"{entry['package']}.tar.xz"
    if target.is_file():
        return target
    deb = download(entry, top)
    try:
        return extract_tarball(deb, entry["package"], target)
    finally:
        deb.unlink(missing_ok=True)
