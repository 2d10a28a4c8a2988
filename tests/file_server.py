"""A publisher-like file server of a test's own: Range/If-Range support and fault injection.

It serves given bytes at given paths over HTTP on a free loopback port, answers
``Range: bytes=N-`` with 206 (honouring ``If-Range``) or 416, and can be told to fail: an HTTP
status, a connection dropped half-way through the body, a truncated body that ignores Range, a
slow answer. The real clients run against it; nothing is patched.
"""

from __future__ import annotations

import collections
import hashlib
import mimetypes
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LAST_MODIFIED = "Tue, 07 Sep 2021 14:00:00 GMT"
NOT_FOUND_PAGE = (b'<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
                  b"<title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>\n"
                  b"<p>The requested URL was not found on this server.</p>\n</body></html>\n")


@dataclass
class Served:
    """One request as the server saw it."""

    path: str
    range: str | None
    if_range: str | None
    status: int
    sent: int


class FileServer:
    """Serves ``files`` (path under ``prefix`` -> bytes), with per-path fault injection.

    Faults, queued per file and used one per request: an int (that HTTP status), ``"drop"``
    (headers as usual, then half the body and the connection closed), ``"truncate"`` (ignore
    Range, answer 200 with the full Content-Length and send half), ``"slow"`` (wait
    ``slow_seconds`` before answering).
    """

    def __init__(self, files: dict[str, bytes], *, prefix: str = "") -> None:
        self.prefix = prefix
        self.files = {f"{prefix}/{path}": data for path, data in files.items()}
        self.faults: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.log: list[Served] = []
        self.range_support = True
        self.delay = 0.0
        self.slow_seconds = 1.0
        self.retry_after = "0"  # the Retry-After of a 429 or 503
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{self.prefix}"

    def fault(self, path: str, *faults: int | str) -> None:
        self.faults[f"{self.prefix}/{path}"].extend(faults)

    def served(self, path: str | None = None) -> list[Served]:
        with self.lock:
            return [r for r in self.log if path is None or r.path == f"{self.prefix}/{path}"]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        server: FileServer = self.server.owner  # type: ignore[attr-defined]
        with server.lock:
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            self._answer(server)
        finally:
            with server.lock:
                server.in_flight -= 1

    def _record(self, server: FileServer, path: str, status: int, sent: int) -> None:
        with server.lock:
            server.log.append(Served(path, self.headers.get("Range"),
                                     self.headers.get("If-Range"), status, sent))

    def _answer(self, server: FileServer) -> None:
        path = urlsplit(self.path).path
        with server.lock:
            queue = server.faults.get(path)
            fault = queue.popleft() if queue else None
        if server.delay:
            time.sleep(server.delay)
        if fault == "slow":
            time.sleep(server.slow_seconds)
        data = server.files.get(path)
        if isinstance(fault, int) or data is None:
            status = fault if isinstance(fault, int) else 404
            body = NOT_FOUND_PAGE if status == 404 else (
                f"<html><head><title>{status} Error</title></head><body>busy</body></html>"
                .encode())
            self._record(server, path, status, len(body))
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=iso-8859-1")
            self.send_header("Content-Length", str(len(body)))
            if status in (429, 503):
                self.send_header("Retry-After", server.retry_after)
            self.end_headers()
            self.wfile.write(body)
            return
        etag = '"' + hashlib.sha1(data).hexdigest()[:16] + '"'
        asked, if_range = self.headers.get("Range"), self.headers.get("If-Range")
        start, status = 0, 200
        if asked and server.range_support and fault != "truncate" \
                and (if_range is None or if_range == etag):
            start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))
            if start >= len(data):
                self._record(server, path, 416, 0)
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        cut = fault in ("drop", "truncate")
        # Recorded before the body goes out: a client that has it all may look at the log at once.
        self._record(server, path, status, len(body) // 2 if cut else len(body))
        self.send_response(status)
        self.send_header("Content-Type", mimetypes.guess_type(path)[0] or "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", LAST_MODIFIED)
        if server.range_support:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if cut:
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.wfile.write(body)
