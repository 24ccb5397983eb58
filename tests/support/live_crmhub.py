"""crmhub as a real ``crmhub serve`` subprocess for the live PBX tests, and the REST API
and live-stream clients that check what it holds.

    hub = Crmhub(workdir, db_url, pbx)
    admin = hub.add_user("boss@example.ru", "admin")          # crmhub users add (the CLI)
    hub.start()                                               # waits for the AMI link
    async with Api(hub.base_url, admin.token) as api, live_stream(api) as live:
        ...
    hub.kill9() / hub.stop()                                  # by PID

Its own config file (TOML), database, port and log; only 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.live_pbx import Pbx, free_tcp_port

__all__ = [
    "Api",
    "Crmhub",
    "LiveFrames",
    "User",
    "live_stream",
    "poll",
]


@dataclass(frozen=True)
class User:
    id: int
    token: str
    extension: str | None


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _crmhub_cmd() -> list[str]:
    script = Path(sys.executable).parent / "crmhub"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]


@dataclass
class Crmhub:
    """One ``crmhub serve`` process with an ``[[asterisk]]`` table for ``pbx``."""

    workdir: Path
    db_url: str
    pbx: Pbx
    rules_yaml: str = ""
    asterisk: dict[str, Any] = field(default_factory=dict)  # extra [[asterisk]] keys
    port: int = field(default_factory=free_tcp_port)
    proc: subprocess.Popen[bytes] | None = None
    users: dict[str, User] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_config()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        return self.workdir / "crmhub.toml"

    @property
    def log(self) -> Path:
        return self.workdir / "crmhub.log"

    def write_config(self) -> None:
        rules = self.workdir / "routing.yaml"
        rules.write_text(self.rules_yaml)
        top = {
            "database_url": self.db_url,
            "host": "127.0.0.1",
            "port": self.port,
            "log_format": "json",
            "attachments_dir": str(self.workdir / "attachments"),
            "routing_rules_path": str(rules),
            "poll_interval": 0.2,
            "sla_poll_seconds": 0.0,
        }
        pbx = {
            "name": "live",
            "host": "127.0.0.1",
            "port": self.pbx.ami_port,
            "username": "crm",
            "secret": "crmsecret",
            "inbound_contexts": ["from-pstn"],
            "trunk_channel_patterns": ["PJSIP/trunk-*"],
            "reconnect_max_seconds": 1.0,
            "cdr_wait_seconds": 1.0,
            **self.asterisk,
        }
        lines = [f"{k} = {_toml(v)}" for k, v in top.items()]
        lines += ["", "[[asterisk]]", *(f"{k} = {_toml(v)}" for k, v in pbx.items())]
        self.config.write_text("\n".join(lines) + "\n")

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRMHUB_")}
        return {**env, "PYTHONUNBUFFERED": "1"}

    def cli(self, *args: str) -> Any:
        """``crmhub --config ... ARGS`` (its JSON output)."""
        done = subprocess.run(
            [*_crmhub_cmd(), "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            env=self._env(),
            cwd=self.workdir,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"crmhub {' '.join(args)} failed: {done.stderr.strip()[-800:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def add_user(self, email: str, role: str = "manager", extension: str | None = None) -> User:
        args = ["users", "add", email, "--role", role]
        if extension:
            args += ["--extension", extension]
        out = self.cli(*args)
        user = User(id=int(out["id"]), token=str(out["token"]), extension=extension)
        self.users[extension or email] = user
        return user

    def start(self, wait_connected: bool = True, limit_s: float = 60.0) -> None:
        """``crmhub serve``; waits until ``/readyz`` shows the AMI link connected."""
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                [*_crmhub_cmd(), "--config", str(self.config), "serve"],
                cwd=self.workdir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=fh,
            )
        if wait_connected:
            self.wait_connected(limit_s)

    def readyz(self) -> dict[str, Any] | None:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.base_url}/readyz", timeout=2) as r:
                body: dict[str, Any] = json.loads(r.read())
                return body
        except (OSError, ValueError):
            return None

    def wait_connected(self, limit_s: float = 60.0) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"crmhub exited with {self.proc.returncode}: {self.tail()}")
            body = self.readyz()
            if body and any(c.get("state") == "connected" for c in body.get("connectors", [])):
                return
            time.sleep(0.1)
        raise AssertionError(f"crmhub's AMI link not connected within {limit_s} s: {self.tail()}")

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def kill9(self) -> None:
        """``kill -9`` by PID: no shutdown code runs."""
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self, grace_s: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s`` (crmhub's shutdown waits for the live
        streams' handlers, which notice a gone client only at their next heartbeat)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(grace_s)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            self.proc = None


# -- REST API --------------------------------------------------------------------------


class Api:
    """The REST API with one user's Bearer token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self.session = aiohttp.ClientSession(
            self.base_url, headers={"Authorization": f"Bearer {self.token}"}
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self.session is not None
        return self.session

    async def get(self, path: str, **params: Any) -> Any:
        async with self.http.get(f"/api/v1{path}", params=params) as r:
            assert r.status == 200, f"GET {path}: {r.status} {await r.text()}"
            return await r.json()

    async def post(self, path: str, body: dict[str, Any], **headers: str) -> Any:
        async with self.http.post(f"/api/v1{path}", json=body, headers=headers) as r:
            assert r.status in (200, 201, 202), f"POST {path}: {r.status} {await r.text()}"
            return await r.json()

    async def leads(self, phone: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.get("/leads", phone=phone))["items"]
        return items

    async def timeline(self, lead_id: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.get(f"/leads/{lead_id}/timeline"))["items"]
        return items

    async def calls_of(self, phone: str) -> list[dict[str, Any]]:
        """Every call interaction on the timelines of the leads of ``phone``, oldest first."""
        out: dict[int, dict[str, Any]] = {}
        for lead in await self.leads(phone):
            for i in await self.timeline(lead["id"]):
                if i["channel"] == "call":
                    out[i["id"]] = i
        return [out[k] for k in sorted(out)]

    async def tasks(self, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.get("/tasks", limit=200, **params))["items"]
        return items


