"""Browser tests of the operator UI: Debian's Chromium driven by Playwright.

``chromium`` (session): the browser binary; installed with apt-get when missing.  Where
that is impossible the tests are skipped with the reason; under ``CI=true`` they fail.
``ui`` (per test): the whole app (``create_app``) on a free 127.0.0.1 port with a temp
SQLite database, an admin, a manager with an extension and a website form.
``page``: a fresh browser page (Russian locale, desktop size) against that app.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.app import create_app
from tests.support.app import add_form, add_user, make_settings
from tests.support.smtp_server import SmtpTestServer

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests are required in CI: {reason}")
    pytest.skip(reason)


def _apt_install() -> str:
    """Install Debian's chromium; returns what went wrong ("" when it worked)."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "installing chromium needs root (run: apt-get install -y chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    return "" if done.returncode == 0 else (done.stderr or done.stdout)[-500:]


@pytest.fixture(scope="session")
def chromium() -> Path:
    try:
        import playwright  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is missing: pip install -e '.[test]'")
    if not CHROMIUM.exists():
        problem = _apt_install()
        if not CHROMIUM.exists():
            _unavailable(f"{CHROMIUM} is missing and could not be installed: {problem}")
    return CHROMIUM


@dataclass
class UI:
    url: str
    app: web.Application
    admin_id: int
    admin: str
    manager_id: int
    manager: str
    form_key: str
    form_secret: str
    smtp: SmtpTestServer

    def at(self, path: str) -> str:
        return self.url + path


@pytest.fixture
async def ui(tmp_path: Path) -> AsyncIterator[UI]:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'ui.db'}"
    admin_id, admin = await add_user(db_url, "boss@example.ru", "admin", name="Ольга Админова")
    manager_id, manager = await add_user(
        db_url, "petrov@example.ru", "manager", name="Пётр Петров", extension="201"
    )
    key, secret = await add_form(db_url)
    smtp = SmtpTestServer().start()  # a real SMTP server (aiosmtpd) for replies by email
    relay = {
        "host": "127.0.0.1",
        "port": smtp.port,
        "tls": "none",
        "from_address": "sales@crm.example",
        "timeout": 5,
    }
    app = create_app(make_settings(db_url, tmp_path, smtp=relay))
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield UI(
            url=f"http://127.0.0.1:{port}",
            app=app,
            admin_id=admin_id,
            admin=admin,
            manager_id=manager_id,
            manager=manager,
            form_key=key,
            form_secret=secret,
            smtp=smtp,
        )
    finally:
        await runner.cleanup()
        smtp.stop()


@contextlib.asynccontextmanager
async def browser_page(chromium: Path, **context: Any) -> AsyncIterator[Any]:
    """A page in Debian's chromium (Russian locale, Moscow time) with ``context``'s
    viewport and device options; fails the test on any JavaScript error in the page."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True, args=ARGS)
        ctx = await browser.new_context(locale="ru-RU", timezone_id="Europe/Moscow", **context)
        ctx.set_default_timeout(10_000)
        pg = await ctx.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield pg
        finally:
            await ctx.close()
            await browser.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
async def page(chromium: Path, ui: UI) -> AsyncIterator[Any]:
    """Depends on ``ui`` so the browser (and its WebSocket) closes before the server."""
    async with browser_page(chromium, viewport={"width": 1440, "height": 900}) as pg:
        yield pg
