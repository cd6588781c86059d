"""What a kernel build is linked from, as kbuild itself lists it.

Reads an O= directory after a build: the thin archives vmlinux.a (what vmlinux is always
linked from, since 6.1) and lib.a (linked where needed), read with binutils' `ar t`, and
modules.order with each module's NAME.mod. Writes nothing.

An O= directory that outlives runs (pipeline/intake/pool.py) also holds the objects of configs
and series built there before; only these lists say which objects the kernel of the last build
is made of.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pipeline.errors import BadInput

# kbuild's thin archives of vmlinux (globs relative to O=): a fact of kbuild, not a policy.
LINK_LISTS = ("vmlinux.a", "lib/lib.a", "arch/*/lib/lib.a")


def _members(build_dir: Path, archive: str) -> list[str]:
    """The member paths of a thin archive, relative to O= (binutils' `ar t` run there: given
    another path it prints them joined to it)."""
    proc = subprocess.run(["ar", "t", archive], capture_output=True, text=True, cwd=build_dir)
    if proc.returncode != 0:
        raise BadInput(f"ar t {archive}: {proc.stderr.strip()[-300:]}")
    return proc.stdout.split()


def _module_objects(build_dir: Path) -> list[str]:
    """Each module's objects: modules.order names the modules (NAME.o, or NAME.ko before
    6.2), NAME.mod the objects each is linked from."""
    order = build_dir / "modules.order"
    if not order.is_file():
        return []
    found: list[str] = []
    for line in order.read_text().split():
        stem = line.removesuffix(".ko").removesuffix(".o")
        mod = build_dir / f"{stem}.mod"
        found += mod.read_text().split() if mod.is_file() else [f"{stem}.o"]
        found.append(f"{stem}.mod.o")
    return found


def lists(build_dir: Path) -> dict[str, list[str]]:
    """{kbuild list: the objects it names, in link order} for each list this build has; {}
    when there is no vmlinux.a (then nothing can be said about what is linked)."""
    found: dict[str, list[str]] = {}
    for pattern in LINK_LISTS:
        for archive in sorted(build_dir.glob(pattern)):
            rel = archive.relative_to(build_dir).as_posix()
            found[rel] = _members(build_dir, rel)
    if "vmlinux.a" not in found:
        return {}
    if mods := _module_objects(build_dir):
        found["modules.order"] = mods
    return found


def linked_units(build_dir: Path) -> set[str] | None:
    """The source files (as kbuild names their units: drivers/vhost/vhost.c) whose objects the
    kernel is linked from, by stem; None when the build has no vmlinux.a."""
    found = lists(build_dir)
    if not found:
        return None
    return {o.removesuffix(".o") for objs in found.values() for o in objs if o.endswith(".o")}
