"""The per-run HTML report: one self-contained page (no network, no script) per run.

Reads the run dir's results.json and the logs it names (failed tests, apply conflicts, failed
builds; each capped, with a link to the full file) and, in a reports dir, each failed test's
recent history from the run index; writes <run dir>/report.html. Every link is
relative to the run dir, so the page works from file:// and over HTTP alike.
"""

from __future__ import annotations

from pathlib import Path

from pipeline import atomic
from pipeline.record import index
from pipeline.record.store import kpipe_version
from pipeline.report import model
from pipeline.report.env import render
from pipeline.report.text import LogExcerpt, cap, clean, read_capped

REPORT_FILE = "report.html"
TRACE_CAP = 16 * 1024


def in_reports(run_dir: Path) -> bool:
    """The run dir is <reports>/runs/<id>, so the viewer's index is two levels up."""
    return run_dir.resolve().parent.name == "runs"


def render_run(rec: dict, run_dir: Path) -> str:
    index_href = "../../index.html" if in_reports(run_dir) else None
    failed = [(s, t, read_capped(run_dir, t.get("log")))
              for s in rec["steps"] for t in s["tests"] if t["status"] in ("fail", "error")]
    splats = [_SplatView(sp) for sp in model.splats(rec)]
    history = test_history(rec, run_dir)
    return render(
        "run.html", rec=rec, series=rec.get("series"), index_href=index_href,
        run_command=model.run_command(rec), kpipe_version=kpipe_version(),
        matrices=[{"config": c, "rows": model.rows(rec, c), "tests": model.test_keys(rec),
                   "history": {t: h for (hc, t), h in history.items() if hc == c}}
                  for c in model.configs(rec)], history=history,
        warnings=model.new_warnings(rec),
        errors=model.build_errors(rec), splats=splats, allowed=model.splats(rec, allowed=True),
        lockdep=model.lockdep_coverage(rec),
        failed=failed, logs=_logs(rec, run_dir),
        reproduce=[(s, model.reproduce(rec, s)) for s in rec["steps"]],
        cover=clean((rec.get("series") or {}).get("cover") or ""))


def test_history(rec: dict, run_dir: Path) -> dict[tuple[str, str], str]:
    """For each (config, test) that failed in this run, its recent history on this tree from
    the run index ("failed 1 of the last 20 runs on this tree"); empty outside a reports dir."""
    if not in_reports(run_dir):
        return {}
    reports = run_dir.resolve().parent.parent
    failed = {(s.get("config", "default"), model.test_key(t)) for s in rec["steps"]
              for t in s["tests"] if t["status"] in ("fail", "error")}
    return {(c, t): index.history(reports, rec, c, t).text() for c, t in sorted(failed)}


class _SplatView:
    """A splat seen at some steps, with its trace capped for the page."""

    def __init__(self, seen: model.SplatSeen) -> None:
        self.splat, self.config, self.steps = seen.splat, seen.config, seen.steps
        self.at_base = seen.at_base
        self.trace = cap(clean(seen.splat.get("trace") or ""), TRACE_CAP)[0]


def _logs(rec: dict, run_dir: Path) -> list[tuple[str, LogExcerpt | None]]:
    """Logs worth reading inline: apply conflicts, failed builds, boots that did not pass."""
    out = []
    for s in rec["steps"]:
        where = f"{model.step_label(s['index'])} [{s.get('config', 'default')}]"
        if s["apply"]["status"] == "conflict" and s.get("config", "default") == \
                model.configs(rec)[0]:
            out.append((f"{where}: apply log", read_capped(run_dir, s["apply"].get("log"))))
        if s["build"]["status"] in ("fail", "error"):
            out.append((f"{where}: build log", read_capped(run_dir, s["build"].get("log"))))
        if s["boot"]["status"] in ("fail", "error"):
            out.append((f"{where}: console", read_capped(run_dir, s["boot"].get("console"))))
    return out


def write_run(run_dir: Path, rec: dict | None = None) -> Path:
    """Render the run's page into its directory; return the path."""
    from pipeline.record import store as record

    rec = rec if rec is not None else record.load(run_dir)
    return atomic.write_text(run_dir / REPORT_FILE, render_run(rec, run_dir))
