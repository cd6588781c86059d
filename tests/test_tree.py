"""Importing a linux-source tarball gives the same commit id wherever and whenever it runs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pipeline import paths
from pipeline.intake import tree, trees


def _tarball(path: Path, mtime: int) -> Path:
    """A small tarball shaped like Debian's: top dir, ignore-everything .gitignore, a symlink."""
    files = {
        "linux-source-6.12/Makefile": (b"VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\n"
                                       b"EXTRAVERSION =\nNAME = Baby Opossum Posse\n", 0o644),
        "linux-source-6.12/.gitignore": (b"*.o\n/*\n!/debian/\n", 0o644),
        "linux-source-6.12/scripts/checkpatch.pl": (b"#!/usr/bin/perl\n", 0o755),
        "linux-source-6.12/drivers/vhost/scsi.c": (b"/* scsi */\n", 0o644),
        "linux-source-6.12/a file with spaces.txt": (b"x\n", 0o644),
    }
    with tarfile.open(path, "w:xz") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, mtime
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("linux-source-6.12/drivers/vhost/link.c")
        link.type, link.linkname, link.mtime = tarfile.SYMTYPE, "scsi.c", mtime
        tar.addfile(link)
    return path


def test_same_tarball_same_commit_in_two_places(tmp_path: Path) -> None:
    ball = _tarball(tmp_path / "linux-source-6.12.tar.xz", 1000)
    first = tree.import_tarball(ball, tmp_path / "one.git")
    second = tree.import_tarball(ball, tmp_path / "two.git")
    assert first == second
    listing = subprocess.run(["git", "-C", str(tmp_path / "one.git"), "ls-tree", "-r", first],
                             capture_output=True, text=True, check=True).stdout
    # every file of the tarball, ignore rules notwithstanding, with its mode
    assert "100755 blob" in listing and "scripts/checkpatch.pl" in listing
    assert "120000 blob" in listing and "drivers/vhost/link.c" in listing
    assert "a file with spaces.txt" in listing and ".gitignore" in listing
    msg = subprocess.run(["git", "-C", str(tmp_path / "one.git"), "log", "-1",
                          "--format=%an %at %s", first],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert msg == "kpipe import 946684800 Import linux-source-6.12.tar.xz: Linux 6.12.117"


def test_another_tarball_gives_another_commit(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = tree.import_tarball(_tarball(tmp_path / "a" / "linux-source-6.12.tar.xz", 1000),
                              tmp_path / "one.git")
    two = tree.import_tarball(_tarball(tmp_path / "b" / "linux-source-6.12.tar.xz", 2000),
                              tmp_path / "two.git")
    # the mtime differs, so the tarball's sha256 (named in the message) differs
    assert one != two


def test_real_debian_tarball_imports_to_the_cached_commit(kernel_tree: tree.TreeInfo,
                                                          tmp_path: Path) -> None:
    """A second, independent import of Debian's tarball yields the session's commit id."""
    again = tree.import_tarball(paths.DEBIAN_TARBALL, tmp_path / "again.git")
    assert again == kernel_tree.head
    assert kernel_tree.describe.startswith("debian-6.12.")


def test_missing_tarball_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(tree.TreeError, match="apt-get install linux-source-6.12`"):
        tree.import_tarball(tmp_path / "linux-source-6.12.tar.xz", tmp_path / "x.git")
    with pytest.raises(tree.TreeError, match="apt-get install linux-source-7.3`"):
        tree.import_tarball(tmp_path / "linux-source-7.3.tar.xz", tmp_path / "x.git")


def test_each_named_tree_has_its_own_repository(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KPIPE_CACHE", str(tmp_path))
    assert trees.default_name() == "debian-6.12"
    assert trees.repo_dir("debian-6.12") == tmp_path / "tree.git"
    assert trees.repo_dir("debian-7.3") == tmp_path / "trees" / "debian-7.3.git"
    assert tree.imported("debian-7.3") is None  # nothing fetched to say so


@pytest.mark.parametrize(("args", "message"), [
    (["tree", "no-such"], "no tree 'no-such' in configs/trees.toml (known: debian-6.12, "),
    (["tree", "vhost"], "a git remote, not importable: use it as --base-remote https://"),
    (["tree", "debian-7.3", "--tarball", "x.tar.xz"], "give a tree NAME or --tarball"),
    (["run", "--tree-name", "no-such", "--no-boot"], "no tree 'no-such'"),
    (["run", "--tree-name", "debian-7.3", "--tree", "."], "not allowed with argument"),
])
def test_bad_tree_names_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    env = dict(os.environ, KPIPE_CACHE=str(tmp_path / "cache"),
               KPIPE_REPORTS=str(tmp_path / "reports"))
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "cache" / "trees").exists()


def test_a_package_that_cannot_be_fetched_is_an_infra_error(tmp_path: Path) -> None:
    """A real apt-get against an archive suite that does not exist: exit code 3, apt's words."""
    from pipeline import errors
    from pipeline.intake import debpkg

    entry = {"package": "linux-source-7.3", "version": "7.3.4-1~bpo13+1",
             "suite": "no-such-suite"}
    with pytest.raises(debpkg.FetchError, match="apt-get update of no-such-suite failed") as exc:
        debpkg.fetch_tarball(entry, tmp_path / "dl")
    failed = errors.failure(exc.value)
    assert failed is not None and failed.code == 3
    assert not list((tmp_path / "dl").glob("*.deb")) and not list((tmp_path / "dl").glob("*.xz"))
