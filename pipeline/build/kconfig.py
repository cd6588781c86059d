"""Kernel configuration: merge a base config and fragments, then check what make kept.

Reads configs/configs.toml (named configs), fragments under configs/kconfig/, and the kernel
tree's Kconfig files and defconfig; writes <O=>/.config through kconfiglib, runs
`make olddefconfig`, and returns what was requested, what the final .config holds, and every
requested symbol that make dropped together with the dependency that is not met.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import kconfiglib

from pipeline import paths
from pipeline.errors import BadInput, InfraError
from pipeline.intake import tree


class KconfigError(BadInput):
    """A config cannot be produced (unknown config name, unreadable fragment, make failed)."""


class KconfigToolError(InfraError):
    """The tree's Kconfig cannot be evaluated on this machine (a tool it runs is missing)."""


class Kconfig612(kconfiglib.Kconfig):
    """kconfiglib 14.1 with the one change Linux 6.12's Kconfig needs.

    6.12 spells the MODULES marker as a bare `modules` attribute (kernel/module/Kconfig);
    kconfiglib only knows the older `option modules`. Rewriting that attribute while the files
    are read is enough for the x86 tree to parse.
    """

    _MODULES_ATTR = re.compile(r"^(\s*)modules\s*$", re.M)

    def _open(self, filename, mode):  # noqa: ANN001 - kconfiglib's signature
        fh = super()._open(filename, mode)
        if mode != "r" or not str(filename).endswith("kernel/module/Kconfig"):
            return fh
        import io

        with fh:
            text = self._MODULES_ATTR.sub(r"\1option modules", fh.read())
        return io.StringIO(text)


@dataclass
class ConfigSpec:
    name: str
    defconfig: str
    tree_fragments: list[str]
    fragments: list[str]
    requested: dict[str, str] = field(default_factory=dict)
    boot_timeout: float | None = None  # seconds to the guest runner, when the default is short

    def fragment_paths(self) -> list[Path]:
        """configs/kconfig/<name>.config for a name; a path ending in .config as given."""
        return [Path(f) if f.endswith(".config") else
                paths.CONFIGS_DIR / "kconfig" / f"{f}.config" for f in self.fragments]


def load_spec(name: str, extra_fragments: list[str] | None = None) -> ConfigSpec:
    """The named config from configs/configs.toml, plus extra fragment names."""
    data = tomllib.loads((paths.CONFIGS_DIR / "configs.toml").read_text())
    if name not in data.get("config", {}):
        known = ", ".join(sorted(data.get("config", {})))
        raise KconfigError(f"unknown config {name!r} (known: {known})")
    fragments = list(data["config"][name]["fragments"]) + list(extra_fragments or [])
    spec = ConfigSpec(name, data["base"]["defconfig"], list(data["base"]["tree_fragments"]),
                      fragments, boot_timeout=data["config"][name].get("boot_timeout"))
    for path in spec.fragment_paths():
        if not path.is_file():
            raise KconfigError(f"config fragment {path} not found")
        spec.requested.update(parse_fragment(path.read_text()))
    return spec


_SET = re.compile(r"^CONFIG_(\w+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_(\w+) is not set$")


def parse_fragment(text: str) -> dict[str, str]:
    """SYM -> value ('y', 'n', 'm', a number or a quoted string) for each line of a fragment."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _SET.match(line):
            out[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line):
            out[m.group(1)] = "n"
    return out


def spec_hash(spec: ConfigSpec, read_tree_file: Callable[[str], bytes]) -> str:
    """Hash of everything that decides the config's input (not the tree's Kconfig files).

    `read_tree_file` reads a file of the base tree by its relative path (from a worktree or
    straight from git), so the hash is known before any checkout.
    """
    digest = hashlib.sha256(spec.name.encode())
    for rel in [spec.defconfig, *spec.tree_fragments]:
        digest.update(read_tree_file(rel))
    for path in spec.fragment_paths():
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def git_reader(tree: Path, commit: str) -> Callable[[str], bytes]:
    """A `read_tree_file` for spec_hash that reads straight from git at `commit`."""
    def read(rel: str) -> bytes:
        proc = subprocess.run(["git", "-C", str(tree), "show", f"{commit}:{rel}"],
                              capture_output=True)
        if proc.returncode != 0:
            raise KconfigError(f"{rel} is not in the base tree {commit[:12]}")
        return proc.stdout
    return read


def kconfig_env(worktree: Path) -> dict[str, str]:
    """The environment kconfiglib needs to evaluate the kernel's Kconfig files."""
    env = {
        "srctree": str(worktree), "ARCH": "x86", "SRCARCH": "x86", "CC": "gcc", "LD": "ld",
        "HOSTCC": "gcc", "KERNELVERSION": _kernelversion(worktree),
    }
    return env


