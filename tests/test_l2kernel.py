"""The L2 kernel of suites that boot a guest of their own (pipeline/boot/l2kernel.py).

The cache key follows the fragment's text; a cached kernel is taken without a build; a
fragment the tree cannot meet is a clear error that caches nothing and leaves no worktree; a
suite whose L2 kernel cannot be had gets `error` results saying why, without a boot; and the
real l2-tiny kernel builds from the imported tree in the sandbox (shared cache: built once).

Reads the imported tree and configs/kconfig/l2-tiny.config; writes a cache and a configs/
copy of its own under tmp_path (the real build: the shared cache, like every kernel build).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from pipeline import paths
from pipeline.boot import l2kernel
from pipeline.boot import step as bootstep
from pipeline.boot import suites as suitemod
from pipeline.build import kconfig

COMMIT = "c0ffee" * 6 + "c0ff"


def pvh_entry(vmlinux: Path) -> bool:
    """Whether the ELF has the Xen PHYS32_ENTRY note (type 18) QEMU's PVH boot looks for.
    Read by hand: a few ELF64 headers (the venv has no ELF library, and readelf's wording of
    Xen notes differs between binutils versions)."""
    data = vmlinux.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        ptype, _, offset, _, _, filesz = struct.unpack_from("<IIQQQQ", data,
                                                            phoff + i * phentsize)
        if ptype != 4:  # PT_NOTE
            continue
        pos, end = offset, offset + filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
            name = data[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and ntype == 18:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


@pytest.fixture
def configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configs/ of the test's own (with the real l2-tiny fragment) and an empty cache."""
    top = tmp_path / "configs"
    shutil.copytree(paths.CONFIGS_DIR, top)
    monkeypatch.setattr(paths, "CONFIGS_DIR", top)
    monkeypatch.setenv("KPIPE_CACHE", str(tmp_path / "cache"))
    return top


def test_the_cache_key_is_the_commit_and_the_fragment_text(configs: Path) -> None:
    key = l2kernel.cache_key(COMMIT, "l2-tiny")
    assert key.startswith(COMMIT + "-")
    assert l2kernel.cache_key("1" * 40, "l2-tiny") != key
    frag = configs / "kconfig" / "l2-tiny.config"
    frag.write_text(frag.read_text() + "CONFIG_SCSI_PROC_FS=y\n")
    assert l2kernel.cache_key(COMMIT, "l2-tiny") != key
    with pytest.raises(l2kernel.L2BuildError, match="no-such-fragment.config not found"):
        l2kernel.cache_key(COMMIT, "no-such-fragment")


def test_a_cached_kernel_is_taken_without_a_build(configs: Path) -> None:
    image = (paths.cache_dir() / "l2-kernels" / l2kernel.cache_key(COMMIT, "l2-tiny")
             / l2kernel.IMAGE)
    image.parent.mkdir(parents=True)
    image.write_bytes(b"kernel")
    # no tree at all: any build would fail
    assert l2kernel.ensure(Path("/nonexistent"), COMMIT, "l2-tiny") == image
    assert l2kernel.cached(COMMIT, "l2-tiny") == image
    assert l2kernel.cached("2" * 40, "l2-tiny") is None


def test_unmet_names_the_symbols_the_config_lacks() -> None:
    got = l2kernel.unmet({"A": "y", "B": "y", "C": "n"}, {"A": "y", "B": "n"})
    assert got == ["CONFIG_B"]
    # a symbol the fragment turns off that the final config still has (a `select`)
    got = l2kernel.unmet({"A": "y", "C": "n", "D": "n"}, {"A": "y", "C": "y", "D": "n"})
    assert got == ["CONFIG_C"]
    # a need two trees spell differently: one of the group is enough, none names them all
    either = l2kernel.either_groups("# kpipe-either: CONFIG_P S\n")
    assert either == [{"P", "S"}]
    assert l2kernel.unmet({"P": "y", "S": "y"}, {"S": "y"}, either) == []
    assert l2kernel.unmet({"P": "y", "S": "y"}, {}, either) == ["CONFIG_P", "CONFIG_S"]
    assert l2kernel.unmet({"P": "y", "S": "y"}, {}) == ["CONFIG_P", "CONFIG_S"]


def _suite(root: Path, l2: str) -> suitemod.Suite:
    sdir = root / "mig"
    sdir.mkdir(parents=True)
    (sdir / "t.py").write_text("#!/bin/sh\n")
    (sdir / "t.py").chmod(0o755)
    (sdir / "suite.toml").write_text(f'name = "mig"\nl2_kernel = "{l2}"\n'
                                     '[[program]]\npath = "t.py"\ntimeout = 5\n')
    return suitemod.load_suite("mig", root)


