"""A real HTTP server that publishes model files, for the download tests.

It serves named byte strings with the headers a file host sends
(``Content-Length``, ``Accept-Ranges``), answers ``Range: bytes=N-`` with
``206 Partial Content``, and can drop the connection part-way through a
response once (an interrupted transfer) or serve other bytes than the
published ones (a corrupt mirror). Every request's path and ``Range`` header
is recorded so a test can see that a download resumed instead of starting
again.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ModelServer:
    files: dict[str, bytes]
    # drop the next full response longer than this after this many bytes
    cut_after: int | None = None
    honour_ranges: bool = True  # False: a host that always sends the whole file
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server.state
        name = self.path.lstrip("/")
        state.requests.append((name, self.headers.get("Range")))
        body = state.files.get(name)
        if body is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if not state.honour_ranges:
            match = None
        if match:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        rest = body[start:]
        self.send_header("Content-Length", str(len(rest)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if state.cut_after is not None and not match and len(rest) > state.cut_after:
            cut, state.cut_after = state.cut_after, None
            self.wfile.write(rest[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(rest)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ModelServer


@contextmanager
def model_server(files: dict[str, bytes]) -> Iterator[ModelServer]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = ModelServer(dict(files))
    httpd.state.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()
