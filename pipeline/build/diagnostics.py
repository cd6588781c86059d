"""Compiler diagnostics from a kernel build log, and which of them a patch introduced.

Reads build logs (make's quiet output: `  CC      path.o` lines plus gcc's diagnostics);
writes nothing. A warning is keyed by (file, message) — the line is shown, not matched, so a
patch that only moves code does not make old warnings look new. Following DESIGN.md, a unit
not rebuilt at step k keeps the warnings it had at step k-1; a key absent at k-1 is new at k.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline import atomic

_DIAG = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+):(?:(?P<col>\d+):)? "
                   r"(?P<kind>warning|error): (?P<msg>.*)$")
_INCLUDED = re.compile(r"^(?:In file included|\s+) from (?P<file>[^:]+):\d+[:,]$")
_IN_FUNC = re.compile(r"^(?P<file>[^\s:][^:]*): (?:In function|In member function|At top level)")
_BUILT = re.compile(r"^\s+(?:CC|AS|CC \[M\])\s+(?P<obj>\S+\.o)$")


@dataclass(frozen=True)
class Diagnostic:
    file: str
    line: int
    message: str
    unit: str  # the compilation unit (source file) it came from

    @property
    def key(self) -> tuple[str, str]:
        return (self.file, self.message)

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "message": self.message}


def normalise(path: str) -> str:
    """Paths relative to the source tree: O= builds print `../drivers/...` or absolute paths."""
    while path.startswith("../"):
        path = path[3:]
    path = re.sub(r"^.*/worktrees/[^/]+/", "", path)
    return path.removeprefix("./")


def parse(log: str, kind: str = "warning") -> list[Diagnostic]:
    """Every gcc/ld diagnostic of `kind` in the log, with the unit that produced it."""
    out: list[Diagnostic] = []
    unit = ""
    for raw in log.splitlines():
        if m := _INCLUDED.match(raw):
            unit = normalise(m.group("file"))
            continue
        if m := _IN_FUNC.match(raw):
            unit = normalise(m.group("file")) if not _is_header(m.group("file")) else unit
            continue
        m = _DIAG.match(raw)
        if not m or m.group("kind") != kind:
            continue
        file = normalise(m.group("file"))
        this_unit = unit if _is_header(file) and unit else file
        out.append(Diagnostic(file, int(m.group("line")), m.group("msg").strip(), this_unit))
        unit = ""
    return out


def _is_header(path: str) -> bool:
    return path.endswith(".h")


def rebuilt_units(log: str) -> set[str]:
    """Source files make rebuilt (from `  CC  drivers/x.o` lines)."""
    units = set()
    for raw in log.splitlines():
        if m := _BUILT.match(raw):
            obj = normalise(m.group("obj"))
            units.add(re.sub(r"\.o$", ".c", obj))
    return units


def carry(previous: list[Diagnostic], log: str,
          still_built: set[str] | None = None) -> list[Diagnostic]:
    """Warnings in force after a build: this log's, plus earlier ones of units not rebuilt
    (with `still_built`, the units' paths without suffix, only those the build still links)."""
    now = parse(log)
    rebuilt = rebuilt_units(log) | {d.unit for d in now}
    kept = [d for d in previous if d.unit not in rebuilt
            and (still_built is None or d.unit.rsplit(".", 1)[0] in still_built)]
    return kept + now


def save(path: Path, found: list[Diagnostic]) -> None:
    """Write the warnings atomically: a build killed meanwhile leaves the old file or none."""
    data = [{"file": d.file, "line": d.line, "message": d.message, "unit": d.unit} for d in found]
    atomic.write_text(path, json.dumps(data, indent=0))


def load(path: Path) -> list[Diagnostic]:
    """The warnings `save` wrote; [] when there is no such file; ValueError when the file is
    not one `save` wrote (cut short by a full disk, or written by something else)."""
    if not path.exists():
        return []
    try:
        return [Diagnostic(d["file"], int(d["line"]), d["message"], d["unit"])
                for d in json.loads(path.read_text())]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a warnings file ({exc!r})") from exc


def new_warnings(previous: list[Diagnostic], current: list[Diagnostic]) -> list[Diagnostic]:
    old = {d.key for d in previous}
    seen: set[tuple[str, str]] = set()
    out = []
    for d in current:
        if d.key not in old and d.key not in seen:
            seen.add(d.key)
            out.append(d)
    return out


def errors_with_context(log: str, context: int = 3, limit: int = 20) -> list[dict]:
    """Each compiler/make error with a few lines of the log around it."""
    lines = log.splitlines()
    out = []
    for i, raw in enumerate(lines):
        m = _DIAG.match(raw)
        is_make = raw.startswith("make") and "Error" in raw and "***" in raw
        is_ld = raw.startswith("ld: ") and "error" in raw
        if (m and m.group("kind") == "error") or is_make or is_ld:
            out.append({
                "file": normalise(m.group("file")) if m else None,
                "line": int(m.group("line")) if m else None,
                "message": m.group("msg") if m else raw.strip(),
                "context": "\n".join(lines[max(0, i - context): i + context + 1]),
            })
            if len(out) >= limit:
                break
    return out