def test_suites_of_one_boot_share_one_l2_kernel(configs: Path, tmp_path: Path) -> None:
    """$KPIPE_L2_KERNEL is one path: a second suite asking for another fragment is not run
    (an error saying why), rather than booting the first one's kernel unseen."""
    (configs / "kconfig" / "l2-b.config").write_text("CONFIG_PRINTK=y\n")
    image = (paths.cache_dir() / "l2-kernels" / l2kernel.cache_key(COMMIT, "l2-tiny")
             / l2kernel.IMAGE)
    image.parent.mkdir(parents=True)
    image.write_bytes(b"kernel")
    first, same = _suite(tmp_path / "a", "l2-tiny"), _suite(tmp_path / "b", "l2-tiny")
    other = _suite(tmp_path / "c", "l2-b")
    other.name = "other"
    env, unavailable = l2kernel.for_suites([first, other, same], Path("/nonexistent"), COMMIT)
    assert env == {"KPIPE_L2_KERNEL": str(image)}
    assert unavailable == {"other": "its L2 kernel (l2-b) is not the one an earlier suite of "
                                    "this boot uses (l2-tiny)"}


def test_suite_toml_reads_l2_kernel(tmp_path: Path) -> None:
    assert _suite(tmp_path / "a", "l2-tiny").l2_kernel == "l2-tiny"
    with pytest.raises(suitemod.SuiteError, match="l2_kernel must name a fragment"):
        _suite(tmp_path / "b", "../escape")


def test_a_suite_whose_l2_kernel_cannot_be_had_is_an_error_not_run(configs: Path,
                                                                   tmp_path: Path) -> None:
    suite = _suite(tmp_path / "s", "no-such-fragment")
    env, unavailable = l2kernel.for_suites([suite], Path("/nonexistent"), COMMIT)
    assert env == {}
    assert unavailable["mig"].startswith("L2 kernel unavailable: L2 kernel fragment ")
    assert unavailable["mig"].endswith("no-such-fragment.config not found")
    env, unavailable = l2kernel.for_suites([suite], None, None)
    assert unavailable == {"mig": "no base commit to build the L2 kernel from"}
    # the step's record: one error per program, with the reason
    tests, _ = bootstep.collect_tests([suite], {"mig": []}, tmp_path / "rw", [], "",
                                      tmp_path / "out", "guest runner completed",
                                      {"mig": "L2 kernel unavailable: it broke"})
    assert [(t["case"], t["status"], t["message"]) for t in tests] == [
        ("t.py", "error", "L2 kernel unavailable: it broke")]
    # and the guest's plan names the suites that can run, not this one
    fine = _suite(tmp_path / "f", "l2-tiny")
    fine.name = "fine"
    run = bootstep.to_run([suite, fine], {"mig": [], "fine": []}, {"mig": "broke"})
    plan = bootstep._plan(run, "-x", 1, env)
    assert [s["name"] for s in plan["suites"]] == ["fine"]
    assert plan["env"]["KPIPE_PYTHON_DEPS"] == bootstep.PYTHON_DEPS


@pytest.mark.e2e  # a worktree of the imported tree and `make tinyconfig` in the sandbox
def test_a_fragment_the_tree_cannot_meet_is_a_clear_error(kernel_tree, configs: Path) -> None:
    frag = configs / "kconfig" / "l2-broken.config"
    frag.write_text((configs / "kconfig" / "l2-tiny.config").read_text()
                    + "CONFIG_KPIPE_NO_SUCH_SYMBOL=y\n")
    with pytest.raises(l2kernel.L2BuildError,
                       match=r"L2 kernel config lacks CONFIG_KPIPE_NO_SUCH_SYMBOL "
                             r"\(configs/kconfig/l2-broken.config\)"):
        l2kernel.ensure(kernel_tree.path, kernel_tree.head, "l2-broken")
    root = paths.cache_dir() / "l2-kernels"
    assert sorted(p.name for p in root.iterdir()) == [], "a failed build left something"
    listed = subprocess.run(["git", "-C", str(kernel_tree.path), "worktree", "list"],
                            capture_output=True, text=True, check=True).stdout
    assert "l2-kernels" not in listed


@pytest.mark.e2e  # builds the L2 kernel once per tree commit (about 5 min cold, shared cache)
def test_the_l2_tiny_kernel_builds_from_the_tree_and_is_cached(kernel_tree) -> None:
    image = l2kernel.ensure(kernel_tree.path, kernel_tree.head, "l2-tiny")
    key = l2kernel.cache_key(kernel_tree.head, "l2-tiny")
    assert image == paths.cache_dir() / "l2-kernels" / key / "vmlinux"
    assert image.stat().st_size > 100_000
    assert pvh_entry(image), f"{image} has no PVH entry note (QEMU could not boot it)"
    final = kconfig.read_config(image.parent / ".config")
    wanted = kconfig.parse_fragment(l2kernel.fragment_path("l2-tiny").read_text())
    frag = l2kernel.fragment_path("l2-tiny").read_text()
    assert l2kernel.unmet(wanted, final, l2kernel.either_groups(frag)) == []
    assert final.get("MODULES", "n") == "n" and final.get("ACPI", "n") == "n"
    t0 = time.monotonic()
    assert l2kernel.ensure(kernel_tree.path, kernel_tree.head, "l2-tiny") == image
    assert time.monotonic() - t0 < 5
    assert not list(image.parent.parent.glob(".build-*")), "the build's worktree was left"
