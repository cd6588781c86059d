"""Config merging with kconfiglib on the real 6.12 Kconfig, checked after make olddefconfig.

The tree's own tools (merge_config.sh, make olddefconfig) run inside the build sandbox
(pipeline/build/sandbox.py) as a run's configure does: no network, the tree read-only,
writes only to the O= directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.build import kconfig, sandbox


def _configure(spec: kconfig.ConfigSpec, wt: Path, out: Path) -> list[dict]:
    jail = sandbox.for_build(wt, out, trusted=False)
    kconfig.merge(spec, wt, out / ".config", jail)
    proc = kconfig.olddefconfig(wt, out, [], jail)
    assert proc.returncode == 0, proc.stderr
    return kconfig.dropped_symbols(spec, out / ".config", wt)


def _suite_requires() -> set[str]:
    from pipeline import paths
    from pipeline.boot import suites

    return {req.removeprefix("CONFIG_") for d in sorted(paths.VIRTME_TESTS_DIR.iterdir())
            if (d / "suite.toml").is_file() for req in suites.load_suite(d.name).requires}


def _enabled(config: Path) -> int:
    return sum(v == "y" for v in kconfig.read_config(config).values())


def test_default_config_keeps_every_requested_symbol(full_worktree: Path, tmp_path: Path) -> None:
    spec = kconfig.load_spec("default")
    assert spec.base == "allnoconfig" and spec.base_is_target
    assert spec.requested["VHOST_SCSI"] == "y"
    assert spec.requested["PROVE_LOCKING"] == "y"
    assert _configure(spec, full_worktree, tmp_path / "o") == []
    final = kconfig.read_config(tmp_path / "o" / ".config")
    needed = _suite_requires() | {"TCM_IBLOCK", "DEBUG_KMEMLEAK", "PROVE_LOCKING",
                                  "VIRTIO_PCI", "9P_FS", "ACPI", "SMP"}
    assert {"VHOST_SCSI", "TARGET_CORE", "TCM_FILEIO", "CONFIGFS_FS"} <= needed
    assert {sym: final.get(sym, "n") for sym in needed} == dict.fromkeys(needed, "y")
    for sym in ("DRM", "KASAN", "USB_SUPPORT", "SOUND", "MODULES", "ETHERNET"):
        assert final.get(sym, "n") == "n", sym


def test_defconfig_debug_keeps_the_defconfig_base_and_is_larger(full_worktree: Path,
                                                               tmp_path: Path) -> None:
    spec = kconfig.load_spec("defconfig-debug")
    assert spec.base == "arch/x86/configs/x86_64_defconfig" and not spec.base_is_target
    assert _configure(spec, full_worktree, tmp_path / "d") == []
    lean = kconfig.load_spec("default")
    assert _configure(lean, full_worktree, tmp_path / "o") == []
    assert _enabled(tmp_path / "o" / ".config") < 0.85 * _enabled(tmp_path / "d" / ".config")


def test_spec_hash_names_the_base(full_worktree: Path) -> None:
    def read(rel: str) -> bytes:
        return (full_worktree / rel).read_bytes()

    lean, debug = kconfig.load_spec("default"), kconfig.load_spec("defconfig-debug")
    assert kconfig.spec_hash(lean, read) != kconfig.spec_hash(debug, read)
    other = kconfig.ConfigSpec("default", "tinyconfig", [], lean.fragments)
    assert kconfig.spec_hash(other, read) != kconfig.spec_hash(lean, read)


def test_kasan_profile_adds_kasan(full_worktree: Path, tmp_path: Path) -> None:
    spec = kconfig.load_spec("kasan")
    assert _configure(spec, full_worktree, tmp_path / "o") == []
    assert kconfig.read_config(tmp_path / "o" / ".config")["KASAN"] == "y"


def test_dropped_symbol_names_its_unmet_dependency(full_worktree: Path, tmp_path: Path) -> None:
    frag = tmp_path / "conflict.config"
    frag.write_text("CONFIG_TARGET_CORE=n\nCONFIG_VHOST_SCSI=y\nCONFIG_NO_SUCH_SYMBOL=y\n")
    spec = kconfig.load_spec("default", [str(frag)])
    dropped = {d["sym"]: d for d in _configure(spec, full_worktree, tmp_path / "o")}
    assert dropped["VHOST_SCSI"]["unmet"] == "depends on TARGET_CORE"
    assert dropped["VHOST_SCSI"]["got"] == "n"
    assert dropped["NO_SUCH_SYMBOL"]["unmet"] == "symbol does not exist in this tree"
    # TCM_FILEIO depends on TARGET_CORE too: requested =y by the vhost-scsi fragment
    assert "TARGET_CORE" in dropped["TCM_FILEIO"]["unmet"]


def test_unknown_config_name_is_bad_input() -> None:
    with pytest.raises(kconfig.KconfigError, match="unknown config 'nope'"):
        kconfig.load_spec("nope")


def test_fragment_parser() -> None:
    got = kconfig.parse_fragment('CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C="x y"\n# note\n')
    assert got == {"A": "y", "B": "n", "C": '"x y"'}


def test_a_config_may_set_its_own_boot_timeout() -> None:
    from pipeline.boot.vng import BootSettings
    from pipeline.run.boot_steps import boot_settings

    assert kconfig.load_spec("default").boot_timeout is None
    assert boot_settings("default").boot_timeout == BootSettings().boot_timeout
    kasan = kconfig.load_spec("kasan").boot_timeout
    assert kasan and kasan > BootSettings().boot_timeout
    assert boot_settings("kasan").boot_timeout == kasan


def test_explainer_that_cannot_read_the_tree_leaves_the_symbol_unexplained(
        full_worktree: Path, tmp_path: Path) -> None:
    frag = tmp_path / "conflict.config"
    frag.write_text("CONFIG_TARGET_CORE=n\nCONFIG_VHOST_SCSI=y\n")
    spec = kconfig.load_spec("default", [str(frag)])
    out = tmp_path / "o"
    kconfig.merge(spec, full_worktree, out / ".config")
    assert kconfig.olddefconfig(full_worktree, out, []).returncode == 0
    without_modules = tuple(r for r in kconfig.COMPAT_RULES if r.name != "modules")
    dropped = {d["sym"]: d for d in kconfig.dropped_symbols(spec, out / ".config",
                                                             full_worktree, without_modules)}
    unmet = dropped["VHOST_SCSI"]["unmet"]
    assert unmet.startswith("reason unknown: kconfiglib cannot read this tree (")
    assert "couldn't parse 'modules'" in unmet


def test_compat_rules_rewrite_what_kconfiglib_lacks() -> None:
    text = ("\tmodules\n\ttransitional\n\tdepends on USB if !USB_GADGET # cdns3\n"
            "\tdepends on MMC || !MMC # do not allow WFX=y if MMC=m\n")
    for rule in kconfig.COMPAT_RULES:
        text = rule.apply(text)
    assert text == ("\toption modules\n\n\tdepends on (USB) || !(!USB_GADGET) # cdns3\n"
                    "\tdepends on MMC || !MMC # do not allow WFX=y if MMC=m\n")


def test_73_every_named_config_keeps_every_requested_symbol(tree73: Path, tmp_path: Path) -> None:
    for name in ("default", "kasan", "defconfig-debug"):
        assert _configure(kconfig.load_spec(name), tree73, tmp_path / name) == [], name
    final = kconfig.read_config(tmp_path / "default" / ".config")
    assert {sym: final.get(sym, "n") for sym in _suite_requires()} == dict.fromkeys(
        _suite_requires(), "y")


def test_73_dropped_symbol_names_its_unmet_dependency(tree73: Path, tmp_path: Path) -> None:
    frag = tmp_path / "conflict.config"
    frag.write_text("CONFIG_TARGET_CORE=n\nCONFIG_VHOST_SCSI=y\n")
    spec = kconfig.load_spec("default", [str(frag)])
    dropped = {d["sym"]: d for d in _configure(spec, tree73, tmp_path / "o")}
    assert dropped["VHOST_SCSI"]["unmet"] == "depends on TARGET_CORE"
    without = tuple(r for r in kconfig.COMPAT_RULES if r.name != "transitional")
    blind = {d["sym"]: d for d in kconfig.dropped_symbols(spec, tmp_path / "o" / ".config",
                                                          tree73, without)}
    assert blind["VHOST_SCSI"]["got"] == "n"
    assert blind["VHOST_SCSI"]["unmet"] == ("reason unknown: kconfiglib cannot read this tree "
                                            "(arch/Kconfig:972: error: couldn't parse "
                                            "'transitional': syntax error)")
