"""Series intake with real b4 on the mbox samples in tests/golden/mbox (see make_samples.sh).

Each good sample's parsed summary is compared with its .expected.json (refresh with
KPIPE_UPDATE_GOLDEN=1 after regenerating the samples, then review the diff). Each bad sample
must give a clear SeriesError, never a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.intake import series

SAMPLES = Path(__file__).parent / "golden" / "mbox"
GOOD = ["folder", "series.mbox", "with-reply.mbox", "duplicate.mbox", "two-revisions.mbox",
        "no-base.mbox", "maildir", "no-msgid.mbox"]


def _summary(arg: str, tmp_path: Path, **kw) -> dict:
    data = series.intake(arg, tmp_path / "run", **kw).to_dict()
    data.pop("source")
    return data


@pytest.mark.parametrize("name", GOOD)
def test_good_sample_matches_golden(name: str, tmp_path: Path) -> None:
    got = _summary(str(SAMPLES / name), tmp_path)
    expected_path = SAMPLES / f"{name}.expected.json"
    if os.environ.get("KPIPE_UPDATE_GOLDEN"):
        expected_path.write_text(json.dumps(got, indent=1) + "\n")
    assert got == json.loads(expected_path.read_text())
    assert (tmp_path / "run" / got["mbox"]).is_file()


def test_reply_trailer_is_added_to_the_patch(tmp_path: Path) -> None:
    got = _summary(str(SAMPLES / "with-reply.mbox"), tmp_path)
    assert "Reviewed-by: Rita Reviewer <rita@example.org>" in got["patches"][0]["trailers"]
    assert "Reviewed-by: Rita Reviewer <rita@example.org>" not in got["patches"][1]["trailers"]
    am = (tmp_path / "run" / got["mbox"]).read_text()
    assert am.count("Reviewed-by: Rita Reviewer") == 1


def test_revision_can_be_picked(tmp_path: Path) -> None:
    v1 = _summary(str(SAMPLES / "two-revisions.mbox"), tmp_path, revision=1)
    assert v1["revision"] == 1
    assert v1["patches"][1]["subject"] == "vhost: second sample change"
    with pytest.raises(series.SeriesError, match="revision v3 is not in the input"):
        _summary(str(SAMPLES / "two-revisions.mbox"), tmp_path / "b", revision=3)


def test_missing_patch_is_an_error_unless_partial_allowed(tmp_path: Path) -> None:
    with pytest.raises(series.SeriesError, match=r"missing patch\(es\) 2/2.*--allow-partial"):
        _summary(str(SAMPLES / "missing.mbox"), tmp_path)
    got = _summary(str(SAMPLES / "missing.mbox"), tmp_path / "b", allow_partial=True)
    assert [p["n"] for p in got["patches"]] == [1]
    assert got["complete"] is False
    assert any("missing patch" in w for w in got["warnings"])


@pytest.mark.parametrize("name,message", [
    ("not-a-patch.mbox", "no patches found"),
    ("empty.mbox", "the file is empty"),
    ("binary.mbox", "binary file"),
    ("does-not-exist.mbox", "no such file or folder"),
])
def test_bad_input_gives_a_clear_error(name: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(series.SeriesError, match=message):
        series.intake(str(SAMPLES / name), tmp_path / "run")


def test_folder_without_patches(tmp_path: Path) -> None:
    (tmp_path / "empty-folder").mkdir()
    with pytest.raises(series.SeriesError, match="no .patch files"):
        series.intake(str(tmp_path / "empty-folder"), tmp_path / "run")


@pytest.mark.parametrize("arg,msgid", [
    ("https://lore.kernel.org/all/20250401.abc@example.org/", "20250401.abc@example.org"),
    ("https://lore.kernel.org/virtualization/x.y@z.org/T/", "x.y@z.org"),
    ("<a.b@c.d>", "a.b@c.d"),
    ("a.b@c.d", "a.b@c.d"),
    ("not-an-id", None),
])
def test_msgid_of(arg: str, msgid: str | None) -> None:
    assert series.msgid_of(arg) == msgid
