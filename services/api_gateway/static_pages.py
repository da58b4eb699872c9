"""The browser console's files: our page (`console_page/`, in this
package) at `/console/`, and noVNC, from Debian's `novnc` package
(`--novnc-dir`, `/usr/share/novnc`), at `/novnc/`.

Everything is read once at start-up into a table keyed by exact path, so a
request can only ever get a file listed there (no path is joined to a
folder at request time: no `..`, no symbolic link out). Of noVNC only the
`core/` and `vendor/` trees are served (the library, not its own app), files
of the types below and at most `LARGEST` bytes each: about 1 MiB in all.
Without noVNC the page answers 503 saying so; the rest of the gateway is
unaffected.

The page is ours and holds no secret: it reads the instance and the ticket
from its URL's fragment (never sent to a server), then drops the fragment
from the address bar. Its Content-Security-Policy allows scripts, styles
and connections to this origin only (`connect-src 'self'` covers its own
`ws:`/`wss:`), images from it and `data:` (noVNC draws its cursor so),
nothing else, no framing, no forms, no referrer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PAGE_DIR = Path(__file__).parent / "console_page"
PAGE_FILES = {
    "/console/": "index.html",
    "/console/console.js": "console.js",
    "/console/console.css": "console.css",
}
NOVNC_PREFIX = "/novnc/"
NOVNC_TREES = ("core", "vendor")
LARGEST = 512 * 1024
TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
}
CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = [
    (b"content-security-policy", CSP),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
]
LIBRARY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"public, max-age=3600"),
]
MISSING = "the browser console needs noVNC (Debian's novnc package) on the gateway's host"


@dataclass(frozen=True)
class StaticFile:
    """One file the gateway answers itself."""

    body: bytes
    content_type: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class StaticFiles:
    """The table of served files; `novnc` False when noVNC was not found."""

    files: dict[str, StaticFile]
    novnc: bool

    def find(self, path: str) -> StaticFile | None:
        """The file at `path`, if served. Pure."""
        return self.files.get(path)

    def is_page(self, path: str) -> bool:
        """Whether `path` is one of the console page's own files. Pure."""
        return path in PAGE_FILES


def load_static(novnc_dir: Path) -> StaticFiles:
    """Read our page and noVNC's library into the table (at start-up)."""
    files: dict[str, StaticFile] = {}
    novnc = (novnc_dir / "core" / "rfb.js").is_file()
    if not novnc:
        log.warning("no noVNC at %s: the browser console answers 503", novnc_dir)
    else:
        for tree in NOVNC_TREES:
            for path in sorted((novnc_dir / tree).rglob("*")):
                kind = TYPES.get(path.suffix)
                if kind is None or not path.is_file() or path.stat().st_size > LARGEST:
                    continue
                name = NOVNC_PREFIX + path.relative_to(novnc_dir).as_posix()
                files[name] = StaticFile(path.read_bytes(), kind, LIBRARY_HEADERS)
        for url, name in PAGE_FILES.items():
            page = PAGE_DIR / name
            files[url] = StaticFile(page.read_bytes(), TYPES[page.suffix], PAGE_HEADERS)
    return StaticFiles(files, novnc)
