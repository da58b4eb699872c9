"""A loopback HTTP server for test guest images: what tests and benchmarks
give node agents as disk bases, with no internet (or one on another local
address, for node agents in network namespaces of the tests' own)."""

from __future__ import annotations

import email.utils
import functools
import os
import shutil
import threading
import time
import urllib.parse
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class ImageServer:
    """A real HTTP server on loopback (or `host`) serving the files tests
    publish, from a folder of its own, and counting the requests for each
    path. A path never published answers 404."""

    def __init__(self, folder: Path, *, host: str = "127.0.0.1") -> None:
        self._folder = folder
        self._hits: Counter[str] = Counter()
        self._delays: dict[str, float] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), functools.partial(_ImageHandler, images=self))
        self._server.daemon_threads = True
        self.base_url = f"http://{host}:{self._server.server_address[1]}"
        """http://<host>:<port>, without a trailing slash."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="image-server", daemon=True
        )
        self._thread.start()

    def url(self, name: str) -> str:
        """The URL of /<name>, published or not."""
        return f"{self.base_url}/{name}"

    def publish(self, name: str, data: bytes, *, delay: float = 0.0) -> str:
        """Serve ``data`` at /<name> from now on (``name`` is a plain file
        name; publishing again replaces it), each answer held back ``delay``
        seconds (a slow image server); returns its URL."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"not a plain file name: {name!r}")
        with self._lock:
            self._delays[name] = delay
        partial = self._folder / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(self._folder / name)
        return self.url(name)

    def hits(self, name: str) -> int:
        """How many requests /<name> has had (any method, any answer)."""
        with self._lock:
            return self._hits[name]

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _request(self, name: str) -> Path | None:
        """Count a request for /<name>, hold it back as published; the file
        to answer, if published."""
        with self._lock:
            self._hits[name] += 1
            delay = self._delays.get(name, 0.0)
        time.sleep(delay)
        path = self._folder / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return None
        return path


class _ImageHandler(BaseHTTPRequestHandler):
    """Answers GET and HEAD from an ImageServer, with the file's size and
    modification time."""

    def __init__(self, *args: Any, images: ImageServer, **kwargs: Any) -> None:
        self.images = images
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        name = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path.removeprefix("/"))
        path = self.images._request(name)
        if path is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        with path.open("rb") as file:
            stat = os.fstat(file.fileno())
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(stat.st_size))
            self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
            self.end_headers()
            if body:
                shutil.copyfileobj(file, self.wfile)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ImageServer.hits rather than an access log."""
