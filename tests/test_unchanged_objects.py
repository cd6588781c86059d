"""Skip what a patch cannot change (issue 16 item 5): a step whose objects equal the previous
step's takes its boot and tests, and says so.

The manifest tests work on a made-up O= directory. The end-to-end test runs
series_factory.unchanged_objects_series on the imported 6.12 tree with the smoke suite,
booting: step 0's build is the mixed run's (shared reports), steps 1 (a file outside the
config) and 2 (a comment reworded in place) make the same objects and are not booted, step 3
(a new symbol) is built and booted. Costs one boot of step 0, three incremental builds and one
boot of step 3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from series_factory import MARKER, unchanged_objects_series

from pipeline.run import objects, unchanged


def _o_dir(root: Path, version: str, body: bytes = b"code") -> Path:
    (root / "init").mkdir(parents=True)
    (root / "init" / "version.o").write_bytes(b"Linux 6.12.118" + version.encode() + b" x")
    (root / "drivers").mkdir()
    (root / "drivers" / "a.o").write_bytes(body)
    (root / "drivers" / ".a.o.cmd").write_text("cmd_drivers/a.o := gcc -c ../drivers/a.c\n")
    (root / "drivers" / "stale.o").write_bytes(os.urandom(16))  # a config built here before
    (root / "vmlinux.o").write_bytes(os.urandom(16))  # left out: made from everything
    (root / "drivers" / "a.c.orig").write_text("not an output")
    (root / ".config").write_text("CONFIG_X=y\n")
    _thin_archive(root, "vmlinux.a", "init/version.o", "drivers/a.o")
    return root


def _thin_archive(root: Path, name: str, *members: str) -> None:
    (root / name).unlink(missing_ok=True)
    subprocess.run(["ar", "rcST", name, *members], cwd=root, check=True)


def test_manifests_mask_the_localversion_and_hash_only_what_the_kernel_links(
        tmp_path: Path) -> None:
    a = objects.manifest(_o_dir(tmp_path / "a", "-kpipe-s1"))
    b = objects.manifest(_o_dir(tmp_path / "b", "-kpipe-s2"))
    assert set(a) == {"vmlinux.a (members)", "init/version.o", "drivers/a.o",
                      "drivers/.a.o.cmd", ".config"}
    assert objects.differences(a, b) == []
    c_dir = _o_dir(tmp_path / "c", "-kpipe-default-s3", b"other code")
    c = objects.manifest(c_dir)
    assert objects.differences(a, c) == ["drivers/a.o"]
    del c["drivers/a.o"]
    assert objects.differences(a, c) == ["drivers/a.o"]  # a missing output differs too
    _thin_archive(c_dir, "vmlinux.a", "drivers/a.o", "init/version.o")  # link order
    assert objects.differences(a, objects.manifest(c_dir)) == ["drivers/a.o",
                                                              "vmlinux.a (members)"]
    (c_dir / "vmlinux.a").unlink()
    assert objects.manifest(c_dir) == {}  # nothing to compare: the step boots


def test_a_patch_to_how_the_kernel_is_built_always_boots() -> None:
    assert objects.always_boots(["drivers/vhost/Makefile", "drivers/vhost/scsi.c",
                                 "scripts/link-vmlinux.sh", "drivers/vhost/Kconfig"]) == [
        "drivers/vhost/Makefile", "scripts/link-vmlinux.sh", "drivers/vhost/Kconfig"]
    assert objects.always_boots(["drivers/vhost/scsi.c", "Documentation/x.rst"]) == []


@pytest.mark.e2e
def test_steps_with_unchanged_objects_take_the_previous_boot(kernel_tree, mixed_run: dict,
                                                             tmp_path: Path) -> None:
    series = unchanged_objects_series(kernel_tree.path, kernel_tree.head, tmp_path / "series")
    env = dict(os.environ, KPIPE_REPORTS=str(mixed_run["reports"]))
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(series),
                           "--suite", "smoke", "--json"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads(proc.stdout)
    steps = rec["steps"]
    assert [s["build"]["status"] for s in steps] == ["pass"] * 4
    assert [s["boot"]["status"] for s in steps] == ["pass"] * 4
    assert steps[0]["build_reused_from"] == mixed_run["record"]["run_id"]
    assert "reused_from_step" not in steps[0]["boot"]
    for k in (1, 2):
        assert steps[k]["boot"]["reused_from_step"] == 0, steps[k]["boot"]
        assert steps[k]["objects"]["changed_count"] == 0, steps[k]["objects"]
        assert steps[k]["tests"] == steps[0]["tests"]
        assert "its objects equal step" in steps[k]["boot"]["detail"]
        assert (f"step {k}: its {steps[k]['objects']['files']} objects equal step {k - 1}'s"
                in proc.stderr)
    assert steps[2]["build"]["units_rebuilt"] >= 1  # scsi.c was compiled again, to the same
    tip = steps[3]
    assert "reused_from_step" not in tip["boot"], tip["boot"]
    assert "drivers/vhost/vhost.o" in tip["objects"]["changed"], tip["objects"]
    assert tip["boot"]["guest_release"].endswith(tip["localversion"])
    run_dir = mixed_run["reports"] / "runs" / rec["run_id"]
    system_map = (run_dir / tip["build"]["artifacts"]["System.map"]).read_text()
    assert f" {MARKER}\n" in system_map
    for step in steps:
        assert (run_dir / step["dir"] / "objects.json").is_file()
        for test in step["tests"]:
            assert test["log"] is None or (run_dir / test["log"]).is_file(), test


def test_a_step_with_nothing_to_compare_boots(tmp_path: Path) -> None:
    (tmp_path / "s0").mkdir()
    objects.save(tmp_path / "s0", {})
    rec = {"steps": [{"index": 0, "config": "d", "dir": "s0", "boot": {"status": "pass"}}]}
    step = {"index": 1, "config": "d", "objects": {"files": 0}}
    assert unchanged.previous_if_same(rec, step, {}, tmp_path, tmp_path / "p", True) is None
