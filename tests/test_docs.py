"""docs/architecture.md names only paths that exist; docs/faults.md only tests that exist.

Reads docs/architecture.md and docs/faults.md; writes nothing. Every `backticked` word of
the architecture that looks like a path of the repository (it has a slash or names a
top-level file) must exist, placeholders such as `<name>` and paths outside the repo
(`~/...`, `$VAR/...`, `<prefix>/...`) aside.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
TOP = {p.name for p in ROOT.iterdir()}


def named_paths(text: str) -> list[str]:
    out = []
    for word in re.findall(r"`([^`\s]+)`", text):
        if re.search(r"[<>$~]", word) or word.startswith("-"):
            continue
        if "/" in word or word in TOP:
            out.append(word.split("::")[0])
    return out


def test_the_doc_names_paths():
    assert len(named_paths(DOC.read_text())) >= 30  # the check reads what it should


def test_every_path_the_doc_names_exists():
    missing = [p for p in named_paths(DOC.read_text()) if not (ROOT / p).exists()]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_stage_folder_is_in_the_doc():
    text = DOC.read_text()
    stages = [p for p in (ROOT / "pipeline").iterdir() if (p / "__init__.py").is_file()]
    assert [s.name for s in stages if f"`pipeline/{s.name}/`" not in text] == []


FAULTS = ROOT / "docs" / "faults.md"


def test_every_test_the_fault_table_names_exists():
    """docs/faults.md: each row names tests as `tests/<file>.py::<test>` (or `::<test>` for
    one more test of the file before it); each is a test function of that file."""
    rows = [line for line in FAULTS.read_text().splitlines() if line.startswith("| ")][1:]
    assert len(rows) >= 20
    missing = []
    for row in rows:
        names = re.findall(r"`(tests/[\w/]+\.py)?::(\w+)`", row)
        assert names, f"a row of docs/faults.md names no test: {row}"
        current = None
        for file, test in names:
            current = file or current
            assert current, row
            if not re.search(rf"^(async )?def {test}\(", (ROOT / current).read_text(), re.M):
                missing.append(f"{current}::{test}")
    assert not missing, f"docs/faults.md names tests that do not exist: {missing}"
