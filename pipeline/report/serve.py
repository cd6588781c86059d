"""`kpipe serve`: the viewer over $KPIPE_REPORTS on http://127.0.0.1:PORT/.

Reads the reports dir and its run index; answers / and /index.html (a page of runs, `?page=N`,
filtered by `series`, `outcome`, `tree`, `date`) from the index without writing a file; writes
a run's report.html when missing or stale, and a comparison page when one is asked for that was
not pre-rendered. Serves files from the reports dir only, and binds to the loopback address only.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
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
        if not self._index(head=False):
            self._prepare(self.path.split("?", 1)[0])
            super().do_GET()

    def do_HEAD(self) -> None:  # noqa: N802
        if not self._index(head=True):
            self._prepare(self.path.split("?", 1)[0])
            super().do_HEAD()

    def _index(self, head: bool) -> bool:
        """Answer / and /index.html (with ?page= and filters) from the run index."""
        path, _, query = self.path.partition("?")
        if path not in ("/", "/index.html"):
            return False
        args = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
        try:
            page = max(1, int(args.pop("page", "1")))
        except ValueError:
            page = 1
        body = viewer.render_index(self.reports, args, page).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        return True

    def _prepare(self, path: str) -> None:
        if m := _RUN_PAGE.match(path):
            if run := viewer.load_run(self.reports, m.group(1)):
                viewer.ensure_run_page(run)
        elif m := _COMPARE.match(path):
            a, b = viewer.load_run(self.reports, m.group(1)), viewer.load_run(self.reports,
                                                                             m.group(2))
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
