"""Issue 10 item 12: a form answered 201 survives a power cut at any later instant.

The hub runs as its own process (``crmhub serve``, SQLite) under strace; ten senders post
website forms.  For every 201 the hub sent, the disk is rebuilt as a power cut at that
very instant leaves it (only fsynced writes survive: tests/support/powercut.py), SQLite
recovers it, and every submission acknowledged up to then must be in the inbox.  With
the former ``synchronous=NORMAL`` the acknowledged rows sat in an unsynced WAL and this
test lost them.  (A simulation: LazyFS itself is not installable on this machine.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp

from connectors.webforms.connector import receipt_for
from tests.support.powercut import Call, image_at, read_trace, strace_prefix

ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "gateway.cli"]
SENDERS = 10
PER_SENDER = 4
_RECEIPT = re.compile(rb'"receipt": "([0-9a-f]+)"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> dict:
    out = subprocess.run([*CLI, *args], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


async def _wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(600):
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _server_pid(strace_pid: int) -> int:
    """The hub under strace (the command may exec through shims first)."""
    found: list[int] = []
    todo = [strace_pid]
    while todo:
        pid = todo.pop()
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"gateway.cli" in cmd and b"serve" in cmd:
                found.append(pid)
    parents = {int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]) for p in found}
    leaves = [p for p in found if p not in parents]  # a shim waits for the real hub
    assert len(leaves) == 1, f"hub processes under strace: {found}"
    return leaves[0]


def _acks(calls: list[Call]) -> list[tuple[float, str]]:
    """(instant, receipt) of every 201 the hub sent, first byte of the answer."""
    first: dict[str, float] = {}  # a connection's answer may take several sends
    out: list[tuple[float, str]] = []
    for c in calls:
        if not c.path.startswith("TCP") or c.name not in ("sendto", "write", "writev", "sendmsg"):
            continue
        if c.data.startswith(b"HTTP/1.1 "):
            first[c.path] = c.start
        m = _RECEIPT.search(c.data)
        if m is not None and c.path in first:
            out.append((first[c.path], m[1].decode()))
    return out


def _inbox_after_cut(db: Path, image: dict[str, bytes], where: Path, form_key: str) -> set[str]:
    """The receipts of the submissions in the inbox as the cut left the disk."""
    where.mkdir()
    for name, content in image.items():
        if content:
            (where / Path(name).name).write_bytes(content)
    con = sqlite3.connect(where / db.name)
    try:
        rows = con.execute("SELECT external_id FROM inbox_events WHERE channel = 'webform'")
        return {receipt_for(form_key, r[0]) for r in rows}
    finally:
        con.close()


async def _send_forms(port: int, hook: str) -> list[int]:
    """Ten senders post forms at once; returns the status of every answer."""
    await _wait_up(f"http://127.0.0.1:{port}/healthz")
    statuses: list[int] = []

    async def sender(http: aiohttp.ClientSession, k: int) -> None:
        for i in range(PER_SENDER):
            data = {"name": f"Анна {k}-{i}", "phone": f"+7916{k:03d}{i:04d}"}
            async with http.post(hook, data=data) as r:
                statuses.append(r.status)
                await r.read()

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(sender(http, k) for k in range(SENDERS)))
    return statuses


def test_every_201_survives_a_power_cut_right_after_it(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    env = {
        **os.environ,
        "CRMHUB_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "CRMHUB_LOG_LEVEL": "WARNING",
        "CRMHUB_WEBFORMS__RATE_PER_MINUTE": "100000000",
        "CRMHUB_ROUTING_RULES_PATH": "",
        "CRMHUB_ATTACHMENTS_DIR": str(tmp_path / "attachments"),
        "PYTHONPATH": str(ROOT),
    }
    _cli(env, "users", "add", "m1@example.ru", "--role", "manager")
    form = _cli(env, "forms", "add", "site")
    assert not Path(f"{db}-wal").exists()  # the CLI closed cleanly: all in the main file
    with db.open("rb") as f:
        os.fsync(f.fileno())
    base = {str(db): db.read_bytes(), f"{db}-wal": b""}

    port = _free_port()
    trace = tmp_path / "trace" / "t"
    trace.parent.mkdir()
    proc = subprocess.Popen(
        [*strace_prefix(trace), *CLI, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server: int | None = None
    try:
        hook = f"http://127.0.0.1:{port}/hooks/forms/{form['key']}?secret={form['secret']}"
        statuses = asyncio.run(_send_forms(port, hook))
        server = _server_pid(proc.pid)
        os.kill(server, signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:  # the hub first: killing strace would leave it running
            with contextlib.suppress(Exception):
                os.kill(server or _server_pid(proc.pid), signal.SIGKILL)
            proc.kill()
            proc.wait(10)

    assert statuses == [201] * (SENDERS * PER_SENDER)
    calls = read_trace(trace)
    acks = _acks(calls)
    assert len(acks) == SENDERS * PER_SENDER
    lost: dict[int, list[str]] = {}
    for n, (cut, _) in enumerate(sorted(acks)):
        acked = {event_id for at, event_id in acks if at <= cut}
        image = image_at(calls, cut, base)
        present = _inbox_after_cut(db, image, tmp_path / f"cut{n}", form["key"])
        if acked - present:
            lost[n] = sorted(acked - present)
    assert lost == {}, f"acknowledged, then lost in a power cut: {lost}"
