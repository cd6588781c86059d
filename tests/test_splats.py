"""Splat scanner: pattern lists fail closed; golden kernel logs yield exactly their splats.

Golden samples live in tests/golden/dmesg/: real kernel output (see the README there for the
command that produced each), each with a `.expected.json` listing the splats it must yield
(kind, title, test, and lines the trace must contain). Clean boots must yield none.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.boot import splats

GOLDEN = Path(__file__).parent / "golden" / "dmesg"
SAMPLES = sorted(p for p in GOLDEN.glob("*.log"))


def test_there_are_golden_samples():
    assert len(SAMPLES) >= 6, "golden corpus missing (see tests/golden/dmesg/README.md)"
    for sample in SAMPLES:
        assert sample.with_suffix(".expected.json").is_file(), f"{sample.name}: no expectation"


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_golden(sample: Path):
    expected = json.loads(sample.with_suffix(".expected.json").read_text())
    patterns = splats.load_patterns()
    stamped = expected.get("stamped", True)
    found = splats.scan(sample.read_text(errors="replace"), patterns,
                        require_stamps=stamped)
    got = [{"kind": s.kind, "title": s.title, "window": list(s.window) if s.window else None,
            "allowed": bool(s.allowed)} for s in found]
    want = [{"kind": e["kind"], "title": e["title"], "window": e.get("window"),
             "allowed": e.get("allowed", False)} for e in expected["splats"]]
    assert got == want
    for s, e in zip(found, expected["splats"], strict=True):
        trace = "\n".join(s.lines)
        for needle in e.get("trace_contains", []):
            assert needle in trace, f"{s.title}: trace lacks {needle!r}"


def _write(tmp_path: Path, deny: str | None, allow: str | None) -> tuple[Path, Path]:
    n = len(list(tmp_path.iterdir()))
    (tmp_path / str(n)).mkdir()
    d, a = tmp_path / str(n) / "deny.txt", tmp_path / str(n) / "allow.txt"
    if deny is not None:
        d.write_text(deny)
    if allow is not None:
        a.write_text(allow)
    return d, a


def test_missing_lists_are_errors(tmp_path):
    d, a = _write(tmp_path, None, "warning foo # reason\n")
    with pytest.raises(splats.SplatConfigError, match="not found"):
        splats.load_patterns(d, a)
    d, a = _write(tmp_path, "warning WARNING:\n", None)
    with pytest.raises(splats.SplatConfigError, match="not found"):
        splats.load_patterns(d, a)


def test_empty_lists_are_errors(tmp_path):
    d, a = _write(tmp_path, "# only a comment\n\n", "warning foo # reason\n")
    with pytest.raises(splats.SplatConfigError, match="empty"):
        splats.load_patterns(d, a)
    d, a = _write(tmp_path, "warning WARNING:\n", "# nothing\n")
    with pytest.raises(splats.SplatConfigError, match="empty"):
        splats.load_patterns(d, a)


def test_allow_entries_need_a_reason_and_known_kind(tmp_path):
    d, a = _write(tmp_path, "warning WARNING:\n", "warning foo\n")
    with pytest.raises(splats.SplatConfigError, match="reason"):
        splats.load_patterns(d, a)
    d, a = _write(tmp_path, "oopsie Oops:\n", "warning foo # why\n")
    with pytest.raises(splats.SplatConfigError, match="unknown kind"):
        splats.load_patterns(d, a)


def test_project_lists_load_and_cover_every_kind():
    p = splats.load_patterns()
    assert {k for k, _ in p.deny} == set(splats.KINDS)
    assert all(reason for _, _, reason in p.allow)


def test_allow_list_marks_splat_allowed(tmp_path):
    d, a = _write(tmp_path, "warning WARNING: CPU: \\d+ PID: \\d+ at\n",
                  "warning in my_func # known noise, see bug 1\n")
    p = splats.load_patterns(d, a)
    text = ("[    1.0] WARNING: CPU: 0 PID: 1 at a.c:1 my_func+0x1/0x2\n"
            "[    1.1] ---[ end trace 0000000000000000 ]---\n"
            "[    2.0] WARNING: CPU: 0 PID: 1 at b.c:1 other+0x1/0x2\n")
    found = splats.scan(text, p)
    assert [(s.title, s.allowed) for s in found] == [
        ("WARNING in my_func", "known noise, see bug 1"), ("WARNING in other", None)]


def test_system_map_symbolises_bare_addresses(tmp_path):
    smap = tmp_path / "System.map"
    smap.write_text("ffffffff81000000 T _stext\nffffffff81000100 T foo\n"
                    "ffffffff81000200 t bar\nffffffff81000300 T end\n")
    sm = splats.SystemMap(smap)
    assert sm.lookup(0xFFFFFFFF81000110) == "foo+0x10/0x100"
    line = sm.symbolise(" ? 0xffffffff81000210")
    assert line == " ? 0xffffffff81000210 {bar+0x10/0x100}"
    # already symbolised frames are left alone
    assert sm.symbolise(" foo+0x10/0x100") == " foo+0x10/0x100"
