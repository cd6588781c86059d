"""The Markdown summary of a run, for a GitHub Actions job summary ($GITHUB_STEP_SUMMARY).

Reads a record; returns Markdown. Untrusted text (subjects, messages, file names) goes through
`text.md_escape`, so HTML and Markdown in a patch subject show as text on GitHub too.
"""

from __future__ import annotations

from pipeline.report import model, summary
from pipeline.report.env import render

ICON = {"pass": "✅", "applied": "✅", "applied-3way": "✅", "already-present": "✅",
        "fail": "❌", "conflict": "❌", "error": "⚠️", "known": "⚪", "flaky": "🔁"}


def icon(status: str) -> str:
    return ICON.get(status, "➖")


def render_markdown(rec: dict, report_path: str | None = None) -> str:
    configs = []
    for name in model.configs(rec):
        rows = model.rows(rec, name)
        configs.append({"name": name, "rows": rows, "tests": model.test_keys(rec),
                        "changes": model.changes(rec, name)})
    return render("summary.md", rec=rec, series=rec.get("series"),
                  headline=summary.headline(rec), configs=configs, icon=icon,
                  test_cell=model.test_cell, tests_summary=model.tests_summary,
                  warnings=model.new_warnings(rec), errors=model.build_errors(rec),
                  splats=model.splats(rec), bad=summary.bad_verdicts(rec),
                  report_path=report_path, run_command=model.run_command(rec))
