"""``crmhub serve`` on SIGTERM, as a real process: connectors stop first, what was
received is processed, then open live streams end cleanly; with ``log_format = "json"``
every stderr line is JSON (the standard library's loggers and tracebacks included), and
the process exits 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.ami_server import AMIServer, load_transcript
from tests.support.app import add_user
from tests.support.dovecot import free_port
from tests.support.telephony import ami_settings

ROOT = Path(__file__).resolve().parents[3]
AMI = ROOT / "tests" / "fixtures" / "ami"
LIMIT = 60.0  # liveness bound for start and exit, not a timing assertion


def _config(db_url: str, port: int, ami_port: int, tmp_path: Path) -> Path:
    """A settings file (TOML: JSON strings, numbers and lists are TOML values too)."""
    top = {
        "database_url": db_url,
        "host": "127.0.0.1",
        "port": port,
        "log_format": "json",
        "log_level": "INFO",
        "routing_rules_path": "",
        "attachments_dir": str(tmp_path / "att"),
        "sla_poll_seconds": 0,
        "poll_interval": 0.1,
    }
    lines = [f"{k} = {json.dumps(v)}" for k, v in top.items()]
    lines.append("[[asterisk]]")
    lines += [f"{k} = {json.dumps(v)}" for k, v in ami_settings(ami_port).items()]
    path = tmp_path / "crmhub.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CRMHUB_")}


async def _wait_healthy(port: int, proc: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + LIMIT
    async with aiohttp.ClientSession() as http:
        while loop.time() < end:
            if proc.returncode is not None:
                raise AssertionError("crmhub serve exited early (see its stderr)")
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("crmhub serve did not become healthy")


async def test_sigterm_stops_connectors_drains_and_closes_streams(
    db_url: str, tmp_path: Path
) -> None:
    _, token = await add_user(db_url, "anna@example.ru", "manager", extension="101")
    events = load_transcript(AMI / "a_inbound_answered.ami")
    port = free_port()
    # Calls keep coming while we shut down: the recorded call replayed at its own pace.
    async with AMIServer(events=events * 20, speed=1.0) as srv:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "--config",
            str(_config(db_url, port, srv.port, tmp_path)),
            "serve",
            cwd=str(ROOT),
            env=_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stderr is not None
        # Read stderr all along: a full pipe would block the server's logging.
        err_task = asyncio.ensure_future(proc.stderr.read())
        try:
            await _wait_healthy(port, proc)
            loop = asyncio.get_running_loop()
            end = loop.time() + LIMIT
            while srv.logins_ok == 0 and loop.time() < end:  # the AMI link is up  # noqa: ASYNC110 (a counter of the fake PBX)
                await asyncio.sleep(0.05)
            assert srv.logins_ok >= 1
            async with aiohttp.ClientSession() as http:
                base = f"http://127.0.0.1:{port}"
                auth = {"Authorization": f"Bearer {token}"}
                async with http.post(f"{base}/api/v1/live/ticket", headers=auth) as r:
                    ticket = (await r.json())["ticket"]
                async with http.get(f"{base}/live/sse", params={"ticket": ticket}) as sse:
                    assert sse.status == 200
                    assert await sse.content.readline() == b"event: hello\n"
                    started = time.monotonic()
                    proc.send_signal(signal.SIGTERM)
                    rest = (await asyncio.wait_for(sse.content.read(), LIMIT)).decode()
                    assert sse.content.at_eof()
            await asyncio.wait_for(proc.wait(), LIMIT)
            err = await asyncio.wait_for(err_task, LIMIT)
            took = time.monotonic() - started
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
                print((await err_task).decode()[-5000:])
    assert proc.returncode == 0, err.decode()[-3000:]
    assert 'event: bye\ndata: {"reason": "shutdown"}' in rest

    lines = [line for line in err.decode().splitlines() if line.strip()]
    records: list[dict[str, Any]] = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    assert all("event" in r and "level" in r for r in records)
    text = "\n".join(lines)
    assert "Traceback" not in text and "Cannot write to closing transport" not in text
    statuses = [r.get("status") for r in records if r.get("event") == "http_request"]
    assert 500 not in statuses
    # The standard library's loggers (the AMI connector's, aiohttp's) come out as JSON.
    assert any(r.get("logger") == "crmhub.asterisk" for r in records), text[-2000:]
    # Shutdown order: connectors, then the pipeline drains, then the live streams close.
    order = [
        r["event"]
        for r in records
        if r.get("event")
        in ("shutdown_started", "connectors_stopped", "hub_drained", "live_streams_closed")
    ]
    assert order == ["shutdown_started", "connectors_stopped", "hub_drained", "live_streams_closed"]
    print(f"SIGTERM to exit: {took:.2f} s")
    for r in records[-12:]:
        print(r.get("timestamp"), r.get("event"), r.get("logger", ""))
