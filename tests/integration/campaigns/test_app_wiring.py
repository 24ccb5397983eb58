"""The whole app (``create_app``): the campaign runner runs in the background, sends
through ``[smtp]`` and links to ``public_url``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from crm_core.db import Database
from tests.support.app import add_user, make_settings
from tests.support.smtp_sink import SmtpSink

from .conftest import seed_clients


async def test_the_app_sends_a_started_campaign(
    db_url: str, tmp_path: Path, aiohttp_client: Any, sink: SmtpSink
) -> None:
    from gateway.app import create_app

    admin_id, token = await add_user(db_url, "boss@example.ru", "admin")
    db = Database(db_url)
    try:
        ids, _ = await seed_clients(db, admin_id, ["w1@example.ru", "w2@example.ru"])
    finally:
        await db.dispose()
    settings = make_settings(
        db_url,
        tmp_path,
        public_url="https://crm.example.ru",
        smtp={
            "host": "127.0.0.1",
            "port": sink.port,
            "tls": "none",
            "from_address": "news@crm.example.ru",
        },
    )
    http = await aiohttp_client(create_app(settings))
    auth = {"Authorization": f"Bearer {token}"}
    resp = await http.post(
        "/api/v1/campaigns",
        json={"name": "w", "client_ids": ids, "subject": "Hi", "text": "{{ unsubscribe_url }}"},
        headers=auth,
    )
    assert resp.status == 201, await resp.text()
    cid = (await resp.json())["id"]
    resp = await http.post(f"/api/v1/campaigns/{cid}/start", headers=auth)
    assert resp.status == 200, await resp.text()
    for _ in range(200):
        resp = await http.get(f"/api/v1/campaigns/{cid}", headers=auth)
        data = await resp.json()
        if data["status"] == "done":
            break
        await asyncio.sleep(0.1)
    assert data["status"] == "done" and data["counts"]["sent"] == 2, data
    assert sink.handler.count_by_rcpt() == {"w1@example.ru": 1, "w2@example.ru": 1}
    body = sink.handler.received[0][2]
    assert b"https://crm.example.ru/u/" in body
    # the mail program's one-click unsubscribe (RFC 8058) marks the recipient
    import email
    import email.policy

    msg = email.message_from_bytes(body, policy=email.policy.default)
    url = str(msg["List-Unsubscribe"]).strip().strip("<>")
    rcpt = str(msg["To"])
    path = url.removeprefix("https://crm.example.ru")
    resp = await http.post(path, data={"List-Unsubscribe": "One-Click"})
    assert resp.status == 200, await resp.text()
    resp = await http.get(
        f"/api/v1/campaigns/{cid}/recipients", params={"status": "unsubscribed"}, headers=auth
    )
    page = await resp.json()
    assert [i["email"] for i in page["items"]] == [rcpt], page