async def poll(
    probe: Callable[[], Awaitable[Any]], what: str, limit_s: float = 60.0, every: float = 0.3
) -> Any:
    """``probe()`` until it returns something truthy (a generous deadline, not a timing)."""
    deadline = time.monotonic() + limit_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"{what}: not reached within {limit_s} s (last: {last!r})")


# -- live stream -----------------------------------------------------------------------


@dataclass
class LiveFrames:
    """Frames received on the live stream: ``{"kind": ..., "payload": {...}}``."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    hello: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [
            f["payload"]
            for f in self.frames
            if f.get("kind") == kind and all(f["payload"].get(k) == v for k, v in match.items())
        ]


async def _open_live(api: Api) -> aiohttp.ClientResponse:
    """THE place that knows how the live stream authenticates.  Today ``/live/sse`` takes
    the API token (``Authorization: Bearer``); when it moves to a short-lived ticket, get
    the ticket with ``api`` here and pass it instead."""
    resp = await api.http.get("/live/sse", timeout=aiohttp.ClientTimeout(total=None))
    assert resp.status == 200, f"/live/sse: {resp.status} {await resp.text()}"
    return resp


@contextlib.asynccontextmanager
async def live_stream(api: Api) -> AsyncIterator[LiveFrames]:
    """Server-Sent Events from ``/live/sse`` as ``api``'s user, collected until the block
    ends (the stream is open, ``hello`` received, before the block starts)."""
    out = LiveFrames()
    resp = await _open_live(api)

    async def pump() -> None:
        event, data = "", ""
        async for raw in resp.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "":
                if event == "hello":
                    out.hello.set()
                elif data:
                    out.frames.append(json.loads(data))
                event, data = "", ""

    task = asyncio.create_task(pump())
    try:
        await asyncio.wait_for(out.hello.wait(), 10)
        yield out
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        resp.close()
