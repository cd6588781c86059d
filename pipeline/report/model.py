"""The per-step view of a run record that every renderer shares.

Reads a record (the dict of results.json); writes nothing. Gives the configs, the test columns,
one row per step (apply, build, new warnings, boot, each test, splats) with the log each cell
links to, what changed between the base and each step, the run's outcome in words, and the
commands that reproduce a step. Paths stay relative to the run dir, as in the record.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from pipeline.record import index
from pipeline.record import store as record
from pipeline.report.text import clean, one_line

OUTCOME = index.OUTCOME  # an exit code's name, as the run index stores it
GOOD_STATUS = ("pass", "applied", "applied-3way", "already-present")
BAD_STATUS = ("fail", "error", "conflict")


@dataclass
class Cell:
    """One matrix cell: a status word, the text shown, the log it links to, a tooltip."""

    status: str
    text: str = ""
    link: str | None = None
    title: str = ""

    def __post_init__(self) -> None:
        self.text = self.text or self.status

    @property
    def css(self) -> str:
        return "st-" + self.status.replace(" ", "-")


@dataclass
class Row:
    """One step of one config: the base (index 0) or the tree after patch k."""

    step: dict
    label: str
    subject: str
    cells: dict[str, Cell] = field(default_factory=dict)
    tests: dict[str, Cell] = field(default_factory=dict)

    @property
    def index(self) -> int:
        return self.step["index"]


def outcome(rec: dict) -> str:
    code = rec.get("exit_code")
    return "running" if code is None else OUTCOME.get(code, f"exit {code}")


def configs(rec: dict) -> list[str]:
    """Config names in the order their steps appear."""
    seen: list[str] = []
    for step in rec["steps"]:
        name = step.get("config", "default")
        if name not in seen:
            seen.append(name)
    return seen


def steps_of(rec: dict, config: str) -> list[dict]:
    return sorted((s for s in rec["steps"] if s.get("config", "default") == config),
                  key=lambda s: s["index"])


def test_key(test: dict) -> str:
    return f"{test['suite']}/{test['case']}"


def test_keys(rec: dict) -> list[str]:
    """Every test case of the run, in the order they first appear."""
    keys: list[str] = []
    for step in rec["steps"]:
        for test in step["tests"]:
            if test_key(test) not in keys:
                keys.append(test_key(test))
    return keys


def patch_subject(rec: dict, index: int) -> str:
    if index == 0:
        return "base"
    for patch in (rec.get("series") or {}).get("patches", []):
        if patch["n"] == index:
            return one_line(patch["subject"])
    return f"patch {index}"


def step_label(index: int) -> str:
    return "base" if index == 0 else f"patch {index}"


def tree_label(rec: dict) -> str:
    """The tree a run applied on, as reports name it: `debian-7.3: Linux 7.3.4 (describe)`;
    a record from before trees had names (no version) shows its describe alone."""
    tree = (rec.get("base") or {}).get("tree") or {}
    describe = tree.get("describe", "-")
    if not tree.get("version"):
        return describe
    return f"{tree.get('name') or 'checkout'}: Linux {tree['version']} ({describe})"


def short(commit: str | None) -> str:
    return (commit or "")[:12]


def rows(rec: dict, config: str) -> list[Row]:
    """The matrix of one config: a row per step with its cells."""
    out = []
    seq = steps_of(rec, config)
    base_splats = {_splat_key(s) for s in seq[0]["splats"]} if seq and seq[0]["index"] == 0 \
        else set()
    for step in seq:
        row = Row(step, step_label(step["index"]), patch_subject(rec, step["index"]))
        apply, build, boot = step["apply"], step["build"], step["boot"]
        row.cells["apply"] = Cell(apply["status"], link=apply.get("log"),
                                  title=one_line(apply.get("detail", "")))
        row.cells["build"] = Cell(build["status"], link=build.get("log"),
                                  title=_build_title(build))
        warnings = build.get("warnings_new") or []
        row.cells["warnings"] = Cell(
            "fail" if warnings else ("pass" if build["status"] in ("pass", "fail") else
                                     build["status"]),
            text=str(len(warnings)) if build["status"] in ("pass", "fail") else "-",
            link=build.get("log"),
            title="; ".join(f"{w['file']}:{w['line']}: {one_line(w['message'])}"
                            for w in warnings))
        row.cells["boot"] = Cell(boot["status"], link=boot.get("console"),
                                 title=one_line(boot.get("detail", "")))
        for test in step["tests"]:
            row.tests[test_key(test)] = Cell(test["status"], link=test.get("log"),
                                             title=one_line(test.get("message", "")))
        row.cells["splats"] = _splat_cell(step, base_splats)
        out.append(row)
    return out


def _splat_key(splat: dict) -> tuple[str, str]:
    return (splat["kind"], splat["title"])


def _splat_cell(step: dict, at_base: set[tuple[str, str]]) -> Cell:
    """`fail` when the step shows a splat the base did not; `known` when all were at the base."""
    found = step["splats"]
    if step["boot"]["status"] not in ("pass", "fail", "error"):
        return Cell(step["boot"]["status"], text="-")
    new = [s for s in found if _splat_key(s) not in at_base]
    status = "fail" if new else ("known" if found else "pass")
    title = "; ".join(one_line(s["title"]) + ("" if s in new else " (also at the base)")
                      for s in found)
    text = str(len(found))
    lockdep = step["boot"].get("lockdep") or {}
    if lockdep.get("unchecked") or (lockdep and not lockdep.get("built")):
        text += " (lockdep off)"
        title = "; ".join(t for t in (title, lockdep.get("detail", "")) if t)
    return Cell(status, text=text, link=step["boot"].get("console"), title=title)


def lockdep_coverage(rec: dict) -> list[tuple[dict, dict]]:
    """(step, its boot's `lockdep`) for every booted step that says what lockdep checked."""
    return [(s, s["boot"]["lockdep"]) for s in rec["steps"] if s["boot"].get("lockdep")]


def _build_title(build: dict) -> str:
    parts = []
    if build.get("seconds") is not None:
        parts.append(f"{build['seconds']} s")
    for err in (build.get("errors") or [])[:3]:
        parts.append(one_line(err.get("message", "")))
    return "; ".join(parts)


def test_cell(row: Row, key: str) -> Cell:
    """The row's cell for a test; a test the step did not run shows `not-run`."""
    return row.tests.get(key) or Cell("not-run", text="-")


def tests_summary(step: dict) -> str:
    """`8/11 pass` (or `-` when the step ran no test)."""
    tests = step["tests"]
    if not tests:
        return "-"
    return f"{sum(t['status'] == 'pass' for t in tests)}/{len(tests)} pass"


@dataclass
class Change:
    """A column whose value at some step differs from the base's."""

    what: str
    base: str
    tip: str
    first: int | None  # the first step that differs from the base
    there: str = ""  # the value at that step


def changes(rec: dict, config: str) -> list[Change]:
    """What differs from the base, column by column: base value, tip value, first step."""
    seq = rows(rec, config)
    if not seq:
        return []
    base = seq[0]
    columns = ["apply", "build", "warnings", "boot"]
    out = []
    for col in columns + ["tests:" + k for k in test_keys(rec)] + ["splats"]:
        def value(r: Row, col: str = col) -> str:
            if col.startswith("tests:"):
                return test_cell(r, col[6:]).text
            return r.cells[col].text
        first = next((r for r in seq[1:] if value(r) != value(base)), None)
        if first is not None:
            name = col[6:] if col.startswith("tests:") else col
            name = "new warnings" if name == "warnings" else name
            out.append(Change(name, value(base), value(seq[-1]), first.index, value(first)))
    return out


def new_warnings(rec: dict) -> list[tuple[dict, dict]]:
    """(step, warning) for every warning a step introduced."""
    return [(s, w) for s in rec["steps"] for w in s["build"].get("warnings_new") or []]


@dataclass
class SplatSeen:
    """One splat (kind and title) and the steps of one config where it showed."""

    splat: dict
    config: str
    steps: list[int]

    @property
    def at_base(self) -> bool:
        return 0 in self.steps


def splats(rec: dict, allowed: bool = False) -> list[SplatSeen]:
    """Each splat once, with the steps that showed it; `allowed`: the allow-listed ones instead
    (`boot.allowed_splats`, each with the allow-list's reason)."""
    found: dict[tuple[str, str, str], SplatSeen] = {}
    for step in rec["steps"]:
        config = step.get("config", "default")
        listed = (step["boot"].get("allowed_splats") or []) if allowed else step["splats"]
        for splat in listed:
            key = (config, splat["kind"], splat["title"])
            if key not in found:
                found[key] = SplatSeen(splat, config, [])
            found[key].steps.append(step["index"])
    return list(found.values())


def build_errors(rec: dict) -> list[tuple[dict, dict]]:
    """(step, error) for each failed build: its compiler errors, else make's first complaint."""
    out = []
    for step in rec["steps"]:
        errors = step["build"].get("errors") or []
        located = [e for e in errors if e.get("file")]
        out += [(step, e) for e in (located or errors[:1])]
    return out


def config_of(rec: dict, name: str) -> dict:
    return record.config_entry(rec, name) or {"name": name, "fragments": []}


def tip(rec: dict, config: str) -> dict | None:
    seq = steps_of(rec, config)
    return seq[-1] if seq else None


def run_command(rec: dict) -> str:
    return shlex.join(rec.get("argv") or ["kpipe", "run"])


def reproduce(rec: dict, step: dict) -> list[str]:
    """Shell lines that rebuild (and reboot) one step by hand; $RUN is the run directory."""
    base = (rec.get("base") or {}).get("commit", "<base>")
    tree = (rec.get("base") or {}).get("tree", {}).get("path", "<tree>")
    lines = [f"git -C {shlex.quote(tree)} worktree add --detach linux {base}", "cd linux"]
    k = step["index"]
    if k:
        patches = " ".join(f"$RUN/series/patches/{i:04d}.patch" for i in range(1, k + 1))
        lines.append(f"git am -3 {patches}")
    build = step["build"]
    config = build.get("artifacts", {}).get(".config")
    if build.get("command"):
        out_dir = _make_var(build["command"], "O") or "build"
        if config:
            lines.append(f"mkdir -p {out_dir} && cp $RUN/{config} {out_dir}/.config")
        lines.append(clean(build["command"]).replace("<tree>", "."))
    if step["boot"].get("command"):
        lines.append(clean(step["boot"]["command"]))
    return lines


def _make_var(command: str, name: str) -> str | None:
    for word in command.split():
        if word.startswith(name + "="):
            return word.split("=", 1)[1].replace("<tree>", ".")
    return None


def next_step(rec: dict) -> str | None:
    """What to pass to test on the posted base when its `base-commit:` is not in the tree."""
    trailer = (rec.get("series") or {}).get("base_commit")
    base = rec.get("base") or {}
    if not trailer or base.get("rule") not in ("blob-guess", "head"):
        return None
    return (f"the posted base-commit {trailer[:12]} is not in this tree: to test on it, run "
            f"again with --base-remote URL (a git remote that has the commit) or --tree DIR "
            f"(a kernel checkout that has it)")
