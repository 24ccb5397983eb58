"""Security hardening of the gateway (issue 10) through the whole app: hostile rules
documents, explain's visibility, Idempotency-Key, deeply nested JSON and body limits,
timeouts and what ``/readyz`` tells an anonymous caller."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import gateway.api.rules as rules_api
from gateway.app import create_app
from tests.support.app import add_user, bearer, make_settings, running
from tests.unit.routing_rules.test_hostile_yaml import alias_bomb

EVENT = {
    "channel": "webform",
    "kind": "form_submitted",
    "external_id": "x-1",
    "occurred_at": "2025-03-03T09:00:00Z",
    "identities": ["phone:+79165551234"],
}


# ---------------------------------------------------------------- item 1: rules YAML


async def test_alias_bomb_is_refused_with_its_position(db_url: str, tmp_path: Path) -> None:
    _, admin = await add_user(db_url, "admin@ex.ru", "admin")
    _, sup = await add_user(db_url, "sup@ex.ru", "supervisor", team="sales")
    path = tmp_path / "routing.yaml"
    app = create_app(make_settings(db_url, tmp_path, routing_rules_path=str(path)))
    async with running(app) as client:
        bomb = alias_bomb(5)
        r = await client.post(
            "/api/v1/rules/explain", json={"event": EVENT, "yaml": bomb}, headers=bearer(sup)
        )
        body = await r.json()
        assert r.status == 422, body
        assert body["field"] == "yaml"
        assert body["errors"] == [
            {
                "line": 1,
                "column": 5,
                "message": "YAML anchors are not allowed (&a0): write the value out",
            }
        ]
        r = await client.put("/api/v1/rules", data=alias_bomb(9), headers=bearer(admin))
        assert r.status == 422
        assert "anchors are not allowed" in (await r.json())["errors"][0]["message"]
        assert not path.exists()  # nothing written


async def test_healthz_answers_while_an_uploaded_document_is_checked(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parse of an uploaded document runs off the event loop: while it is held
    (a slow parse), /healthz still answers.  On the loop, the parse would wait for
    /healthz that cannot be served: the hold times out and the test fails."""
    _, sup = await add_user(db_url, "sup@ex.ru", "supervisor", team="sales")
    app = create_app(make_settings(db_url, tmp_path))
    healthz_answered = threading.Event()
    parse_started = threading.Event()
    seen: list[bool] = []
    real_parse = rules_api.parse_rules

    def slow_parse(text: str, filename: str) -> Any:
        parse_started.set()
        seen.append(healthz_answered.wait(timeout=20))
        return real_parse(text, filename)

    monkeypatch.setattr(rules_api, "parse_rules", slow_parse)
    async with running(app) as client:

        async def health_during_parse() -> int:
            await asyncio.to_thread(parse_started.wait, 20)
            r = await client.get("/healthz")
            healthz_answered.set()
            return r.status

        explain, health = await asyncio.gather(
            client.post(
                "/api/v1/rules/explain",
                json={"event": EVENT, "yaml": "rules: []\n"},
                headers=bearer(sup),
            ),
            health_during_parse(),
        )
        assert health == 200
        assert seen == [True]  # /healthz answered while the parse was still running
        assert explain.status == 200, await explain.text()


# ---------------------------------------------------------------- item 2: Idempotency-Key


@pytest.mark.parametrize(
    "key",
    ["k1,CDR(userfield)=x,__EVIL=1", "k1;x", "k 1", "ключ", "x" * 129],
)
async def test_unsafe_idempotency_key_is_400_and_queues_nothing(
    db_url: str, tmp_path: Path, key: str
) -> None:
    from sqlalchemy import func, select

    from crm_core.db import Database
    from crm_core.models import OutboxCommand

    _, anna = await add_user(db_url, "anna@ex.ru", "manager", extension="101")
    app = create_app(make_settings(db_url, tmp_path))
    async with running(app) as client:
        for path, body in (
            ("/api/v1/calls", {"number": "+79165551234"}),
            ("/api/v1/messages", {"client_id": 1, "text": "hi"}),
        ):
            r = await client.post(path, json=body, headers={**bearer(anna), "Idempotency-Key": key})
            got = await r.json()
            assert r.status == 400, got
            assert got["field"] == "Idempotency-Key"
            assert got["error"].startswith("Idempotency-Key must be 1-128 characters")
            assert got["error_ru"]
    db = Database(db_url)
    try:
        async with db.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(OutboxCommand)) == 0
    finally:
        await db.dispose()


