"""The report mail: plain text in the layout of kernel test robot / KernelCI reports.

Reads a record (and, for the splat and error excerpts, nothing else: traces are in the record);
returns the message (headers, blank line, body) as text. Trailers to copy: Reported-by and
Closes (the lore link of the first bad patch) for a regression, Tested-by when all passed.
The reporter's address is $KPIPE_REPORTER (default `kpipe <kpipe@localhost>`).
"""

from __future__ import annotations

import os
from email.utils import parseaddr

from pipeline.record.store import kpipe_version
from pipeline.report import model, summary
from pipeline.report.env import render
from pipeline.report.text import clean, columns, one_line

DEFAULT_REPORTER = "kpipe <kpipe@localhost>"
TRACE_LINES = 30


def reporter() -> str:
    return os.environ.get("KPIPE_REPORTER") or DEFAULT_REPORTER


def lore_link(rec: dict, msgid: str) -> str:
    """The lore URL of a message, next to the series link when that is a lore URL."""
    link = (rec.get("series") or {}).get("link", "")
    root = link.rstrip("/").rsplit("/", 1)[0] + "/" if link.startswith("http") else \
        "https://lore.kernel.org/all/"
    return f"{root}{msgid}/"


def _patch_msgid(rec: dict, index: int) -> str | None:
    for patch in (rec.get("series") or {}).get("patches", []):
        if patch["n"] == index:
            return patch["msgid"]
    return None


def render_mail(rec: dict) -> str:
    series = rec.get("series") or {}
    focus = summary.focus_step(rec)
    bad = summary.bad_verdicts(rec)
    closes = None
    if bad:
        msgid = _patch_msgid(rec, min(v["step"] for v in bad)) or series.get("msgid")
        closes = lore_link(rec, msgid) if msgid else None
    splats = []
    for seen in model.splats(rec):  # a splat the base shows too gets its title only
        trace = [] if seen.at_base else clean(seen.splat.get("trace") or "").splitlines()
        splats.append((seen, trace[:TRACE_LINES], max(0, len(trace) - TRACE_LINES)))
    n_patches = len(series.get("patches", []))
    return render(
        "mail.txt", rec=rec, series=series, n_patches=n_patches, reporter=reporter(),
        to=one_line(series.get("author", "")),
        name=parseaddr(one_line(series.get("author", "")))[0], headline=summary.headline(rec),
        subject_tail=summary.mail_subject_tail(rec),
        configs=[(model.config_of(rec, c), columns(summary.step_table(rec, c)),
                  columns([["what", "base", "first change", "there", "tip"]] +
                          [[ch.what, ch.base, model.step_label(ch.first), ch.there, ch.tip]
                           for ch in model.changes(rec, c)]) if model.changes(rec, c) else [])
                 for c in model.configs(rec)],
        warnings=model.new_warnings(rec), errors=model.build_errors(rec), splats=splats,
        allowed=model.splats(rec, allowed=True),
        failed=[(s, t) for s in rec["steps"] for t in s["tests"]
                if t["status"] in ("fail", "error") and s is model.tip(rec, s["config"])],
        focus=focus, reproduce=model.reproduce(rec, focus) if focus else [],
        run_command=model.run_command(rec), closes=closes, bad=bad,
        tested=summary.tested_ok(rec), kpipe_version=kpipe_version(),
        patch_width=len(str(n_patches)))
