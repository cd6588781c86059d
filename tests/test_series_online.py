"""Intake by message-id and lore URL with real b4 against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from lore_standin import LoreStandin

from pipeline.intake import series

SAMPLES = Path(__file__).parent / "golden" / "mbox"


def _cover_msgid(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.lower().startswith("message-id:"):
            return line.split("<", 1)[1].split(">", 1)[0]
    raise AssertionError("no Message-Id")


def test_fetch_by_msgid_matches_local_intake(tmp_path: Path) -> None:
    thread = SAMPLES / "with-reply.mbox"
    msgid = _cover_msgid(thread)
    with LoreStandin([thread]) as lore:
        online = series.intake(msgid, tmp_path / "a", lore=lore.root).to_dict()
        by_url = series.intake(f"{lore.root}/{msgid}/", tmp_path / "b", lore=lore.root).to_dict()
        assert any("t.mbox.gz" in r for r in lore.requests), lore.requests
    local = series.intake(str(thread), tmp_path / "c").to_dict()
    for got in (online, by_url):
        assert got["source"] == f"msgid:{msgid}"
        assert got["link"] == f"{lore.root}/{msgid}/"
        for key in ("subject", "revision", "patches", "base_commit", "cover"):
            assert got[key] == local[key]
    assert "Reviewed-by: Rita Reviewer <rita@example.org>" in online["patches"][0]["trailers"]


def test_fetch_of_unknown_msgid_is_a_clear_error(tmp_path: Path) -> None:
    with LoreStandin([SAMPLES / "series.mbox"]) as lore:
        with pytest.raises(series.SeriesError, match="could not fetch <nobody@example.org>"):
            series.intake("nobody@example.org", tmp_path / "a", lore=lore.root)
