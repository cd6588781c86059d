"""Kernel trees: import a linux-source tarball into a git repository, or open a checkout.

Reads a linux-source tarball (Debian's installed /usr/src/linux-source-6.12.tar.xz, or one
pipeline/intake/debpkg.py fetched for a `debian-package` tree of configs/trees.toml); writes a
bare git repository per named tree (pipeline/intake/trees.py: <cache>/tree.git for the default
tree, <cache>/trees/<name>.git for the others, so importing one never moves another's refs)
with one commit holding exactly the tarball's files, tagged debian-<version>.

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
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import git

from pipeline import paths
from pipeline.errors import InfraError
from pipeline.intake import debpkg, trees
from pipeline.locking import locked

IMPORT_IDENT = "kpipe import <kpipe@localhost>"
IMPORT_DATE = "946684800 +0000"  # 2000-01-01: fixed so the commit id depends on the files only
IMPORT_REF_PREFIX = "refs/kpipe/imports/"
PACKAGE_REF_PREFIX = "refs/kpipe/packages/"  # <package>/<version, %-quoted>: fetched and imported


class TreeError(InfraError):
    """The kernel tree cannot be imported or opened."""


@dataclass
class TreeInfo:
    path: Path
    head: str
    describe: str
    source: str  # "debian-tarball:<file>@<sha256>", "debian-package:<pkg>=<ver>@<sha256>",
    # or "checkout:<dir>"
    name: str | None = None  # the configs/trees.toml name; None for a --tree checkout
    version: str = "unknown"  # the kernel version of its top Makefile, e.g. 7.3.4


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


def _lock_name(repo_dir: Path) -> str:
    """One import at a time per repository (tree.git keeps the name it always had)."""
    return "tree-import" if repo_dir.name == "tree.git" else f"tree-import-{repo_dir.stem}"


def import_tarball(tarball: Path, repo_dir: Path) -> str:
    """Import `tarball` into the bare repository `repo_dir`; return the commit id."""
    if not tarball.is_file():
        package = tarball.name.removesuffix(".tar.xz")
        raise TreeError(f"{tarball} not found: install it with `apt-get install {package}`"
                        " (or run scripts/setup.sh)")
    sha = _sha256(tarball)
    ref = IMPORT_REF_PREFIX + sha
    repo_dir.mkdir(parents=True, exist_ok=True)
    with locked(_lock_name(repo_dir)):
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
        version = commit_version(repo_dir, commit)
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


def commit_version(repo_dir: Path, commit: str) -> str:
    """The kernel version of `commit`'s top Makefile (e.g. 7.3.4); "unknown" without one."""
    proc = subprocess.run(["git", "-C", str(repo_dir), "show", f"{commit}:Makefile"],
                          capture_output=True)
    return _kernel_version(proc.stdout) if proc.returncode == 0 else "unknown"


def _quote(path: str) -> str:
    """Quote a path for fast-import when it needs it (C-style, as git does)."""
    if not re.search(r'[\s"\\]|^"', path) and path.isprintable():
        return path
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def open_tree(tree: Path | None = None, tarball: Path | None = None,
              name: str | None = None) -> TreeInfo:
    """Open `tree` (an existing kernel checkout), or import `tarball` into the default tree's
    repository, or open (importing it on first use) the named tree, the default one if None."""
    if tree is not None:
        return _open_checkout(tree)
    if tarball is not None:
        return _info(paths.default_tree_dir(), import_tarball(tarball, paths.default_tree_dir()),
                     trees.default_name(), f"debian-tarball:{tarball}")
    name = name or trees.default_name()
    entry = trees.importable(name)
    repo_dir = trees.repo_dir(name)
    if entry["source"] == "debian-tarball":
        ball = Path(entry["tarball"])
        return _info(repo_dir, import_tarball(ball, repo_dir), name, f"debian-tarball:{ball}")
    return _info(repo_dir, _import_package(entry, repo_dir), name,
                 f"debian-package:{entry['package']}={entry['version']}")


def imported(name: str) -> TreeInfo | None:
    """Tree `name` as it is in the cache, or None when it was never imported (fetches nothing)."""
    entry = trees.importable(name)
    repo_dir = trees.repo_dir(name)
    if not (repo_dir / "HEAD").exists():
        return None
    if entry["source"] == "debian-package":
        head = _rev(repo_dir, _package_ref(entry))
        label = f"debian-package:{entry['package']}={entry['version']}"
    else:
        head, label = _rev(repo_dir, "refs/heads/main"), f"debian-tarball:{entry['tarball']}"
    return _info(repo_dir, head, name, label) if head else None


def _ref_safe(version: str) -> str:
    """A Debian version as a ref name component: %-quoted, `~` too (git refuses it in refs)."""
    return quote(version, safe="").replace("~", "%7E")


def _package_ref(entry: dict) -> str:
    return f"{PACKAGE_REF_PREFIX}{entry['package']}/{_ref_safe(entry['version'])}"


def _rev(repo_dir: Path, ref: str) -> str | None:
    proc = subprocess.run(["git", "-C", str(repo_dir), "rev-parse", "-q", "--verify",
                           f"{ref}^{{commit}}"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _import_package(entry: dict, repo_dir: Path) -> str:
    """The commit of a debian-package tree: fetched and imported once, then found by its ref."""
    ref = _package_ref(entry)
    if (repo_dir / "HEAD").exists() and (head := _rev(repo_dir, ref)):
        return head
    with locked(f"fetch-{entry['package']}"):
        if (repo_dir / "HEAD").exists() and (head := _rev(repo_dir, ref)):
            return head  # another process imported it while this one waited
        top = paths.downloads_dir() / f"{entry['package']}_{_ref_safe(entry['version'])}"
        head = import_tarball(debpkg.fetch_tarball(entry, top), repo_dir)
        subprocess.run(["git", "-C", str(repo_dir), "update-ref", ref, head], check=True)
        shutil.rmtree(top, ignore_errors=True)  # the repository holds every file of it now
        return head


def _info(repo_dir: Path, head: str, name: str, label: str) -> TreeInfo:
    repo = git.Repo(repo_dir)
    return TreeInfo(repo_dir, head, _describe(repo, head),
                    f"{label}@{_sha256_of_import(repo, head)}", name,
                    commit_version(repo_dir, head))


def _open_checkout(tree: Path) -> TreeInfo:
    try:
        repo = git.Repo(tree)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise TreeError(f"--tree {tree}: not a git repository") from exc
    head = repo.head.commit.hexsha
    path = Path(repo.git_dir if repo.bare else repo.working_tree_dir)
    return TreeInfo(path, head, _describe(repo, head), f"checkout:{tree}", None,
                    commit_version(path, head))


def _sha256_of_import(repo: git.Repo, head: str) -> str:
    """The sha256 of the tarball `head` was imported from (its refs/kpipe/imports/ ref)."""
    for ref in repo.references:
        if ref.path.startswith(IMPORT_REF_PREFIX) and ref.commit.hexsha == head:
            return ref.path[len(IMPORT_REF_PREFIX):]
    return "unknown"


def _describe(repo: git.Repo, commit: str) -> str:
    try:
        return repo.git.describe("--tags", "--always", commit)
    except git.GitCommandError:
        return commit[:12]

