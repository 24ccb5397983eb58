"""deploy/: what can be checked on this machine.  The compose file parses and wires two
hubs, PostgreSQL, a one-shot migration and the proxy; the Dockerfile builds as a non-root
image with a healthcheck; the systemd units pass ``systemd-analyze verify``; the nginx
site passes ``nginx -t`` with Debian's nginx and, run for real in front of a stand-in
upstream, sets X-Forwarded-For to the address it saw (a client cannot choose it), carries
WebSocket upgrades and streams SSE unbuffered."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required in CI: {what}")
    pytest.skip(what)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_compose_wires_two_hubs_postgres_migrate_and_proxy() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = doc["services"]
    assert {"postgres", "migrate", "hub1", "hub2", "proxy"} <= set(services)
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for hub in ("hub1", "hub2"):
        svc = services[hub]
        assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert svc["environment"]["CRMHUB_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert svc["environment"]["CRMHUB_WEBFORMS__TRUST_FORWARDED"] == "true"
    mounts = [m.split(":")[0] for m in services["proxy"]["volumes"]]
    for m in mounts:
        assert (DEPLOY / m).is_file(), m
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):  # pragma: no cover - where the compose plugin is installed
        done = subprocess.run(
            ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    lines = [
        ln.strip()
        for ln in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    froms = [ln for ln in lines if ln.startswith("FROM ")]
    assert len(froms) == 2 and " AS build" in froms[0]
    users = [ln for ln in lines if ln.startswith("USER ")]
    assert users == ["USER crmhub"]
    assert any(ln.startswith("HEALTHCHECK") for ln in lines)
    assert 'ENTRYPOINT ["crmhub"]' in lines
    for ln in lines:  # every file the build copies from the checkout exists
        if ln.startswith("COPY ") and "--from=" not in ln:
            parts = [p for p in ln.split()[1:-1] if not p.startswith("--")]
            for p in parts:
                assert (ROOT / p).exists(), p


def test_systemd_units_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here (no systemd)")
    crmhub = Path(sys.executable).parent / "crmhub"
    units = []
    for name in ("crmhub.service", "crmhub-migrate.service"):
        text = (DEPLOY / "systemd" / name).read_text(encoding="utf-8")
        assert "/opt/crmhub/venv/bin/crmhub" in text
        unit = tmp_path / name  # the installed binary's path as on this machine
        unit.write_text(text.replace("/opt/crmhub/venv/bin/crmhub", str(crmhub)))
        units.append(str(unit))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    service = (DEPLOY / "systemd" / "crmhub.service").read_text(encoding="utf-8")
    for option in ("NoNewPrivileges=yes", "ProtectSystem=strict", "User=crmhub"):
        assert option in service


@pytest.fixture(scope="module")
def nginx_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian's nginx: the installed one, else unpacked from its package (no service is
    started, nothing installed system-wide)."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if found:
        return Path(found)
    tmp = tmp_path_factory.mktemp("nginx-deb")
    got = subprocess.run(["apt-get", "download", "nginx"], cwd=tmp, capture_output=True, text=True)
    debs = list(tmp.glob("nginx_*.deb"))
    if got.returncode != 0 or not debs:
        _missing(f"Debian's nginx is not installed and could not be downloaded: {got.stderr}")
    subprocess.run(["dpkg", "-x", str(debs[0]), str(tmp / "root")], check=True)
    return tmp / "root" / "usr" / "sbin" / "nginx"


def _nginx_conf(tmp: Path, listen: int, upstream_port: int) -> Path:
    (tmp / "snippets").mkdir(parents=True, exist_ok=True)
    shutil.copy(DEPLOY / "nginx" / "crmhub-site.inc", tmp / "snippets" / "crmhub-site.inc")
    site = (DEPLOY / "nginx" / "crmhub.conf").read_text(encoding="utf-8")
    site = site.replace("server 127.0.0.1:8080", f"server 127.0.0.1:{upstream_port}")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen};").replace("listen [::]:80;", "")
    (tmp / "crmhub.conf").write_text(site)
    conf = tmp / "nginx.conf"
    temp = "\n".join(
        f"  {k}_temp_path {tmp / k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf.write_text(
        f"pid {tmp / 'nginx.pid'};\nerror_log stderr;\ndaemon off;\nmaster_process off;\n"
        f"events {{}}\nhttp {{\n  access_log off;\n{temp}\n  include crmhub.conf;\n}}\n"
    )
    return conf


def test_nginx_site_passes_nginx_t(nginx_bin: Path, tmp_path: Path) -> None:
    conf = _nginx_conf(tmp_path, _free_port(), 8080)
    done = subprocess.run(
        [str(nginx_bin), "-t", "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    compose = (DEPLOY / "nginx" / "crmhub-compose.conf").read_text(encoding="utf-8")
    compose = compose.replace("hub1:8080", "127.0.0.1:18081").replace(
        "hub2:8080", "127.0.0.1:18082"
    )
    compose = compose.replace("/etc/nginx/conf.d/crmhub-site.inc", "snippets/crmhub-site.inc")
    compose = compose.replace("listen 80;", f"listen 127.0.0.1:{_free_port()};")
    (tmp_path / "crmhub.conf").write_text(compose)
    done = subprocess.run(
        [str(nginx_bin), "-t", "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


async def _standin(request: web.Request) -> web.StreamResponse:
    """Echo what the proxy sent: the client address headers and the upgrade."""
    if request.path == "/live":
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(f"xff={request.headers.get('X-Forwarded-For')}")
        await ws.close()
        return ws
    if request.path == "/live/sse":
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"event: hello\ndata: 1\n\n")
        await asyncio.sleep(30)  # the event must arrive before the stream ends
        return resp
    return web.json_response(
        {
            "xff": request.headers.get("X-Forwarded-For"),
            "proto": request.headers.get("X-Forwarded-Proto"),
            "host": request.headers.get("Host"),
        }
    )


@pytest.fixture
async def proxied(nginx_bin: Path, tmp_path: Path) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _standin)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
    await runner.setup()
    upstream = _free_port()
    await web.TCPSite(runner, "127.0.0.1", upstream).start()
    listen = _free_port()
    conf = _nginx_conf(tmp_path, listen, upstream)
    proc = subprocess.Popen(  # noqa: ASYNC220 - nginx runs beside the loop
        [str(nginx_bin), "-p", str(tmp_path), "-c", str(conf), "-e", "stderr"],
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{listen}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        await runner.cleanup()


async def test_nginx_sets_the_client_address_and_carries_websocket_and_sse(proxied: str) -> None:
    async with aiohttp.ClientSession() as http:
        # a client's own X-Forwarded-For is replaced, not appended to
        async with http.get(proxied + "/api/v1/me", headers={"X-Forwarded-For": "6.6.6.6"}) as r:
            seen = await r.json()
        assert seen["xff"] == "127.0.0.1" and seen["proto"] == "http"
        async with http.ws_connect(proxied + "/live", headers={"X-Forwarded-For": "6.6.6.6"}) as ws:
            msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.data == "xff=127.0.0.1"
        async with http.get(proxied + "/live/sse") as r:
            first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5)  # not buffered
        assert first == b"event: hello\ndata: 1\n\n"