def _kernelversion(worktree: Path) -> str:
    fields = tree.makefile_version((worktree / "Makefile").read_bytes())
    return ".".join(fields[k] if fields[k] is not None else "0"
                    for k in ("VERSION", "PATCHLEVEL", "SUBLEVEL"))


def _load_kconfig(worktree: Path) -> Kconfig612:
    saved = dict(os.environ)
    os.environ.update(kconfig_env(worktree))
    cwd = os.getcwd()
    try:
        os.chdir(worktree)
        return Kconfig612("Kconfig", warn=False)
    except kconfiglib.KconfigError as exc:
        raise KconfigToolError(f"cannot evaluate the tree's Kconfig: {exc}") from exc
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)


def merge(spec: ConfigSpec, worktree: Path, out_config: Path) -> None:
    """Write the merged base + fragments config to `out_config` with kconfiglib."""
    kconf = _load_kconfig(worktree)
    kconf.load_config(str(worktree / spec.defconfig))
    for rel in spec.tree_fragments:
        kconf.load_config(str(worktree / rel), replace=False)
    for path in spec.fragment_paths():
        kconf.load_config(str(path), replace=False)
    out_config.parent.mkdir(parents=True, exist_ok=True)
    kconf.write_config(str(out_config), header="# kpipe: merged by kconfiglib\n")


def read_config(path: Path) -> dict[str, str]:
    """SYM -> value of a .config (unset symbols as 'n')."""
    return parse_fragment(path.read_text())


def dropped_symbols(spec: ConfigSpec, final_config: Path, worktree: Path) -> list[dict]:
    """Every requested symbol whose final value differs, with the dependency that is unmet."""
    final = read_config(final_config)
    misses = {s: v for s, v in spec.requested.items() if final.get(s, "n") != v}
    if not misses:
        return []
    kconf = _load_kconfig(worktree)
    kconf.load_config(str(final_config))
    return [{"sym": sym, "want": want, "got": final.get(sym, "n"), "unmet": _unmet(kconf, sym)}
            for sym, want in sorted(misses.items())]


def _unmet(kconf: Kconfig612, name: str) -> str:
    sym = kconf.syms.get(name)
    if sym is None or not sym.nodes:
        return "symbol does not exist in this tree"
    terms = _and_terms(sym.direct_dep)
    unmet = [kconfiglib.expr_str(t) for t in terms if kconfiglib.expr_value(t) == 0]
    if unmet:
        return "depends on " + " && ".join(unmet)
    if sym.rev_dep is not kconf.n and kconfiglib.expr_value(sym.rev_dep):
        return "forced by select: " + kconfiglib.expr_str(sym.rev_dep)
    if not sym.nodes[0].prompt:
        return "no prompt: only set by select (" + kconfiglib.expr_str(sym.rev_dep) + ")"
    return "value out of range or limited by choice"


def _and_terms(expr) -> list:  # noqa: ANN001 - kconfiglib expression tuples
    if isinstance(expr, tuple) and expr[0] == kconfiglib.AND:
        return _and_terms(expr[1]) + _and_terms(expr[2])
    return [expr]


def olddefconfig(worktree: Path, build_dir: Path,
                 make_args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", str(worktree), f"O={build_dir}", *make_args,
                           "olddefconfig"], capture_output=True, text=True)
