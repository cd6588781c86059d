"""The jinja2 environment of the report templates (pipeline/report/templates/).

Reads the templates shipped as package data; writes nothing. HTML templates autoescape; every
value printed by any template first goes through `text.clean` (no terminal escapes or control
characters), so a template cannot forget to clean untrusted text. Filters: `md` (Markdown
escaping), `one_line`, `short` (a commit's first 12 characters).
"""

from __future__ import annotations

from functools import cache

import jinja2
import markupsafe

from pipeline.report import model
from pipeline.report.text import clean, md_escape, one_line


def _finalize(value: object) -> object:
    if isinstance(value, markupsafe.Markup):  # already-rendered template output
        return value
    return clean(value) if isinstance(value, str) else ("" if value is None else value)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
        finalize=_finalize,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(md=md_escape, one_line=one_line, short=model.short,
                       suite_of=lambda key: key.split("/", 1)[0])
    env.tests.update(in_suite=lambda key, suite: key.split("/", 1)[0] == suite)
    env.globals.update(step_label=model.step_label, outcome=model.outcome,
                       test_cell=model.test_cell, next_step=model.next_step,
                       tree_label=model.tree_label)
    return env


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)
