"""The UI's files and headers, without a browser (runs where Chromium is missing)."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.ui import CSP, STATIC
from tests.support.app import make_settings


async def test_pages_assets_and_security_headers(tmp_path: Path, aiohttp_client: object) -> None:
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'ui.db'}", tmp_path))
    client: TestClient = await aiohttp_client(app)  # type: ignore[operator]

    r = await client.get("/ui", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/ui/"
    r = await client.get("/ui/")
    assert r.status == 200 and r.content_type == "text/html"
    assert r.headers["Content-Security-Policy"] == CSP
    assert "script-src 'self';" in CSP and "unsafe-eval" not in CSP
    html = await r.text()
    assert '<script type="module" src="/ui/static/js/main.js">' in html

    # Every module imported anywhere is served, as JavaScript, with the same headers.
    modules = {p.name for p in (STATIC / "js").glob("*.js")}
    imported = set()
    for path in (STATIC / "js").glob("*.js"):
        imported |= set(re.findall(r'from "\./([\w-]+\.js)"', path.read_text()))
    assert imported <= modules and "main.js" in modules
    for name in sorted(modules):
        r = await client.get(f"/ui/static/js/{name}")
        assert r.status == 200, name
        assert r.content_type in ("application/javascript", "text/javascript"), name
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    r = await client.get("/ui/static/app.css")
    assert r.status == 200 and r.content_type == "text/css"
    assert (await client.get("/ui/static/../__init__.py")).status in (403, 404)


def test_no_inner_html_in_the_ui() -> None:
    """Untrusted text reaches the page through textContent only."""
    for path in (STATIC / "js").glob("*.js"):
        text = path.read_text()
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert banned not in text, f"{path.name} uses {banned}"
