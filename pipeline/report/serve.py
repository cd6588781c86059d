"""`kpipe serve`: the viewer over $KPIPE_REPORTS on http://127.0.0.1:PORT/.

Reads the reports dir; writes the index (regenerated from the records on every request for
/ or /index.html), a run's report.html when missing or stale, and a comparison page when one is
asked for that was not pre-rendered. Serves files from the reports dir only, and binds to the
loopback address only.
"""

from __future__ import annotations

import functools
import re
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipeline.report import viewer

HOST = "127.0.0.1"
_RUN_PAGE = re.compile(r"^/runs/([0-9]{8}-[0-9]{6}-[0-9a-f]{4})/report\.html$")
_COMPARE = re.compile(r"^/compare/([0-9]{8}-[0-9]{6}-[0-9a-f]{4})\.\."
                      r"([0-9]{8}-[0-9]{6}-[0-9a-f]{4})\.html$")


class ViewerHandler(SimpleHTTPRequestHandler):
    reports: Path

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._prepare(self.path.split("?", 1)[0])
        super().do_GET()

    def do_HEAD(self) -> None:  # noqa: N802
        self._prepare(self.path.split("?", 1)[0])
        super().do_HEAD()

    def _prepare(self, path: str) -> None:
        if path in ("/", "/index.html"):
            viewer.write_viewer(self.reports)
            return
        runs = {r.id: r for r in viewer.load_runs(self.reports)} \
            if _RUN_PAGE.match(path) or _COMPARE.match(path) else {}
        if m := _RUN_PAGE.match(path):
            if m.group(1) in runs:
                viewer.ensure_run_page(runs[m.group(1)])
        elif m := _COMPARE.match(path):
            a, b = runs.get(m.group(1)), runs.get(m.group(2))
            if a and b:
                viewer.write_compare(self.reports, a, b)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def make_server(reports: Path, port: int) -> ThreadingHTTPServer:
    reports.mkdir(parents=True, exist_ok=True)
    viewer.write_viewer(reports)
    handler = functools.partial(type("Handler", (ViewerHandler,), {"reports": reports}),
                                directory=str(reports))
    return ThreadingHTTPServer((HOST, port), handler)
