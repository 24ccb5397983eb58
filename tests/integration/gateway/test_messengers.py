"""Issue 5 end to end, Telegram: webhooks and polling through ``create_app`` into leads and
timelines, linking by a shared phone, replies through ``POST /api/v1/messages`` to the
fake Bot API on 127.0.0.1 (blocked bot, flood control), failed payloads kept.
VK: ``test_messengers_vk.py``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from crm_core.models import OutboxCommand, utcnow
from gateway.app import create_app
from gateway.cli import main as cli_main
from gateway.wiring import OUTBOX
from tests.support.app import add_user, make_settings
from tests.support.messengers import (
    BOT,
    BOT_SECRET,
    BOT_TOKEN,
    TimedFakeTelegram,
    app_of,
    db_of,
    drain,
    eventually,
    interactions,
    leads,
    outbox_row,
    point,
    post_tg,
    telegram_fixture,
)

USER = 1005024016  # the sender of 08_real_message_text_ru / 10_real_message_contact_share


@dataclass
class Env:
    client: TestClient
    tg: TimedFakeTelegram
    admin: dict[str, str]
    anna_id: int
    anna: dict[str, str]
    boris: dict[str, str]


@pytest.fixture
async def tg() -> AsyncIterator[TimedFakeTelegram]:
    server = TimedFakeTelegram(tokens={BOT_TOKEN})
    await server.start()
    yield server
    await server.close()


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def env(db_url: str, tmp_path: Path, aiohttp_client: Any, tg: TimedFakeTelegram) -> Env:
    _, admin = await add_user(db_url, "boss@example.ru", "admin")
    anna_id, anna = await add_user(db_url, "anna@example.ru", "manager")
    _, boris = await add_user(db_url, "boris@example.ru", "manager")
    bot = {"name": BOT, "token": BOT_TOKEN, "webhook_secret": BOT_SECRET, "base_url": tg.base_url}
    app = create_app(make_settings(db_url, tmp_path, telegram=[bot]))
    client: TestClient = await aiohttp_client(app)
    return Env(client, tg, _h(admin), anna_id, _h(anna), _h(boris))


async def _client_with_phone(env: Env, phone: str) -> int:
    r = await env.client.post(
        "/api/v1/clients",
        json={"kind": "person", "name": "Дмитрий", "phones": [phone], "owner_id": env.anna_id},
        headers=env.admin,
    )
    assert r.status == 201, await r.text()
    client_id: int = (await r.json())["id"]
    return client_id


async def _reply(env: Env, headers: dict[str, str], **body: Any) -> int:
    r = await env.client.post("/api/v1/messages", json=body, headers=headers)
    assert r.status == 202, await r.text()
    out = await r.json()
    assert out["channel"] == "telegram" and out["status"] == "pending"
    outbox_id: int = out["outbox_id"]
    return outbox_id


async def _settled(env: Env, outbox_id: int) -> OutboxCommand:
    async def done() -> OutboxCommand | None:
        row = await outbox_row(env.client, outbox_id)
        return row if row.status in ("sent", "failed") else None

    return await eventually(done)


async def test_chat_lead_redelivery_shared_contact_and_reply(env: Env) -> None:
    c = env.client
    client_id = await _client_with_phone(env, "+380931234567")
    first = telegram_fixture("08_real_message_text_ru.json")
    assert await post_tg(c, first) == {"ok": True, "duplicate": False}
    (lead,) = await leads(c)
    assert (lead.source, lead.source_ref, lead.client_id) == ("telegram", BOT, None)
    assert lead.name == "ᴅ3ꜰᴀᴜʟᴛ ᴘʀᴏɢʀᴀᴍᴍᴇʀ" and lead.status == "new"
    (msg,) = await interactions(c)
    assert (msg.lead_id, msg.body, msg.direction, msg.kind) == (
        lead.id,
        "asdasd",
        "in",
        "message_received",
    )
    assert msg.meta["chat_id"] == USER and msg.meta["bot"] == BOT
    cp = await point(c, "telegram", str(USER))
    assert cp is not None and cp.lead_id == lead.id and cp.label == "ᴅ3ꜰᴀᴜʟᴛ ᴘʀᴏɢʀᴀᴍᴍᴇʀ"

    # Telegram delivers the same update again: acknowledged, nothing changes.
    assert await post_tg(c, first) == {"ok": True, "duplicate": True}
    assert len(await leads(c)) == 1 and len(await interactions(c)) == 1

    # The user shares their own phone: the chat joins the known client, history moves.
    await post_tg(c, telegram_fixture("10_real_message_contact_share.json"))
    cp = await point(c, "telegram", str(USER))
    assert cp is not None and (cp.client_id, cp.lead_id) == (client_id, None)
    (lead,) = await leads(c)
    assert (lead.status, lead.client_id) == ("converted", client_id)
    assert "linked_to_client" in lead.tags and lead.closed_at is not None
    r = await c.get(f"/api/v1/clients/{client_id}/timeline", headers=env.anna)
    items = (await r.json())["items"]
    assert [(i["kind"], i["client_id"], i["body"]) for i in items] == [
        ("message_received", client_id, None),  # the contact card
        ("message_received", client_id, "asdasd"),  # the earlier history
    ]
    assert items[0]["meta"]["shared_contact"]["own"] is True

    # The client's owner answers from the CRM; another manager may not (404).
    r = await c.post(
        "/api/v1/messages", json={"client_id": client_id, "text": "x"}, headers=env.boris
    )
    assert r.status == 404 and (await r.json())["field"] == "client_id"
    outbox_id = await _reply(env, env.anna, client_id=client_id, text="Здравствуйте, Дмитрий!")
    row = await _settled(env, outbox_id)
    assert row.status == "sent" and row.payload["bot"] == BOT and row.payload["chat_id"] == USER
    (call,) = env.tg.calls_of("sendMessage")
    assert call.token == BOT_TOKEN
    assert call.params["chat_id"] == str(USER) and call.params["text"] == "Здравствуйте, Дмитрий!"
    r = await c.get(f"/api/v1/clients/{client_id}/timeline", headers=env.anna)
    newest = (await r.json())["items"][0]
    assert (newest["kind"], newest["direction"], newest["body"]) == (
        "message_sent",
        "out",
        "Здравствуйте, Дмитрий!",
    )
    assert newest["thread_id"] == f"telegram:{BOT}:{USER}"
    r = await c.get(f"/api/v1/messages/{outbox_id}", headers=env.anna)
    status = await r.json()
    assert status["status"] == "sent" and status["interaction_id"] == newest["id"]
    assert len(await leads(c)) == 1  # no lead was opened for the known client


async def test_edit_updates_the_interaction(env: Env) -> None:
    edited = telegram_fixture("13_rasa_edited_message.json")
    original = {"update_id": edited["update_id"] - 1, "message": dict(edited["edited_message"])}
    del original["message"]["edit_date"]
    original["message"]["text"] = "Helo!"
    await post_tg(env.client, original)
    await post_tg(env.client, edited)
    await post_tg(env.client, edited)  # redelivered edit
    (inter,) = await interactions(env.client)
    assert inter.body == "Hello!"
    assert [e["previous"] for e in inter.meta["edits"]] == ["Helo!"]
    assert len(await leads(env.client)) == 1


async def test_business_owner_message_is_outbound_and_opens_no_lead(env: Env) -> None:
    await post_tg(env.client, telegram_fixture("17_spec_business_message_outgoing_by_owner.json"))
    assert await leads(env.client) == []
    (out,) = await interactions(env.client)
    assert (out.direction, out.kind, out.body) == (
        "out",
        "message_sent",
        "Добрый день! Доставка 300 ₽.",
    )
    assert out.lead_id is None and out.client_id is None
    await post_tg(env.client, telegram_fixture("16_spec_business_message_incoming.json"))
    (lead,) = await leads(env.client)
    assert lead.name == "Ирина"
    inbound = await interactions(env.client, direction="in")
    assert [(i.lead_id, i.meta["business_connection_id"]) for i in inbound] == [
        (lead.id, "AbCdEf-bizconn-1")
    ]
    # A reply in a business chat goes through the business connection.
    outbox_id = await _reply(env, env.admin, lead_id=lead.id, text="Доставка 300 ₽")
    assert (await _settled(env, outbox_id)).status == "sent"
    (call,) = env.tg.calls_of("sendMessage")
    assert call.params["business_connection_id"] == "AbCdEf-bizconn-1"


async def test_blocked_bot_marks_the_chat_unreachable(env: Env) -> None:
    c = env.client
    await post_tg(c, telegram_fixture("08_real_message_text_ru.json"))
    (lead,) = await leads(c)
    env.tg.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
    outbox_id = await _reply(env, env.admin, lead_id=lead.id, text="Вы здесь?")
    row = await _settled(env, outbox_id)
    assert row.status == "failed" and "blocked" in (row.last_error or "")
    assert row.attempts == 1
    cp = await point(c, "telegram", str(USER))
    assert cp is not None and cp.unreachable is True
    r = await c.post("/api/v1/messages", json={"lead_id": lead.id, "text": "?"}, headers=env.admin)
    assert r.status == 422 and "cannot be reached" in (await r.json())["error"]
    assert env.tg.sent == []
    # Writing to the bot again unblocks it.
    again = telegram_fixture("08_real_message_text_ru.json", update_id=207882736)
    again["message"]["message_id"] = 4779
    await post_tg(c, again)
    cp = await point(c, "telegram", str(USER))
    assert cp is not None and cp.unreachable is False


async def test_flood_control_waits_as_told(env: Env) -> None:
    c = env.client
    await post_tg(c, telegram_fixture("08_real_message_text_ru.json"))
    (lead,) = await leads(c)
    env.tg.fail("sendMessage", 429, "Too Many Requests: retry after 30", retry_after=30)
    outbox_id = await _reply(env, env.admin, lead_id=lead.id, text="Минуту")

    async def told() -> OutboxCommand | None:
        row = await outbox_row(c, outbox_id)
        return row if row.last_error else None

    row = await eventually(told)
    assert row.status == "pending" and "flood control" in (row.last_error or "")
    assert row.next_attempt_at is not None
    left = (row.next_attempt_at - utcnow()).total_seconds()
    assert 20 < left <= 30  # Telegram's 30 s, not the outbox's own 5 s backoff

    # Time passes (moved, not waited): the retry delivers once.
    async with db_of(c).transaction() as s:
        await s.execute(
            update(OutboxCommand)
            .where(OutboxCommand.id == outbox_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    app_of(c)[OUTBOX].wake()
    row = await _settled(env, outbox_id)
    assert row.status == "sent" and row.attempts == 2
    assert [m["text"] for m in env.tg.sent] == ["Минуту"]


async def test_unparseable_payload_is_stored_failed_and_answered_200(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    docs = telegram_fixture("01_docs_message_text_start.json")  # lacks from.is_bot
    assert await post_tg(env.client, docs) == {"ok": True, "duplicate": False}
    assert await leads(env.client) == []
    r = await env.client.post(
        f"/hooks/telegram/{BOT}",
        json=docs,
        headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"},
    )
    assert r.status == 403
    monkeypatch.setenv("CRMHUB_DATABASE_URL", db_url)
    capsys.readouterr()
    assert await asyncio.to_thread(cli_main, ["inbox", "list", "--failed"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 1 and rows[0]["channel"] == "telegram"
    assert rows[0]["external_id"].startswith(f"{BOT}:failed:")
    assert "cannot be parsed" in rows[0]["last_error"] and "is_bot" in rows[0]["last_error"]


async def test_polling_bot_takes_the_same_path(
    db_url: str, tmp_path: Path, aiohttp_client: Any, tg: TimedFakeTelegram
) -> None:
    await add_user(db_url, "anna@example.ru", "manager")
    bot = {"name": "poller", "token": BOT_TOKEN, "base_url": tg.base_url, "polling": True}
    client: TestClient = await aiohttp_client(
        create_app(make_settings(db_url, tmp_path, telegram=[bot]))
    )
    tg.push_update(telegram_fixture("14_pytelegrambotapi_update.json"))

    async def lead_seen() -> list[Any] | None:
        await drain(client)
        return await leads(client) or None

    (lead,) = await eventually(lead_seen)
    assert (lead.source, lead.source_ref) == ("telegram", "poller")
    (inter,) = await interactions(client)
    assert inter.lead_id == lead.id and inter.direction == "in"
    assert tg.calls_of("deleteWebhook") and tg.calls_of("getUpdates")
    # The confirmed update is not fetched again: still one lead after more polls.
    polls = len(tg.calls_of("getUpdates"))
    await eventually(lambda: asyncio.sleep(0.05, len(tg.calls_of("getUpdates")) > polls + 1))
    assert len(await leads(client)) == 1 and len(await interactions(client)) == 1
