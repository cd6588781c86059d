"""The kernel tree: import Debian's linux-source tarball into a git repository.

Reads a linux-source tarball (default /usr/src/linux-source-6.12.tar.xz); writes a bare git
repository (default <cache>/tree.git) with one commit holding exactly the tarball's files.

The import streams the tarball straight into `git fast-import` instead of unpacking it and
running `git add`: the tarball's top-level .gitignore ends in `/*` (Debian's packaging rule), so
`git add -A` would add nothing, and `git add -f` would depend on what else lies in the directory.
Streaming gives the tarball's files and modes and nothing else. Author, committer, date and
message are fixed (the message names the kernel version and the tarball's sha256), so the same
tarball yields the same commit id on every machine. No library streams a tar into git objects,
hence this small writer.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import git

from pipeline import paths
from pipeline.errors import InfraError
from pipeline.locking import locked

IMPORT_IDENT = "kpipe import <kpipe@localhost>"
IMPORT_DATE = "946684800 +0000"  # 2000-01-01: fixed so the commit id depends on the files only
IMPORT_REF_PREFIX = "refs/kpipe/imports/"


class TreeError(InfraError):
    """The kernel tree cannot be imported or opened."""


@dataclass
class TreeInfo:
    path: Path
    head: str
    describe: str
    source: str  # "debian-tarball:<file>@<sha256>" or "checkout:<dir>"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


VERSION_FIELDS = ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION")


def makefile_version(makefile: bytes) -> dict[str, str | None]:
    """The version fields of a kernel's top Makefile (VERSION = 6 ...); None for one missing."""
    fields: dict[str, str | None] = {}
    for key in VERSION_FIELDS:
        m = re.search(rb"^" + key.encode() + rb"[ \t]*=[ \t]*(\S*)", makefile, re.M)
        fields[key] = m.group(1).decode() if m else None
    return fields


def _kernel_version(makefile: bytes) -> str:
    v = {k: f or "" for k, f in makefile_version(makefile).items()}
    return f"{v['VERSION']}.{v['PATCHLEVEL']}.{v['SUBLEVEL']}{v['EXTRAVERSION']}"


def _members(tar: tarfile.TarFile):
    """Yield (path inside the top directory, mode, data) for files and symlinks, in tar order."""
    for member in tar:
        name = member.name.split("/", 1)
        if len(name) < 2 or not name[1]:
            continue
        rel = name[1]
        if member.issym():
            yield rel, "120000", member.linkname.encode()
        elif member.isfile():
            fh = tar.extractfile(member)
            assert fh is not None
            mode = "100755" if member.mode & 0o111 else "100644"
            yield rel, mode, fh.read()
        elif member.islnk():
            raise TreeError(f"hard link {member.name} in tarball is not supported")


def import_tarball(tarball: Path, repo_dir: Path) -> str:
    """Import `tarball` into the bare repository `repo_dir`; return the commit id."""
    if not tarball.is_file():
        raise TreeError(
            f"{tarball} not found: install it with "
            "`apt-get install linux-source-6.12` (or run scripts/setup.sh)"
        )
    sha = _sha256(tarball)
    ref = IMPORT_REF_PREFIX + sha
    repo_dir.mkdir(parents=True, exist_ok=True)
    with locked("tree-import"):
        if not (repo_dir / "HEAD").exists():
            subprocess.run(["git", "init", "-q", "--bare", str(repo_dir)], check=True)
            subprocess.run(["git", "-C", str(repo_dir), "symbolic-ref", "HEAD", "refs/heads/main"],
                           check=True)
        existing = subprocess.run(["git", "-C", str(repo_dir), "rev-parse", "-q", "--verify", ref],
                                  capture_output=True, text=True)
        if existing.returncode == 0:
            return existing.stdout.strip()
        commit = _fast_import(tarball, repo_dir, ref, sha)
        subprocess.run(["git", "-C", str(repo_dir), "update-ref", "refs/heads/main", commit],
                       check=True)
        version = _commit_version(repo_dir, commit)
        subprocess.run(["git", "-C", str(repo_dir), "tag", "-f", f"debian-{version}", commit],
                       check=True, capture_output=True)
        return commit


