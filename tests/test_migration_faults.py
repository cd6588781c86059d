"""The migration suite's faults, in one boot of the base kernel (tests/suites/migration-faults).

The test-only suite runs the vhost-scsi-migration case's own code four times with one fault
each: a QEMU that never starts (a device model QEMU lacks), a migration that never completes
(the bandwidth cap never raised; the completion wait cut to 10 s), an L2 that panics (an /init
that exits) and a case over its whole bound (cut to 15 s, during the L2's boot). Each must end
the case as fail or error with its clear message and no QEMU left running; the suite's program
checks that and reports one KTAP case per fault, and this test checks the record the host made
of them, and that the step's guest left no QEMU behind.

Reads the base kernel (fixture base_kernel) and the L2 kernel (built from the imported tree
into the shared cache, as a run does); writes the boot's output under tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.boot import l2kernel
from pipeline.boot import step as bootstep
from pipeline.boot import suites as suitemod
from pipeline.boot import vng as boot

pytestmark = pytest.mark.e2e  # the base kernel, the L2 kernel, one boot with four cases' L2 QEMUs

SUITE = Path(__file__).parent / "suites" / "migration-faults"
WANT = {
    "qemu-never-starts": ("QMP connect failed", "is not a valid device model name"),
    "migration-never-completes": ("no completion within 10 s",),
    "l2-panics": ("L2 panicked", "Attempted to kill init!"),
    "case-over-its-bound": ("the case took over 15 s",),
}


def test_each_fault_ends_the_case_with_a_clear_message_and_no_qemu(base_kernel, kernel_tree,
                                                                   tmp_path: Path) -> None:
    suite = suitemod.load_suite(str(SUITE))
    env, unavailable = l2kernel.for_suites([suite], kernel_tree.path, kernel_tree.head)
    assert unavailable == {}, unavailable
    settings = boot.BootSettings(memory_mb=suitemod.guest_memory([suite], 1024))
    res = bootstep.boot_and_test(base_kernel.bzimage, base_kernel.system_map,
                                 base_kernel.config, base_kernel.localversion, [str(SUITE)],
                                 tmp_path / "step", settings, env=env)
    assert res["boot"]["status"] == "pass", res["boot"]
    assert res["boot"]["leftover_qemu"] is False
    cases = {t["case"]: t for t in res["tests"]}
    assert set(cases) == set(WANT), cases
    for name, words in WANT.items():
        test = cases[name]
        assert test["status"] == "pass", test
        log = (tmp_path / "step" / test["log"]).read_text()
        for word in (*words, "no QEMU left running", "qemu-system processes left: 0"):
            assert word in log, (name, word, log[-2000:])
    assert res["splats"] == [], res["splats"]