# ---------------------------------------------------------------- item 7: JSON bodies


@pytest.mark.parametrize("depth", [100, 100_000])
@pytest.mark.parametrize(
    "path", ["/api/v1/clients", "/api/v1/rules/explain", "/api/v1/messages", "/api/v1/calls"]
)
async def test_deeply_nested_json_is_400_not_500(
    db_url: str, tmp_path: Path, path: str, depth: int
) -> None:
    _, sup = await add_user(db_url, "sup@ex.ru", "supervisor", team="sales")
    app = create_app(make_settings(db_url, tmp_path))
    body = '{"name": ' + "[" * depth + "]" * depth + "}"
    async with running(app) as client:
        r = await client.post(
            path, data=body, headers={**bearer(sup), "Content-Type": "application/json"}
        )
        got = await r.json()
        assert r.status == 400, got
        assert got["error"] == "the JSON body is nested deeper than 32 levels"
        assert got["error_ru"]


async def test_a_messenger_file_of_20_mib_fits_and_the_413_names_the_limit(
    db_url: str, tmp_path: Path
) -> None:
    import base64

    _, anna = await add_user(db_url, "anna@ex.ru", "manager")
    app = create_app(make_settings(db_url, tmp_path))
    big = base64.b64encode(b"x" * (20 * 2**20 - 1024)).decode()
    async with running(app) as client:
        # Within the file limit: the body is read and checked (here: no such client),
        # not refused as too large by the app-wide body limit.
        r = await client.post(
            "/api/v1/messages",
            json={
                "client_id": 999,
                "text": "прайс",
                "files": [{"filename": "a.pdf", "content_base64": big}],
            },
            headers=bearer(anna),
        )
        assert r.status == 404, await r.text()
        over = base64.b64encode(b"x" * (32 * 2**20)).decode()
        r = await client.post(
            "/api/v1/messages",
            json={
                "client_id": 999,
                "text": "x",
                "files": [{"filename": "a.pdf", "content_base64": over}],
            },
            headers=bearer(anna),
        )
        got = await r.json()
        assert r.status == 413, got
        assert "20 MiB" in got["error"] and got["error_ru"]
        # Any other API body: the app-wide limit is named in its 413 too.
        r = await client.post(
            "/api/v1/clients",
            data=b'{"name": "' + b"x" * (5 * 2**20) + b'"}',
            headers={**bearer(anna), "Content-Type": "application/json"},
        )
        got = await r.json()
        assert r.status == 413, got
        assert got["error"] == "the body is larger than 4 MiB" and got["error_ru"]


# ---------------------------------------------------------------- item 8: explain visibility


async def test_explain_shows_a_client_only_to_those_who_may_see_it(
    db_url: str, tmp_path: Path
) -> None:
    _, admin = await add_user(db_url, "admin@ex.ru", "admin")
    _, sales_sup = await add_user(db_url, "sales@ex.ru", "supervisor", team="sales")
    _, north_sup = await add_user(db_url, "north-sup@ex.ru", "supervisor", team="north")
    owner_id, north = await add_user(db_url, "north@ex.ru", "manager", team="north")
    app = create_app(make_settings(db_url, tmp_path))
    async with running(app) as client:
        r = await client.post(
            "/api/v1/clients",
            json={"name": "ООО Север", "phones": ["+79165551234"]},
            headers=bearer(north),
        )
        assert r.status == 201, await r.text()
        client_id = (await r.json())["id"]

        async def context(token: str) -> dict[str, Any]:
            r = await client.post("/api/v1/rules/explain", json=EVENT, headers=bearer(token))
            body = await r.json()
            assert r.status == 200, body
            ctx: dict[str, Any] = body["context"]
            return ctx

        for token in (admin, north_sup):
            ctx = await context(token)
            assert ctx["client"]["id"] == client_id and ctx["client"]["owner_id"] == owner_id
            assert ctx["is_new_client"] is False
        # Another team's supervisor learns nothing: explained as for an unknown caller.
        hidden = await context(sales_sup)
        assert hidden["client"] is None and hidden["is_new_client"] is True


# ---------------------------------------------------------------- item 10: timeouts, /readyz


