"""The build-log parser and warning attribution, on real gcc output saved in tests/golden/build/."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.build import diagnostics as diag

GOLDEN = Path(__file__).parent / "golden" / "build"

LOG_BASE = """\
  CC      drivers/vhost/vhost.o
  CC      drivers/vhost/scsi.o
../drivers/vhost/scsi.c: In function 'vhost_scsi_open':
../drivers/vhost/scsi.c:2010:13: warning: unused variable 'old' [-Wunused-variable]
 2010 |         int old;
      |             ^~~
"""

LOG_STEP1 = """\
  CC      drivers/vhost/vhost.o
In file included from ../drivers/vhost/vhost.c:30:
../drivers/vhost/vhost.h:12:5: warning: 'x' defined but not used [-Wunused-variable]
../drivers/vhost/vhost.c: In function 'vhost_dev_init':
../drivers/vhost/vhost.c:555:9: warning: unused variable 'y' [-Wunused-variable]
"""

LOG_ERROR = """\
  CC      drivers/vhost/scsi.o
../drivers/vhost/scsi.c: In function 'vhost_scsi_open':
../drivers/vhost/scsi.c:2011:9: error: expected ';' before 'return'
 2011 |         return 0
      |         ^~~~~~
make[4]: *** [../scripts/Makefile.build:229: drivers/vhost/scsi.o] Error 1
"""


def test_parse_keys_by_file_and_message() -> None:
    found = diag.parse(LOG_BASE)
    assert [(d.file, d.line, d.unit) for d in found] == [
        ("drivers/vhost/scsi.c", 2010, "drivers/vhost/scsi.c")]
    assert found[0].message == "unused variable 'old' [-Wunused-variable]"


def test_header_warning_belongs_to_the_including_unit() -> None:
    found = diag.parse(LOG_STEP1)
    assert found[0].file == "drivers/vhost/vhost.h"
    assert found[0].unit == "drivers/vhost/vhost.c"


def test_units_not_rebuilt_keep_their_warnings_and_new_ones_are_attributed() -> None:
    step0 = diag.carry([], LOG_BASE)
    step1 = diag.carry(step0, LOG_STEP1)
    # scsi.c was not rebuilt at step 1: its warning is still in force, and not new
    assert ("drivers/vhost/scsi.c", "unused variable 'old' [-Wunused-variable]") in {
        d.key for d in step1}
    new = diag.new_warnings(step0, step1)
    assert sorted(d.file for d in new) == ["drivers/vhost/vhost.c", "drivers/vhost/vhost.h"]


def test_a_moved_warning_is_not_new() -> None:
    step0 = diag.carry([], LOG_BASE)
    moved = LOG_BASE.replace("2010:13", "2042:13")
    assert diag.new_warnings(step0, diag.carry(step0, moved)) == []


def test_a_fixed_warning_disappears_when_its_unit_is_rebuilt() -> None:
    step0 = diag.carry([], LOG_BASE)
    clean = "  CC      drivers/vhost/scsi.o\n"
    assert diag.carry(step0, clean) == []


def test_errors_carry_context() -> None:
    errors = diag.errors_with_context(LOG_ERROR)
    assert errors[0]["file"] == "drivers/vhost/scsi.c"
    assert errors[0]["line"] == 2011
    assert "expected ';'" in errors[0]["message"]
    assert "return 0" in errors[0]["context"]
    assert any("Error 1" in e["message"] for e in errors)


def test_real_build_log_golden() -> None:
    """A real kbuild log (O= build, gcc 12) with its expected warnings."""
    import json

    log = (GOLDEN / "vhost-warning.log").read_text()
    expected = json.loads((GOLDEN / "vhost-warning.expected.json").read_text())
    assert [d.as_dict() for d in diag.parse(log)] == expected["warnings"]
    assert sorted(diag.rebuilt_units(log)) == expected["rebuilt"]


def test_a_saved_file_loads_back_and_a_cut_one_is_a_value_error(tmp_path: Path) -> None:
    found = diag.parse("lib/a.c:3:5: warning: unused variable 'x' [-Wunused-variable]\n")
    path = tmp_path / "o-default.warnings.json"
    diag.save(path, found)
    assert diag.load(path) == found
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # what a full disk or a kill mid-write leaves
    with pytest.raises(ValueError):
        diag.load(path)
    path.write_text('[{"file": "lib/a.c"}]')  # JSON, but not a warnings file
    with pytest.raises(ValueError, match="not a warnings file"):
        diag.load(path)
    assert diag.load(tmp_path / "none.json") == []
