"""Kernel configuration: merge a base config and fragments, then check what make kept.

Reads configs/configs.toml (named configs), fragments under configs/kconfig/, and the kernel
tree's Kconfig files and defconfig; writes <O=>/.config with the tree's own merge_config.sh (a
config's base is a defconfig file of the tree, or a make target such as `allnoconfig` made in
O= first), runs `make olddefconfig`, and returns what was requested, what the final .config
holds, and every requested symbol that make dropped. kconfiglib (read through COMPAT_RULES, one
rule per Kconfig feature it lacks) only explains a dropped symbol; when it cannot read a tree
the symbol is reported unexplained and the run goes on.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import kconfiglib

from pipeline import paths
from pipeline.build.sandbox import Jail
from pipeline.errors import BadInput
from pipeline.intake import tree


class KconfigError(BadInput):
    """A config cannot be produced (unknown config name, unreadable fragment, make failed)."""


@dataclass(frozen=True)
class CompatRule:
    """One Kconfig feature kconfiglib 14.1 lacks, rewritten as it reads the tree's files."""

    name: str
    why: str
    pattern: re.Pattern[str]
    replace: str | Callable[[re.Match[str]], str]

    def apply(self, text: str) -> str:
        return self.pattern.sub(self.replace, text)


def _conditional_dep(m: re.Match[str]) -> str:
    comment = f" {m[4]}" if m[4] else ""
    return f"{m[1]}depends on ({m[2].strip()}) || !({m[3].strip()}){comment}"


COMPAT_RULES: tuple[CompatRule, ...] = (
    CompatRule("modules",
               "6.12+ spell the MODULES marker as a bare `modules` attribute; kconfiglib "
               "knows only `option modules`, which means the same",
               re.compile(r"^([ \t]*)modules[ \t]*$", re.M), r"\1option modules"),
    CompatRule("transitional",
               "7.x marks renamed symbols `transitional` (read from old .configs, never "
               "written); it changes no dependency, so dropping it keeps the explanation",
               re.compile(r"^[ \t]*transitional[ \t]*(#.*)?$", re.M), ""),
    CompatRule("depends-if",
               "7.x has conditional dependencies `depends on A if B`: A is needed only when "
               "B holds, which is `depends on (A) || !(B)`",
               re.compile(r"^([ \t]*)depends on[ \t]+([^#\n]+?)[ \t]+if[ \t]+([^#\n]+?)"
                          r"[ \t]*(#.*)?$", re.M),
               _conditional_dep),
)


class CompatKconfig(kconfiglib.Kconfig):
    """kconfiglib 14.1 reading a tree through the compatibility rules (COMPAT_RULES)."""

    rules: tuple[CompatRule, ...] = COMPAT_RULES

    def _open(self, filename, mode):  # noqa: ANN001 - kconfiglib's signature
        fh = super()._open(filename, mode)
        if mode != "r":
            return fh
        with fh:
            text = fh.read()
        for rule in self.rules:
            text = rule.apply(text)
        return io.StringIO(text)


_MAKE_TARGET = re.compile(r"^[a-z0-9_]+config$")  # allnoconfig, tinyconfig, defconfig ...


@dataclass
class ConfigSpec:
    name: str
    base: str  # a make target that writes a .config (allnoconfig), or a file of the tree
    tree_fragments: list[str]
    fragments: list[str]
    requested: dict[str, str] = field(default_factory=dict)
    boot_timeout: float | None = None  # seconds to the guest runner, when the default is short

    @property
    def base_is_target(self) -> bool:
        return bool(_MAKE_TARGET.match(self.base))

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
    entry = data["config"][name]
    fragments = list(entry["fragments"]) + list(extra_fragments or [])
    spec = ConfigSpec(name, entry["base"], list(entry.get("tree_fragments", [])),
                      fragments, boot_timeout=entry.get("boot_timeout"))
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
    if spec.base_is_target:  # made by the tree's Kconfig, which the tree commit stands for
        digest.update(f"make {spec.base}".encode())
    for rel in [*([] if spec.base_is_target else [spec.base]), *spec.tree_fragments]:
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