@asynccontextmanager
async def real_server(tmp_path: Path, **http: Any) -> AsyncIterator[int]:
    """The app on a real socket, started the way ``crmhub serve`` starts it."""
    from gateway.server import server_options

    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}", tmp_path, http=http)
    runner = web.AppRunner(create_app(settings), **server_options(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def trickle(port: int, head: bytes, then: bytes, bound: float = 60.0) -> bytes:
    """Send ``head``, then ``then`` one byte every 0.1 s (cycling); return what the
    server sent before closing the connection.  Fails if it is still open after
    ``bound`` seconds (a generous bound, not a measure of speed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    received = asyncio.create_task(reader.read())  # until the server closes

    async def drip() -> None:
        i = 0
        while True:
            writer.write(then[i % len(then) : i % len(then) + 1])
            await writer.drain()
            i += 1
            await asyncio.sleep(0.1)

    dripping = asyncio.create_task(drip())
    try:
        async with asyncio.timeout(bound):
            await asyncio.wait({received, dripping}, return_when=asyncio.FIRST_COMPLETED)
            if not received.done():  # the drip failed: the connection was reset
                await asyncio.wait({received})
        # Closed with unread bytes in the server's buffer, the kernel sends a reset.
        return b"" if isinstance(received.exception(), ConnectionError) else received.result()
    finally:
        dripping.cancel()
        writer.close()


async def test_slowloris_headers_are_dropped(tmp_path: Path) -> None:
    async with real_server(tmp_path, header_timeout_seconds=1) as port:
        got = await trickle(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: aaaa\r\n")
        assert got == b""  # closed without an answer
        # A normal client is not affected.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 200")
        writer.close()


async def test_a_trickled_body_is_dropped(tmp_path: Path) -> None:
    from tests.support.app import add_form

    key, secret = await add_form(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}")
    async with real_server(tmp_path, body_timeout_seconds=1) as port:
        head = (
            f"POST /hooks/forms/{key}?secret={secret} HTTP/1.1\r\nHost: x\r\n".encode()
            + b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n"
        )
        got = await trickle(port, head, b"a")
        assert got == b""  # dropped: nothing was answered or stored


PANORAMISK_REASON = (
    "AMI login as 'crm' refused: <Message ActionID='action/1' Message='Authentication "
    "failed'\nResponse='Error' content=''> at 10.0.0.5:5038"
)


async def test_readyz_and_metrics_tell_anonymous_callers_no_error_text(
    db_url: str, tmp_path: Path
) -> None:
    from crm_core.ports import ConnectorState
    from gateway.keys import HEALTH

    _, admin = await add_user(db_url, "admin@ex.ru", "admin")
    _, manager = await add_user(db_url, "m@ex.ru", "manager")
    app = create_app(make_settings(db_url, tmp_path))
    app[HEALTH].register("office", "call").set(ConnectorState.AUTH_FAILED, PANORAMISK_REASON)
    async with running(app) as client:
        for headers in ({}, bearer(manager), bearer("not-a-token")):
            r = await client.get("/readyz", headers=headers)
            body = await r.json()
            assert r.status == 200 and body["status"] == "degraded"
            assert body["connectors"] == [
                {"name": "office", "channel": "call", "state": "auth_failed"}
            ]
            assert "10.0.0.5" not in await r.text()
        metrics = await (await client.get("/metrics")).text()
        assert "10.0.0.5" not in metrics and "Authentication" not in metrics
        # An admin sees the reason, as one clean line (not panoramisk's repr).
        r = await client.get("/readyz", headers=bearer(admin))
        (office,) = (await r.json())["connectors"]
        assert office["reason"] == (
            "AMI login as 'crm' refused: Error: Authentication failed at 10.0.0.5:5038"
        )
        assert office["since"]


async def test_readyz_details_for_an_allowed_network(db_url: str, tmp_path: Path) -> None:
    from crm_core.ports import ConnectorState
    from gateway.keys import HEALTH

    settings = make_settings(db_url, tmp_path, http={"status_details_from": ["127.0.0.0/8"]})
    app = create_app(settings)
    app[HEALTH].register("sales", "email").set(ConnectorState.DOWN, "login\r\nfailed   twice")
    async with running(app) as client:
        (box,) = (await (await client.get("/readyz")).json())["connectors"]
        assert box["reason"] == "login failed twice"
