"""A step's object manifest: what its build produced, so that two steps whose objects are the
same can be told apart from two that differ.

Reads an O= directory right after a build (before the next step's checkout changes it), what
kbuild lists it as linked from (pipeline/build/linked.py) and configs/unchanged-objects.toml
(the other outputs hashed, which are left out, the LOCALVERSION pattern masked in them, and
which patch paths always boot). Writes nothing itself: callers keep the manifest as
`objects.json` in the step directory.

A manifest maps each hashed output's path to the sha256 of its bytes with the step's
LOCALVERSION masked (the version string is the one thing every step's objects differ in). The
objects hashed are the ones the kernel is linked from, as kbuild lists them (the members of the
thin archives vmlinux.a and lib.a, each module's objects), with their `.cmd` files, and each
list's member order: an O= directory that outlives runs (pipeline/intake/pool.py) also holds
objects of configs and series built there before, which no step links and which must not make
two steps differ.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pipeline import paths
from pipeline.build import linked
from pipeline.errors import BadInput

POLICY = "unchanged-objects.toml"
MASK = b"-kpipe-LOCALVERSION"


@dataclass(frozen=True)
class Policy:
    hashed: tuple[str, ...]
    left_out: tuple[str, ...]
    localversion: re.Pattern[bytes]
    always_boot: tuple[str, ...]


def load_policy(path: Path | None = None) -> Policy:
    path = path or paths.CONFIGS_DIR / POLICY
    try:
        data = tomllib.loads(path.read_text())
        return Policy(tuple(data["hashed"]), tuple(data.get("left_out", [])),
                      re.compile(data["localversion_pattern"].encode()),
                      tuple(data.get("always_boot", [])))
    except (OSError, KeyError, TypeError, re.error, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"{path}: {exc}") from exc


def _matches(rel: str, globs: tuple[str, ...]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, g) or ("/" not in g and fnmatch.fnmatchcase(name, g))
               for g in globs)


def _cmd_file(rel: str) -> str:
    head, _, name = rel.rpartition("/")
    return f"{head}/.{name}.cmd" if head else f".{name}.cmd"


def manifest(build_dir: Path, policy: Policy | None = None) -> dict[str, str]:
    """{path relative to O=: sha256 of its masked bytes} for every object the kernel is linked
    from and its .cmd file, each link list (its member order), and the other hashed outputs;
    {} when the build has no vmlinux.a."""
    policy = policy or load_policy()
    lists = linked.lists(build_dir)
    if not lists:
        return {}

    def digest(data: bytes) -> str:
        return hashlib.sha256(policy.localversion.sub(MASK, data)).hexdigest()

    out = {f"{name} (members)": digest("\n".join(members).encode())
           for name, members in lists.items()}
    for rel in {r for members in lists.values() for r in members}:
        for path in (rel, _cmd_file(rel)):
            if not _matches(path, policy.left_out) and (build_dir / path).is_file():
                out[path] = digest((build_dir / path).read_bytes())
    for path in build_dir.rglob("*"):
        rel = path.relative_to(build_dir).as_posix()
        if (_matches(rel, policy.hashed) and not _matches(rel, policy.left_out)
                and path.is_file() and not path.is_symlink()):
            out[rel] = digest(path.read_bytes())
    return dict(sorted(out.items()))


def differences(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """The outputs that differ between two manifests (added, removed or changed), sorted."""
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def always_boots(patch_paths: list[str], policy: Policy | None = None) -> list[str]:
    """The paths of a patch that make its step boot whatever its objects say."""
    policy = policy or load_policy()
    return [p for p in patch_paths if _matches(p, policy.always_boot)]


def save(step_dir: Path, objects: dict[str, str]) -> None:
    (step_dir / "objects.json").write_text(json.dumps(objects, indent=0, sort_keys=True))


def load(step_dir: Path) -> dict[str, str] | None:
    try:
        return json.loads((step_dir / "objects.json").read_text())
    except (OSError, ValueError):
        return None
