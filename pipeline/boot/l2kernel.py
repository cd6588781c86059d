"""The L2 kernel a suite boots inside the step's guest (not the kernel under test).

A suite whose suite.toml says `l2_kernel = "<fragment>"` starts its own QEMU guest (L2) inside
the step's guest; its kernel must be small, or a boot under TCG inside TCG takes minutes. It is
built from the run's base commit (the tree's own code, never a posted patch): `make tinyconfig`
plus configs/kconfig/<fragment>.config, configured and built in the build sandbox like a base
step, once per tree commit and fragment.

Reads the tree repository at the base commit and the fragment. Writes, under the cache,
`l2-kernels/<commit>-<fragment hash>/vmlinux` (with its build.log and .config beside it): the
uncompressed ELF, which QEMU boots through its PVH entry point (the fragment has CONFIG_PVH)
without the real-mode setup and the decompressor, both slow under TCG inside TCG; builds
in a worktree under `l2-kernels/.build-<key>/` that is always removed; a failed build leaves
its log as `l2-kernels/<key>.failed.log` and raises L2BuildError.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from pipeline import paths
from pipeline.build import kconfig, make, sandbox
from pipeline.errors import BadInput, InfraError
from pipeline.intake import worktree
from pipeline.locking import locked

BASE_TARGET = "tinyconfig"
LOCALVERSION = "-kpipe-l2"
IMAGE = "vmlinux"  # what the L2 QEMU boots (-kernel): the ELF with the PVH note


class L2BuildError(InfraError):
    """The L2 kernel could not be configured or built."""


def fragment_path(name: str) -> Path:
    return paths.CONFIGS_DIR / "kconfig" / f"{name}.config"


def cache_key(commit: str, fragment: str) -> str:
    """<tree commit>-<hash of the base target and the fragment's text>."""
    path = fragment_path(fragment)
    if not path.is_file():
        raise L2BuildError(f"L2 kernel fragment {path} not found")
    digest = hashlib.sha256(f"make {BASE_TARGET}\n".encode() + path.read_bytes())
    return f"{commit}-{digest.hexdigest()[:12]}"


def root() -> Path:
    path = paths.cache_dir() / "l2-kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached(commit: str, fragment: str) -> Path | None:
    """The cached vmlinux for this commit and fragment, or None."""
    image = root() / cache_key(commit, fragment) / IMAGE
    return image if image.is_file() else None


def ensure(tree: Path, commit: str, fragment: str, sandboxed: bool = True,
           progress: Callable[[str], None] | None = None) -> Path:
    """The L2 vmlinux for `commit` of `tree` with `fragment`: from the cache, else built now
    (one build at a time per key; a second caller waits and takes the first one's)."""
    key = cache_key(commit, fragment)
    with locked(f"l2-kernel-{key}"):
        image = root() / key / IMAGE
        if image.is_file():
            return image
        if progress:
            progress(f"building the L2 kernel ({BASE_TARGET} + {fragment}) at {commit[:12]}")
        return _build(tree, commit, fragment, key, sandboxed)