def _load_kconfig(worktree: Path, rules: tuple[CompatRule, ...] = COMPAT_RULES) -> CompatKconfig:
    """The tree's Kconfig as kconfiglib reads it; kconfiglib.KconfigError if it cannot."""
    saved = dict(os.environ)
    os.environ.update(kconfig_env(worktree))
    cwd = os.getcwd()
    kind = type("CompatKconfig", (CompatKconfig,), {"rules": rules})
    try:
        os.chdir(worktree)
        return kind("Kconfig", warn=False)
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)


def merge(spec: ConfigSpec, worktree: Path, out_config: Path, jail: Jail | None = None) -> None:
    """Write base + fragments to `out_config` with the tree's own scripts/kconfig/merge_config.sh.

    Only merges (-m): `make olddefconfig` (see olddefconfig) then resolves the result. A base
    that is a make target is made first, in the O= directory `out_config` sits in. The tree's
    script and make run inside `jail` (the build sandbox) unless it is None.
    """
    out_config.parent.mkdir(parents=True, exist_ok=True)
    script = worktree / "scripts" / "kconfig" / "merge_config.sh"
    base = worktree / spec.base
    if spec.base_is_target:
        base = _make_base(spec.base, worktree, out_config.parent, jail)
    inputs = [base, *(worktree / rel for rel in spec.tree_fragments), *spec.fragment_paths()]
    env = {**os.environ, "KCONFIG_CONFIG": str(out_config.resolve())}
    cmd = ["bash", str(script), "-m", *(str(p.resolve()) for p in inputs)]
    if jail is not None:  # a fragment given by path may lie anywhere
        cmd = jail.also_reading(spec.fragment_paths()).wrap(cmd)
    proc = subprocess.run(cmd, cwd=out_config.parent, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not out_config.is_file():
        raise KconfigError(f"merge_config.sh failed: {(proc.stderr or proc.stdout).strip()[-400:]}")


def _make_base(target: str, worktree: Path, build_dir: Path, jail: Jail | None) -> Path:
    """`make <target>` in O=build_dir (inside `jail` unless None), kept as
    build_dir/.config.<target> for the merge."""
    cmd = ["make", "-s", "-C", str(worktree), f"O={build_dir.resolve()}", target]
    proc = subprocess.run(jail.wrap(cmd) if jail else cmd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    made = build_dir / ".config"
    if proc.returncode != 0 or not made.is_file():
        raise KconfigError(f"make {target} failed: {(proc.stderr or proc.stdout).strip()[-400:]}")
    base = build_dir / f".config.{target}"
    made.replace(base)
    return base


def read_config(path: Path) -> dict[str, str]:
    """SYM -> value of a .config (unset symbols as 'n')."""
    return parse_fragment(path.read_text())


def dropped_symbols(spec: ConfigSpec, final_config: Path, worktree: Path,
                    rules: tuple[CompatRule, ...] = COMPAT_RULES) -> list[dict]:
    """Every requested symbol whose final value differs, with the dependency that is unmet.

    kconfiglib only explains: when it cannot read the tree, each dropped symbol is reported as
    unexplained with its error, and the run goes on.
    """
    final = read_config(final_config)
    misses = {s: v for s, v in spec.requested.items() if final.get(s, "n") != v}
    if not misses:
        return []
    try:
        kconf = _load_kconfig(worktree, rules)
        kconf.load_config(str(final_config))
        explain: Callable[[str], str] = lambda sym: _unmet(kconf, sym)  # noqa: E731
    except kconfiglib.KconfigError as exc:
        reason = f"reason unknown: kconfiglib cannot read this tree ({_one_line(exc)})"
        explain = lambda sym: reason  # noqa: E731
    return [{"sym": sym, "want": want, "got": final.get(sym, "n"), "unmet": explain(sym)}
            for sym, want in sorted(misses.items())]


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _unmet(kconf: CompatKconfig, name: str) -> str:
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


def olddefconfig(worktree: Path, build_dir: Path, make_args: list[str],
                 jail: Jail | None = None) -> subprocess.CompletedProcess:
    """`make olddefconfig` in build_dir, inside `jail` (the build sandbox) unless None."""
    cmd = ["make", "-s", "-C", str(worktree), f"O={build_dir}", *make_args, "olddefconfig"]
    return subprocess.run(jail.wrap(cmd) if jail else cmd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
