"""The run in one line and the steps worth pointing at: what mails and job summaries lead with.

Reads a record; writes nothing. `headline` says the outcome and the verdicts that matter,
`focus_step` picks the step a reader should reproduce (the first bad one, else the tip), and
`step_table` is the per-step status table every text format prints.
"""

from __future__ import annotations

from pipeline.record.verdicts import BAD_VERDICTS
from pipeline.report import model
from pipeline.report.text import one_line


def bad_verdicts(rec: dict) -> list[dict]:
    return [v for v in rec["verdicts"] if v["kind"] in BAD_VERDICTS]


def headline(rec: dict) -> str:
    """What the run found, in a few words (the outcome word itself is `model.outcome`)."""
    if rec.get("exit_code") in (2, 3, 130) or rec["status"] != "complete":
        return one_line(rec.get("error") or rec["status"])
    bad = bad_verdicts(rec)
    if bad:
        shown = [f"{v['kind']} {model.step_label(v['step'])}" for v in bad[:3]]
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        return ", ".join(dict.fromkeys(shown)) + more
    if rec.get("exit_code") == 1:
        return "the tip does not pass"
    fixed = [v for v in rec["verdicts"] if v["kind"] == "fixed-by"]
    return "all passed" + (f", {len(fixed)} test(s) fixed" if fixed else "")


def mail_subject_tail(rec: dict) -> str:
    """The end of the mail's Subject: the headline, led by the outcome when the run stopped."""
    if rec["status"] != "complete":
        return f"{model.outcome(rec)}: {headline(rec)}"
    return headline(rec)


def focus_step(rec: dict) -> dict | None:
    """The first step a bad verdict names, else the tip of the first config."""
    bad = bad_verdicts(rec)
    if bad:
        first = min(bad, key=lambda v: v["step"])
        for step in rec["steps"]:
            if step["index"] == first["step"] and \
                    step.get("config", "default") == first.get("config", "default"):
                return step
    configs = model.configs(rec)
    return model.tip(rec, configs[0]) if configs else None


def step_table(rec: dict, config: str) -> list[list[str]]:
    """Header plus one row per step: step, apply, build, new warnings, boot, tests, splats."""
    out = [["step", "apply", "build", "new warnings", "boot", "tests", "splats"]]
    for row in model.rows(rec, config):
        c = row.cells
        out.append([row.label, c["apply"].text, c["build"].text, c["warnings"].text,
                    c["boot"].text, model.tests_summary(row.step), _splat_text(c["splats"])])
    return out


def _splat_text(cell: model.Cell) -> str:
    return f"{cell.text} (known)" if cell.status == "known" else cell.text


def tested_ok(rec: dict) -> bool:
    """Everything passed: worth a Tested-by."""
    return rec["status"] == "complete" and rec.get("exit_code") == 0
