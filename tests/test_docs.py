"""docs/architecture.md names only paths that exist.

Reads docs/architecture.md; writes nothing. Every `backticked` word that looks like a path of
the repository (it has a slash or names a top-level file) must exist, placeholders such as
`<name>` and paths outside the repo (`~/...`, `$VAR/...`, `<prefix>/...`) aside.
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
