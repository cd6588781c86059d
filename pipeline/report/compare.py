"""Two runs of the same series side by side: what differs, step by step and in the verdicts.

Reads two records; writes nothing. Steps are matched by config and index (the base with the
base, patch k with patch k), so two revisions of a series or a re-run line up; a cell whose
status or text differs is a difference, and so is a verdict only one run has.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.report import model

COLUMNS = ("apply", "build", "warnings", "boot", "splats")


@dataclass
class Difference:
    config: str
    index: int
    what: str
    a: model.Cell | None
    b: model.Cell | None


def _verdict_key(v: dict) -> tuple:
    return (v["kind"], v.get("test"), v["step"], v.get("config", "default"))


def differences(a: dict, b: dict) -> list[Difference]:
    out = []
    configs = model.configs(a) + [c for c in model.configs(b) if c not in model.configs(a)]
    tests = model.test_keys(a) + [k for k in model.test_keys(b) if k not in model.test_keys(a)]
    for config in configs:
        rows_a = {r.index: r for r in model.rows(a, config)}
        rows_b = {r.index: r for r in model.rows(b, config)}
        for index in sorted(set(rows_a) | set(rows_b)):
            ra, rb = rows_a.get(index), rows_b.get(index)
            if ra is None or rb is None:
                out.append(Difference(config, index, "step", ra and ra.cells["apply"],
                                      rb and rb.cells["apply"]))
                continue
            if ra.subject != rb.subject:
                out.append(Difference(config, index, "patch", model.Cell("subject", ra.subject),
                                      model.Cell("subject", rb.subject)))
            for col in COLUMNS:
                out += _cell_diff(config, index, "new warnings" if col == "warnings" else col,
                                  ra.cells[col], rb.cells[col])
            for key in tests:
                out += _cell_diff(config, index, key, model.test_cell(ra, key),
                                  model.test_cell(rb, key))
    return out


def _cell_diff(config: str, index: int, what: str, ca: model.Cell,
               cb: model.Cell) -> list[Difference]:
    if (ca.status, ca.text) == (cb.status, cb.text):
        return []
    return [Difference(config, index, what, ca, cb)]


def verdicts_only_in(a: dict, b: dict) -> list[dict]:
    """Verdicts of run `a` that run `b` does not have."""
    keys_b = {_verdict_key(v) for v in b["verdicts"]}
    return [v for v in a["verdicts"] if _verdict_key(v) not in keys_b]