def _build(tree: Path, commit: str, fragment: str, key: str, sandboxed: bool) -> Path:
    work = root() / f".build-{key}"
    staged = root() / f".staged-{key}"
    shutil.rmtree(work, ignore_errors=True)
    failed_log = root() / f"{key}.failed.log"
    src: Path | None = None
    try:
        src = worktree.add_at(tree, commit, work / "src")
        out = src / "o-l2"  # a direct child: relative srctree, so ccache hits across places
        jail = sandbox.for_build(src, out, trusted=True) if sandboxed else None
        spec = kconfig.ConfigSpec("l2", BASE_TARGET, [], [str(fragment_path(fragment))])
        spec.requested.update(kconfig.parse_fragment(fragment_path(fragment).read_text()))
        try:
            kconfig.merge(spec, src, out / ".config", jail)
        except kconfig.KconfigError as exc:
            raise L2BuildError(f"L2 kernel config: {exc}") from exc
        proc = kconfig.olddefconfig(src, out, [], jail)
        if proc.returncode != 0:
            raise L2BuildError(f"L2 kernel: make olddefconfig failed: "
                               f"{proc.stderr.strip()[-300:]}")
        if missing := unmet(spec.requested, kconfig.read_config(out / ".config"),
                            either_groups(fragment_path(fragment).read_text())):
            raise L2BuildError(f"L2 kernel config lacks {', '.join(missing)} "
                               f"(configs/kconfig/{fragment}.config)")
        step_dir = work / "out"
        outcome = make.build(src, out, LOCALVERSION, step_dir, [], jail=jail)
        if outcome.record["status"] != "pass":
            shutil.copyfile(step_dir / "build.log", failed_log)
            first = (outcome.record["errors"] or [{"message": "make failed"}])[0]
            raise L2BuildError(f"L2 kernel build failed: {first.get('message', first)} "
                               f"(log: {failed_log})")
        final = root() / key
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir()
        shutil.copyfile(out / IMAGE, staged / IMAGE)
        for name in ("build.log", ".config"):
            shutil.copyfile(step_dir / name, staged / name)
        os.replace(staged, final)
        failed_log.unlink(missing_ok=True)
        return final / IMAGE
    finally:
        if src is not None:
            worktree.remove(tree, src)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staged, ignore_errors=True)  # gone once moved; left by a failed copy


EITHER = re.compile(r"^#\s*kpipe-either:\s*(.+)$", re.M)


def either_groups(fragment_text: str) -> list[set[str]]:
    """The fragment's `# kpipe-either: A B` lines (a comment to Kconfig): symbols of which one
    is enough, for a need that trees spell differently (6.12's PROC_SYSCTL is 7.x's SYSCTL)."""
    return [set(m.group(1).removeprefix("CONFIG_").split()) for m in EITHER.finditer(fragment_text)]


def unmet(requested: dict[str, str], final: dict[str, str],
          either: list[set[str]] | None = None) -> list[str]:
    """The fragment's `=y` symbols the final .config does not have as `=y`, and its `is not
    set` symbols the final .config still has (a `select` can force one back on); of an
    `either` group, only when no symbol of the group is met (then all of them are named)."""
    def missed(sym: str) -> bool:
        value = requested[sym]
        return (value == "y" and final.get(sym) != "y") or (
            value == "n" and final.get(sym, "n") != "n")

    grouped = {sym: group for group in either or [] for sym in group}
    return [f"CONFIG_{sym}" for sym in requested
            if missed(sym) and all(missed(s) for s in grouped.get(sym, {sym}) if s in requested)]


def for_suites(suites: list, tree: Path | None, commit: str | None, sandboxed: bool = True,
               progress: Callable[[str], None] | None = None,
               ) -> tuple[dict[str, str], dict[str, str]]:
    """The plan environment the `suites` (pipeline.boot.suites.Suite) need for their L2
    kernel ($KPIPE_L2_KERNEL) and {suite name: why} for those whose kernel cannot be had."""
    env: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    fragment = None  # one $KPIPE_L2_KERNEL per boot: the first suite's fragment decides
    for suite in suites:
        if not suite.l2_kernel:
            continue
        if fragment not in (None, suite.l2_kernel):
            unavailable[suite.name] = (f"its L2 kernel ({suite.l2_kernel}) is not the one an "
                                       f"earlier suite of this boot uses ({fragment})")
            continue
        fragment = suite.l2_kernel
        if tree is None or commit is None:
            unavailable[suite.name] = "no base commit to build the L2 kernel from"
            continue
        try:
            env["KPIPE_L2_KERNEL"] = str(ensure(tree, commit, suite.l2_kernel, sandboxed,
                                                progress))
        except (InfraError, BadInput, OSError) as exc:
            unavailable[suite.name] = f"L2 kernel unavailable: {exc}"
    return env, unavailable
