"""The browser console's files (`static_pages.py`): what is served, and what never is."""

from __future__ import annotations

from pathlib import Path

from services.api_gateway.static_pages import CSP, LARGEST, load_static


def fake_novnc(root: Path) -> Path:
    (root / "core" / "util").mkdir(parents=True)
    (root / "core" / "rfb.js").write_text("export default class RFB {}")
    (root / "core" / "util" / "int.js").write_text("export const x = 1;")
    (root / "core" / "big.js").write_bytes(b"x" * (LARGEST + 1))
    (root / "core" / "notes.txt").write_text("not served")
    (root / "vnc.html").write_text("<html>noVNC's own app</html>")
    (root / "utils").mkdir()
    (root / "utils" / "novnc_proxy").write_text("#!/bin/sh")
    return root


def test_our_page_and_novnc_s_library_are_served(tmp_path: Path) -> None:
    files = load_static(fake_novnc(tmp_path))
    assert files.novnc
    assert set(files.files) == {
        "/console/",
        "/console/console.js",
        "/console/console.css",
        "/novnc/core/rfb.js",
        "/novnc/core/util/int.js",
    }
    page = files.find("/console/")
    assert page is not None and page.content_type.startswith(b"text/html")
    assert (b"content-security-policy", CSP) in page.headers
    assert b"script-src 'self'" in CSP and b"connect-src 'self'" in CSP
    library = files.find("/novnc/core/rfb.js")
    assert library is not None and library.content_type.startswith(b"text/javascript")
    for refused in ("/novnc/vnc.html", "/novnc/core/../vnc.html", "/novnc/core/big.js"):
        assert files.find(refused) is None


def test_the_page_holds_no_secret_and_loads_only_same_origin_scripts(tmp_path: Path) -> None:
    files = load_static(fake_novnc(tmp_path))
    page = files.find("/console/")
    script = files.find("/console/console.js")
    assert page is not None and script is not None
    assert b'<script type="module" src="/console/console.js">' in page.body
    assert b'import RFB from "/novnc/core/rfb.js"' in script.body
    assert b"location.hash" in script.body and b"replaceState" in script.body


def test_without_novnc_the_page_is_not_served(tmp_path: Path) -> None:
    files = load_static(tmp_path / "absent")
    assert not files.novnc
    assert files.find("/console/") is None
    assert files.is_page("/console/") and not files.is_page("/instances")
