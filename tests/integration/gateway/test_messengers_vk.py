"""Issue 5 end to end, VK: the Callback API through ``create_app`` into leads and
timelines, lead forms, linking a chat to a client by a lead form's phone, replies through
``POST /api/v1/messages`` to the fake VK API with a stored ``random_id``."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import delete, update

from crm_core.models import Interaction, OutboxCommand, utcnow
from gateway.app import create_app
from gateway.wiring import OUTBOX
from tests.support.app import add_user, make_settings
from tests.support.fake_vk import FakeVk
from tests.support.messengers import (
    app_of,
    db_of,
    eventually,
    interactions,
    leads,
    outbox_row,
    point,
    post_vk,
    vk_fixture,
)

TOKEN = "vk-group-token"
CHAT_GROUP, CHAT_SECRET = 193668024, "vk-secret"  # 03_message_new_private_text
USER = 228970688  # its sender
GROUPS: list[dict[str, Any]] = [
    {"group_id": 123456, "confirmation_code": "c0nf1rm", "secret": "secret_123456"},
    {"group_id": CHAT_GROUP, "confirmation_code": "x", "secret": CHAT_SECRET},
    {"group_id": 456, "confirmation_code": "x", "secret": "callback-secret"},
    {"group_id": 11111111, "confirmation_code": "x", "secret": "E64XhVwb84nf@wPumC.JXFMo"},
    {"group_id": 214167102, "confirmation_code": "x", "secret": "callback-secret"},
]


@dataclass
class Env:
    client: TestClient
    vk: FakeVk
    admin: dict[str, str]
    anna_id: int
    anna: dict[str, str]


@pytest.fixture
async def vk() -> AsyncIterator[FakeVk]:
    server = FakeVk(tokens={TOKEN})
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def env(db_url: str, tmp_path: Path, aiohttp_client: Any, vk: FakeVk) -> Env:
    _, admin = await add_user(db_url, "boss@example.ru", "admin")
    anna_id, anna = await add_user(db_url, "anna@example.ru", "manager")
    groups = [{**g, "access_token": TOKEN, "api_base_url": vk.api_base_url} for g in GROUPS]
    app = create_app(make_settings(db_url, tmp_path, vk=groups))
    client: TestClient = await aiohttp_client(app)
    return Env(
        client,
        vk,
        {"Authorization": f"Bearer {admin}"},
        anna_id,
        {"Authorization": f"Bearer {anna}"},
    )


def chat_message(**changes: Any) -> dict[str, Any]:
    """03_message_new_private_text as VK sends it to a community with a secret."""
    return vk_fixture("03_message_new_private_text.json", secret=CHAT_SECRET, **changes)


def reply_echo(message_id: int, cmid: int) -> dict[str, Any]:
    """VK's ``message_reply`` (08's shape) for a message the community sent to USER."""
    body = vk_fixture("08_message_reply_fixture.json", group_id=CHAT_GROUP, secret=CHAT_SECRET)
    body["event_id"] = f"echo-{message_id}"
    body["object"] = {
        **body["object"],
        "id": message_id,
        "peer_id": USER,
        "from_id": -CHAT_GROUP,
        "conversation_message_id": cmid,
        "text": "echo",
    }
    return body


async def _settled(env: Env, outbox_id: int) -> OutboxCommand:
    async def done() -> OutboxCommand | None:
        row = await outbox_row(env.client, outbox_id)
        return row if row.status in ("sent", "failed") else None

    return await eventually(done)


async def _reply(env: Env, **body: Any) -> int:
    r = await env.client.post("/api/v1/messages", json=body, headers=env.admin)
    assert r.status == 202, await r.text()
    out = await r.json()
    assert out["channel"] == "vk"
    outbox_id: int = out["outbox_id"]
    return outbox_id


async def test_confirmation_and_secret(env: Env) -> None:
    c = env.client
    r = await c.post("/hooks/vk/123456", json=vk_fixture("01_confirmation.json"))
    assert r.status == 200 and await r.text() == "c0nf1rm"
    r = await c.post(
        "/hooks/vk/214167102", json=vk_fixture("14_spec_message_deny.json", secret="wrong")
    )
    assert r.status == 403
    r = await c.post(f"/hooks/vk/{CHAT_GROUP}", json=vk_fixture("03_message_new_private_text.json"))
    assert r.status == 403  # the group has a secret; the body carries none
    assert await leads(c) == [] and await interactions(c) == []


async def test_message_lead_reply_with_stored_random_id(env: Env) -> None:
    c = env.client
    assert await post_vk(c, chat_message(), CHAT_GROUP) == "ok"
    assert await post_vk(c, chat_message(), CHAT_GROUP) == "ok"  # redelivered
    (lead,) = await leads(c)
    assert (lead.source, lead.source_ref, lead.status) == ("vk", str(CHAT_GROUP), "new")
    (msg,) = await interactions(c)
    assert (msg.lead_id, msg.body, msg.direction) == (lead.id, "ПриВеТ", "in")
    assert msg.thread_id == f"vk:{CHAT_GROUP}:{USER}"

    env.vk.fail(6, "Too many requests per second")  # VK error 6: try again in a second
    outbox_id = await _reply(env, lead_id=lead.id, text="Здравствуйте!")
    row = await _settled(env, outbox_id)
    assert row.status == "sent" and row.attempts == 2
    random_id = row.payload["random_id"]
    assert [call.random_id for call in env.vk.calls] == [random_id, random_id]
    assert [(m["peer_id"], m["text"]) for m in env.vk.delivered] == [(USER, "Здравствуйте!")]
    message_id = env.vk.delivered[0]["id"]

    # The worker dies after VK delivered but before the result was saved: the command is
    # sent again with the same random_id, and VK delivers nothing the second time.
    async with db_of(c).transaction() as s:
        await s.execute(delete(Interaction).where(Interaction.outbox_id == outbox_id))
        await s.execute(
            update(OutboxCommand)
            .where(OutboxCommand.id == outbox_id)
            .values(status="sending", locked_until=utcnow() - timedelta(seconds=1))
        )
    app_of(c)[OUTBOX].wake()
    row = await _settled(env, outbox_id)
    assert row.status == "sent" and row.attempts == 3 and row.external_id == str(message_id)
    assert [call.random_id for call in env.vk.calls] == [random_id] * 3
    assert len(env.vk.delivered) == 1

    # VK echoes our reply as message_reply: logged once, not twice.
    assert await post_vk(c, reply_echo(message_id, cmid=128), CHAT_GROUP) == "ok"
    out = await interactions(c, direction="out")
    assert [(i.lead_id, i.body, i.outbox_id) for i in out] == [(lead.id, "Здравствуйте!", row.id)]
    assert out[0].message_key == f"{CHAT_GROUP}:{USER}:128"


async def test_reply_with_files_uploads_documents(env: Env) -> None:
    c = env.client
    assert await post_vk(c, chat_message(), CHAT_GROUP) == "ok"
    (lead,) = await leads(c)
    files = [
        {"filename": "Прайс.pdf", "content_base64": base64.b64encode(b"%PDF-1.4 price").decode()},
        {"filename": "../../etc/passwd", "content_base64": base64.b64encode(b"x").decode()},
    ]
    outbox_id = await _reply(env, lead_id=lead.id, text="Прайс во вложении", files=files)
    row = await _settled(env, outbox_id)
    assert row.status == "sent", row.last_error
    ups = sorted(env.vk.uploads.values(), key=lambda u: u["doc_id"])
    # vk-api names the uploaded part file0.ext; the name users see is the doc's title.
    assert [(u["title"], u["content"], u["peer_id"]) for u in ups] == [
        ("Прайс.pdf", b"%PDF-1.4 price", str(USER)),
        ("passwd", b"x", str(USER)),  # the path is never taken from the client
    ]
    (sent,) = env.vk.delivered
    assert sent["text"] == "Прайс во вложении"
    assert sent["attachment"] == ",".join(f"doc-1_{u['doc_id']}" for u in ups)
    (logged,) = await interactions(c, direction="out")
    assert logged.meta["files"] == ["Прайс.pdf", "passwd"]


async def test_reply_from_vk_interface_is_logged_outbound(env: Env) -> None:
    await post_vk(env.client, vk_fixture("08_message_reply_fixture.json"), 456)
    assert await leads(env.client) == []
    (out,) = await interactions(env.client)
    assert (out.direction, out.kind, out.body, out.channel) == (
        "out",
        "message_sent",
        "reply",
        "vk",
    )


async def test_lead_forms(env: Env) -> None:
    c = env.client
    await post_vk(c, vk_fixture("10_lead_forms_new_fixture.json"), 11111111)
    r = await c.get("/api/v1/leads", params={"source": "vk"}, headers=env.admin)
    (lead,) = (await r.json())["items"]
    assert (lead["name"], lead["phones"], lead["emails"]) == ("Ivan Ivanov", ["+78005553535"], [])
    assert lead["title"] == "ВКонтакте: Ivan Ivanov"
    (form,) = await interactions(c)
    assert form.kind == "lead_form_submitted" and "Доставка: До подъезда (100 ₽)" in (
        form.body or ""
    )

    with_email = vk_fixture("10_lead_forms_new_fixture.json", event_id="form-2")
    obj = with_email["object"]
    obj["user_id"] = 222222222
    obj["answers"] = [
        *obj["answers"][:2],
        {"key": "phone_number", "question": "Phone number", "answer": "8 (916) 765-43-21"},
        {"key": "email", "question": "Email", "answer": "Ivan.Ivanov@Example.RU"},
    ]
    await post_vk(c, with_email, 11111111)
    r = await c.get("/api/v1/leads", params={"email": "ivan.ivanov@example.ru"}, headers=env.admin)
    (lead2,) = (await r.json())["items"]
    assert (lead2["phones"], lead2["emails"]) == (["+79167654321"], ["ivan.ivanov@example.ru"])
    vk_point = await point(c, "vk", "222222222")
    assert vk_point is not None and vk_point.lead_id == lead2["id"]


async def test_lead_form_phone_links_the_chat_to_a_known_client(env: Env) -> None:
    c = env.client
    r = await c.post(
        "/api/v1/clients",
        json={
            "kind": "person",
            "name": "Пётр",
            "phones": ["+79161234567"],
            "owner_id": env.anna_id,
        },
        headers=env.admin,
    )
    client_id = (await r.json())["id"]
    await post_vk(c, chat_message(), CHAT_GROUP)  # an unknown chat: a lead
    (chat_lead,) = await leads(c)
    form = vk_fixture(
        "10_lead_forms_new_fixture.json",
        group_id=CHAT_GROUP,
        secret=CHAT_SECRET,
        event_id="form-linking",
    )
    form["object"]["group_id"] = CHAT_GROUP
    form["object"]["user_id"] = USER
    form["object"]["answers"][2]["answer"] = "8 916 123-45-67"
    await post_vk(c, form, CHAT_GROUP)

    cp = await point(c, "vk", str(USER))
    assert cp is not None and (cp.client_id, cp.lead_id) == (client_id, None)
    old, new = await leads(c)
    assert (old.id, old.status, old.client_id) == (chat_lead.id, "converted", client_id)
    assert (new.status, new.client_id, new.owner_id) == ("new", client_id, env.anna_id)
    r = await c.get(f"/api/v1/clients/{client_id}/timeline", headers=env.anna)
    kinds = [(i["kind"], i["client_id"]) for i in (await r.json())["items"]]
    assert kinds == [("lead_form_submitted", client_id), ("message_received", client_id)]
    # The owner answers by VK: to the user's chat, not to the form.
    outbox_id = await _reply(env, client_id=client_id, text="Заказ принят")
    assert (await _settled(env, outbox_id)).status == "sent"
    assert [m["peer_id"] for m in env.vk.delivered] == [USER]


async def test_messages_not_allowed_and_subscription(env: Env) -> None:
    c = env.client
    await post_vk(c, chat_message(), CHAT_GROUP)
    (lead,) = await leads(c)
    env.vk.fail(901, "Can't send messages for users without permission")
    row = await _settled(env, await _reply(env, lead_id=lead.id, text="Алло"))
    assert row.status == "failed" and "901" in (row.last_error or "")
    cp = await point(c, "vk", str(USER))
    assert cp is not None and cp.unreachable is True
    assert env.vk.delivered == []

    # A group chat message (message.id 0) from another user, then deny and allow.
    await post_vk(
        c, vk_fixture("02_message_new_v5131_chat_id0.json", secret="callback-secret"), 214167102
    )
    member = await point(c, "vk", "612444319")
    assert member is not None and member.lead_id is not None and member.unreachable is False
    await post_vk(c, vk_fixture("14_spec_message_deny.json"), 214167102)
    member = await point(c, "vk", "612444319")
    assert member is not None and member.unreachable is True
    await post_vk(c, vk_fixture("13_spec_message_allow.json"), 214167102)
    member = await point(c, "vk", "612444319")
    assert member is not None and member.unreachable is False