def _fast_import(tarball: Path, repo_dir: Path, ref: str, sha: str) -> str:
    proc = subprocess.Popen(
        ["git", "-C", str(repo_dir), "fast-import", "--quiet", "--done"],
        stdin=subprocess.PIPE,
    )
    assert proc.stdin is not None
    out = proc.stdin
    version = "unknown"
    files: list[tuple[str, str, int]] = []
    # xz decompresses in its own process, in parallel with the tar walk here.
    unxz = subprocess.Popen(["xz", "-dc", str(tarball)], stdout=subprocess.PIPE) \
        if tarball.suffix == ".xz" else None
    try:
        source = {"fileobj": unxz.stdout, "mode": "r|"} if unxz else {"name": tarball,
                                                                       "mode": "r|*"}
        with tarfile.open(**source) as tar:
            for mark, (rel, mode, data) in enumerate(_members(tar), start=1):
                if rel == "Makefile":
                    version = _kernel_version(data)
                out.write(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)))
                out.write(data)
                out.write(b"\n")
                files.append((rel, mode, mark))
        message = (f"Import {tarball.name}: Linux {version}\n\n"
                   f"Tarball sha256: {sha}\nImported by kpipe with fixed identity and date.\n")
        head = (f"commit {ref}\nauthor {IMPORT_IDENT} {IMPORT_DATE}\n"
                f"committer {IMPORT_IDENT} {IMPORT_DATE}\n")
        out.write(head.encode())
        out.write(b"data %d\n%s\n" % (len(message.encode()), message.encode()))
        for rel, mode, mark in sorted(files):
            out.write(f"M {mode} :{mark} {_quote(rel)}\n".encode())
        out.write(b"\ndone\n")
        out.close()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        if unxz is not None:
            unxz.kill()
            unxz.wait()
    if proc.wait() != 0:
        raise TreeError(f"git fast-import failed on {tarball}")
    return subprocess.run(["git", "-C", str(repo_dir), "rev-parse", ref],
                          capture_output=True, text=True, check=True).stdout.strip()


def _commit_version(repo_dir: Path, commit: str) -> str:
    makefile = subprocess.run(["git", "-C", str(repo_dir), "show", f"{commit}:Makefile"],
                              capture_output=True, check=True).stdout
    return _kernel_version(makefile)


def _quote(path: str) -> str:
    """Quote a path for fast-import when it needs it (C-style, as git does)."""
    if not re.search(r'[\s"\\]|^"', path) and path.isprintable():
        return path
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def open_tree(tree: Path | None = None, tarball: Path | None = None) -> TreeInfo:
    """Open `tree` (an existing kernel checkout) or import the Debian tarball into the cache."""
    if tree is not None:
        try:
            repo = git.Repo(tree)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise TreeError(f"--tree {tree}: not a git repository") from exc
        head = repo.head.commit.hexsha
        return TreeInfo(Path(repo.git_dir if repo.bare else repo.working_tree_dir),
                        head, _describe(repo, head), f"checkout:{tree}")
    tarball = tarball or paths.DEBIAN_TARBALL
    repo_dir = paths.default_tree_dir()
    head = import_tarball(tarball, repo_dir)
    repo = git.Repo(repo_dir)
    return TreeInfo(repo_dir, head, _describe(repo, head),
                    f"debian-tarball:{tarball}@{_sha256_cached(tarball, repo, head)}")


def _sha256_cached(tarball: Path, repo: git.Repo, head: str) -> str:
    for ref in repo.references:
        if ref.path.startswith(IMPORT_REF_PREFIX) and ref.commit.hexsha == head:
            return ref.path[len(IMPORT_REF_PREFIX):]
    return _sha256(tarball)


def _describe(repo: git.Repo, commit: str) -> str:
    try:
        return repo.git.describe("--tags", "--always", commit)
    except git.GitCommandError:
        return commit[:12]

