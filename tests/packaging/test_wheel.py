"""The installable package: a wheel built from this checkout, installed into a fresh
virtualenv outside it, migrates a database, serves the UI with its scripts and styles,
redirects ``/`` to ``/ui/``, and tells a new installation how to create its first admin."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(
    ".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "tests"
)


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kw: object) -> None:
        return None


def _get(url: str, *, follow: bool = True) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with crmhub installed from a wheel of this checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)  # build outside the checkout: it stays clean
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(src)]
    )
    wheels = list((tmp / "dist").glob("crmhub-*.whl"))
    assert len(wheels) == 1, wheels
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheels[0])])
    return venv


def test_the_wheel_carries_the_ui_and_the_migrations(installed: Path) -> None:
    py = str(installed / "bin" / "python")
    out = _run(
        [py, "-c", "import crm_core, gateway.ui as u; print(crm_core.__file__, u.STATIC)"],
        cwd=installed,
    ).stdout.split()
    pkg, static = Path(out[0]).parent, Path(out[1])
    assert str(installed) in str(pkg), "imported from the checkout, not the installed package"
    assert (static / "index.html").is_file() and (static / "app.css").is_file()
    assert (static / "js" / "main.js").is_file()
    versions = list((pkg / "migrations" / "versions").glob("0*.py"))
    assert len(versions) >= 6 and (pkg / "migrations" / "env.py").is_file()


def test_installed_crmhub_migrates_and_serves_the_ui(installed: Path, tmp_path: Path) -> None:
    crmhub = str(installed / "bin" / "crmhub")
    version = _run([crmhub, "--version"]).stdout.strip()
    assert version.startswith("crmhub ") and "unknown" not in version
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CRMHUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'crmhub.db'}",
        "CRMHUB_ROUTING_RULES_PATH": "",
        "CRMHUB_LOG_FORMAT": "json",
    }
    done = _run([crmhub, "migrate"], cwd=tmp_path, env=env)
    assert json.loads(done.stdout.strip().splitlines()[-1])["migrated"] is True
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [crmhub, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(base + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "crmhub serve did not answer in 60 s"
            time.sleep(0.3)
        status, headers, _ = _get(base + "/", follow=False)
        assert status == 302 and headers["Location"] == "/ui/"
        status, _, page = _get(base + "/ui/")
        assert status == 200 and b"/ui/static/js/main.js" in page
        for asset in ("/ui/static/js/main.js", "/ui/static/js/i18n.js", "/ui/static/app.css"):
            status, _, body = _get(base + asset)
            assert status == 200 and len(body) > 100, asset
        status, _, body = _get(base + "/api/v1/setup")
        setup = json.loads(body)
        assert status == 200 and setup["needs_first_admin"] is True
        assert "crmhub users invite" in setup["command"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert "no_users_yet" in (tmp_path / "serve.log").read_text()
