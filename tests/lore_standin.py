"""A lore stand-in: a real HTTP server on 127.0.0.1 serving threads at lore's URLs.

Serves `/<list>/<msgid>/t.mbox.gz` (what b4 asks for a thread) and `/<list>/<msgid>/raw` from
mbox files it was given; unknown message-ids get 404 as on lore. Used by the intake tests with
b4's `midmask` pointed here.
"""

from __future__ import annotations

import gzip
import http.server
import mailbox
import threading
import urllib.parse
from pathlib import Path


class LoreStandin:
    def __init__(self, threads: list[Path], listname: str = "all") -> None:
        self.listname = listname
        self.requests: list[str] = []
        self._threads: dict[str, bytes] = {}
        for path in threads:
            data = path.read_bytes()
            for msg in mailbox.mbox(str(path), create=False):
                mid = str(msg["Message-Id"]).strip().strip("<>")
                self._threads[mid] = data
        handler = self._handler()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def root(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/{self.listname}"

    def __enter__(self) -> LoreStandin:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: object) -> None:
                standin.requests.append(f"{self.command} {self.path}")

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                parts = [urllib.parse.unquote_plus(p) for p in self.path.split("?")[0]
                         .strip("/").split("/")]
                data = None
                if len(parts) == 3 and parts[0] == standin.listname:
                    thread = standin._threads.get(parts[1])
                    if thread is not None and parts[2] == "t.mbox.gz":
                        data, ctype = gzip.compress(thread), "application/gzip"
                    elif thread is not None and parts[2] == "raw":
                        data, ctype = thread, "text/plain"
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

        return Handler
