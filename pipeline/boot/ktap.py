"""KTAP v1 parser: one program's stdout in, one result per KTAP case out.

Reads the text a guest test program printed (KTAP version 1: `KTAP version 1`, a plan `1..N`,
result lines `ok N name`, `not ok N name # reason`, `ok N name # SKIP reason`, diagnostics
`# ...` before the result they belong to); writes nothing. Indented lines (nested subtests) are
kept as part of the enclosing case's log and do not count as cases of their own.

Mapping to kpipe's status words (see DESIGN.md): `ok` -> pass, `not ok` -> fail whatever the
program's exit code, `# SKIP` -> skip (the caller decides whether a skip is legitimate),
`# TODO`/`# XFAIL` on `not ok` -> pass with the directive in the message, `not ok N name # error
reason` -> error (kselftest's ksft_test_result_error() prints it: the test could not run its
check, which says nothing of the kernel either way). A program that prints
no plan, or fewer results than its plan, is reported through `Parsed.errors`; the caller turns
those into `error` results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

VERSION_RE = re.compile(r"^(?:KTAP|TAP) version (\d+)\s*$")
PLAN_RE = re.compile(r"^1\.\.(\d+)\s*(?:#\s*(.*))?$")
RESULT_RE = re.compile(r"^(ok|not ok)\s+(\d+)\s*(?:-\s*)?([^#]*?)\s*(?:#\s*(.*))?$")
BAIL_RE = re.compile(r"^Bail out!\s*(.*)$")
DIRECTIVE_RE = re.compile(r"^(SKIP|TODO|XFAIL)\b\s*:?\s*(.*)$", re.IGNORECASE)
# kselftest's ksft_test_result_error() prints "not ok N name # error reason", lower case: a
# fail whose free-text reason starts with "Error ..." stays a fail
ERROR_RE = re.compile(r"^error\b\s*:?\s*(.*)$")


@dataclass
class Case:
    """One KTAP test case."""

    number: int
    name: str
    status: str  # pass | fail | skip
    message: str  # the directive or reason after '#', or ''
    log: list[str] = field(default_factory=list)  # diagnostics and subtest lines before it


@dataclass
class Parsed:
    """What a program's KTAP output said."""

    version: int | None = None
    plan: int | None = None
    plan_comment: str = ""
    cases: list[Case] = field(default_factory=list)
    bail_out: str | None = None
    errors: list[str] = field(default_factory=list)
    trailing: list[str] = field(default_factory=list)  # diagnostics after the last result

    @property
    def complete(self) -> bool:
        return (self.plan is not None and not self.errors and self.bail_out is None
                and len(self.cases) == self.plan)


def _status(result: str, directive: str | None) -> tuple[str, str]:
    if directive:
        if (e := ERROR_RE.match(directive)) and result == "not ok":
            return "error", e.group(1).strip()
        m = DIRECTIVE_RE.match(directive)
        if m:
            kind = m.group(1).upper()
            reason = m.group(2).strip()
            if kind == "SKIP":
                return "skip", reason
            return "pass", f"{kind}: {reason}".rstrip(": ")
    return ("pass" if result == "ok" else "fail"), (directive or "").strip()


def parse(text: str) -> Parsed:
    """Parse one program's KTAP output (top level only; nested subtests go into logs)."""
    out = Parsed()
    pending: list[str] = []
    seen_numbers: set[int] = set()
    for raw in text.splitlines():
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        if line[0] in " \t":
            pending.append(line)
            continue
        if m := VERSION_RE.match(line):
            if out.version is None:
                out.version = int(m.group(1))
            continue
        if m := PLAN_RE.match(line):
            if out.plan is None:
                out.plan = int(m.group(1))
                out.plan_comment = (m.group(2) or "").strip()
            else:
                out.errors.append(f"second plan line: {line!r}")
            continue
        if m := RESULT_RE.match(line):
            number = int(m.group(2))
            status, message = _status(m.group(1), m.group(4))
            name = m.group(3).strip() or f"case{number}"
            if number in seen_numbers:
                out.errors.append(f"case number {number} reported twice")
            seen_numbers.add(number)
            out.cases.append(Case(number, name, status, message, pending))
            pending = []
            continue
        if m := BAIL_RE.match(line):
            out.bail_out = m.group(1).strip() or "bail out"
            continue
        # '# diagnostic' lines and anything else a program printed belong to the next case
        pending.append(line)
    out.trailing = pending
    if out.plan is None:
        out.errors.append("no plan line (1..N)")
    elif len(out.cases) != out.plan:
        out.errors.append(f"plan says {out.plan} cases, {len(out.cases)} reported")
    return out


def _main() -> None:  # pragma: no cover - debugging aid
    import json
    import sys

    parsed = parse(sys.stdin.read())
    print(json.dumps(parsed.__dict__, default=lambda o: o.__dict__, indent=1))


if __name__ == "__main__":  # pragma: no cover
    _main()
