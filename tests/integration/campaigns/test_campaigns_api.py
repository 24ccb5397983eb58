"""Campaigns through the API and the runner, into a real aiosmtpd sink (SQLite and
PostgreSQL)."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from sqlalchemy import select

from crm_core.campaigns import CampaignRunner
from crm_core.db import Database
from crm_core.models import CampaignRecipient, Interaction, OutboxCommand, Segment
from tests.support.api import Api
from tests.support.smtp_sink import SmtpSink

from .conftest import add_contact, seed_clients

HTML = "<p>Здравствуйте, {{ client.name }}!</p><p>{{ owner.signature }}</p>"
TEXT = "Здравствуйте, {{ client.name }} из {{ client.city }}!\nОтписаться: {{ unsubscribe_url }}"


def body(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "Весна",
        "subject": "Предложение для {{ client.name }}",
        "html": HTML,
        "text": TEXT,
    }
    base.update(kw)
    return base


def parsed(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


async def test_template_errors_are_400_at_save_naming_field_and_line(api: Api) -> None:
    admin = api.as_("admin")
    ids, _ = await seed_clients(api.db, None, ["a@example.ru"])
    status, err = await admin.post(
        "/campaigns", body(client_ids=ids, html="<p>ok</p>\n<p>{{ client.name </p>")
    )
    assert status == 400, err
    assert err["field"] == "html" and "line 2" in err["error"]
    status, err = await admin.post(
        "/campaigns", body(client_ids=ids, subject="Hi {{ client.nmae }}")
    )
    assert status == 400 and err["field"] == "subject" and "nmae" in err["error"], err
    # a contact person's name where the recipient may be the client itself
    status, err = await admin.post(
        "/campaigns", body(client_ids=ids, text="Dear {{ contact.name }}")
    )
    assert status == 400 and err["field"] == "text", err
    status, ok = await admin.post(
        "/campaigns",
        body(client_ids=ids, text="Dear {{ contact.name }}", addresses="contacts"),
    )
    assert status == 201, ok
    # sandbox: no way to the Python internals
    status, err = await admin.post(
        "/campaigns", body(client_ids=ids, text="{{ client.__class__.__mro__ }}")
    )
    assert status == 400, err
    async with api.db.sessions() as s:
        assert len(list(await s.scalars(select(CampaignRecipient)))) == 0


async def test_send_to_a_segment_personalised_with_unsubscribe(
    api: Api, sink: SmtpSink, runner: CampaignRunner
) -> None:
    admin = api.as_("admin")
    a1 = api.users["a1"]
    status, u = await admin.patch(
        f"/users/{a1.id}", {"signature": "С уважением, <A1> & Co", "phone": "+7 495 000-00-01"}
    )
    assert status == 200 and u["signature"].startswith("С уважением"), u
    ids, seg = await seed_clients(
        api.db,
        a1.id,
        ["one@example.ru", "two@example.ru", None, "three@example.ru", "Two@Example.ru"],
        segment="весна",
    )
    excluded, _ = await seed_clients(api.db, a1.id, ["skip@example.ru"])
    status, c = await admin.post(
        "/campaigns",
        body(segment_ids=[seg], client_ids=excluded, exclude_client_ids=[ids[3], *excluded]),
    )
    assert status == 201, c
    assert c["status"] == "draft" and c["segment_ids"] == [seg]
    status, aud = await admin.get(f"/campaigns/{c['id']}/audience")
    assert status == 200 and aud["addresses"] == 2, aud  # two@ twice -> once; none; excluded
    status, pv = await admin.post(f"/campaigns/{c['id']}/preview", {"client_id": ids[0]})
    assert status == 200 and pv["subject"] == "Предложение для Клиент 0", pv
    assert "С уважением, &lt;A1&gt; &amp; Co" in pv["html"]  # autoescaped in HTML
    status, started = await admin.post(f"/campaigns/{c['id']}/start")
    assert status == 200 and started["status"] == "sending", started
    assert await runner.run_once() == 1
    status, done = await admin.get(f"/campaigns/{c['id']}")
    assert done["status"] == "done", done
    assert done["counts"]["sent"] == 2 and done["total"] == 2, done
    got = sink.handler.count_by_rcpt()
    assert got == {"one@example.ru": 1, "two@example.ru": 1}
    msgs = [parsed(d) for _r, _m, d in sink.handler.received]
    for m in msgs:
        assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert str(m["List-Unsubscribe"]).strip().startswith("<http")
        text = m.get_body(preferencelist=("plain",))
        assert text is not None and "из Москва" in text.get_content()
    status, page = await admin.get(f"/campaigns/{c['id']}/recipients", status="sent")
    assert status == 200 and page["total"] == 2
    item = page["items"][0]
    assert {"client_id", "email", "status", "error"} <= set(item)
    assert item["interaction_id"] is not None
    # timeline: one outbound email per recipient, threaded by its own Message-ID
    async with api.db.sessions() as s:
        rows = list(await s.scalars(select(CampaignRecipient)))
        inter = {i.outbox_id: i for i in await s.scalars(select(Interaction))}
        outbox = list(await s.scalars(select(OutboxCommand)))
    assert len(outbox) == 2 and all(o.status == "sent" for o in outbox)
    assert {o.idempotency_key for o in outbox} == {f"campaign:{c['id']}:{r.id}" for r in rows}
    sent_ids = {m[1] for m in sink.handler.received}
    for r in rows:
        i = inter[r.outbox_id]
        assert i.direction == "out" and i.client_id == r.client_id
        assert i.message_key == r.message_id and f"<{r.message_id}>" in sent_ids
        assert i.meta["campaign"] == "Весна"
    # a second run sends nothing more
    assert await runner.run_once() == 0
    assert len(sink.handler.received) == 2


async def test_contacts_by_position(api: Api, sink: SmtpSink, runner: CampaignRunner) -> None:
    admin = api.as_("admin")
    ids, _ = await seed_clients(api.db, None, ["office@example.ru", "office2@example.ru"])
    await add_contact(api.db, ids[0], "Анна", "Главный бухгалтер", "anna@example.ru")
    await add_contact(api.db, ids[0], "Олег", "Директор", "oleg@example.ru")
    await add_contact(api.db, ids[1], "Ия", "бухгалтер", "iya@example.ru")
    status, c = await admin.post(
        "/campaigns",
        body(
            client_ids=ids,
            addresses="contacts",
            positions=["Бухгалтер"],
            text="{{ contact.name }}, {{ contact.position }}",
        ),
    )
    assert status == 201, c
    status, _ = await admin.post(f"/campaigns/{c['id']}/start")
    assert status == 200
    await runner.run_once()
    assert set(sink.handler.count_by_rcpt()) == {"anna@example.ru", "iya@example.ru"}
    texts = sorted(
        parsed(d).get_body(preferencelist=("plain",)).get_content().strip()  # type: ignore[union-attr]
        for _r, _m, d in sink.handler.received
    )
    assert texts == ["Анна, Главный бухгалтер", "Ия, бухгалтер"]


async def test_bad_input_at_start(api: Api, sink: SmtpSink) -> None:
    admin = api.as_("admin")
    _ids, seg = await seed_clients(api.db, None, [None], segment="пустой")
    status, c = await admin.post("/campaigns", body(segment_ids=[seg]))
    assert status == 201
    status, err = await admin.post(f"/campaigns/{c['id']}/start")
    assert status == 422 and "empty" in err["error"], err
    # a segment that vanished after save
    ids2, seg2 = await seed_clients(api.db, None, ["x@example.ru"], segment="исчезнет")
    status, c2 = await admin.post("/campaigns", body(segment_ids=[seg2]))
    assert status == 201
    async with api.db.transaction() as s:
        await s.delete(await s.get(Segment, seg2))
    status, err = await admin.post(f"/campaigns/{c2['id']}/start")
    assert status == 422 and err["field"] == "segment_ids" and "no longer" in err["error"], err
    # an unknown segment at save
    status, err = await admin.post("/campaigns", body(segment_ids=[999999]))
    assert status == 422 and err["field"] == "segment_ids"
    # no audience at all
    status, err = await admin.post("/campaigns", body())
    assert status == 422 and err["field"] == "segment_ids"
    # SMTP that cannot be reached: refused at start, clearly, nothing changed
    status, c3 = await admin.post("/campaigns", body(client_ids=ids2))
    assert status == 201
    sink.stop()
    status, err = await admin.post(f"/campaigns/{c3['id']}/start")
    assert status == 422 and err["field"] == "smtp_account", err
    status, again = await admin.get(f"/campaigns/{c3['id']}")
    assert again["status"] == "draft"
    status, err = await admin.post(f"/campaigns/{c3['id']}/test", {})
    assert status == 422 and err["field"] == "smtp_account", err


async def test_permissions(api: Api, db: Database) -> None:
    ids, _ = await seed_clients(db, api.users["a1"].id, ["m@example.ru"])
    status, err = await api.as_("a1").post("/campaigns", body(client_ids=ids))
    assert status == 403, err
    status, c = await api.as_("sup").post("/campaigns", body(client_ids=ids))
    assert status == 201
    status, _ = await api.as_("a1").get(f"/campaigns/{c['id']}")
    assert status == 404
    status, page = await api.as_("a1").get("/campaigns")
    assert status == 200 and page["total"] == 0


async def test_invalid_address_failed_per_recipient_and_5xx_4xx(
    api: Api, sink: SmtpSink, runner: CampaignRunner
) -> None:
    admin = api.as_("admin")
    ids, _ = await seed_clients(
        api.db, None, ["good@example.ru", "no such@", "refuse@example.ru", "later@example.ru"]
    )
    sink.handler.data_reply["refuse@example.ru"] = "550 5.1.1 mailbox unavailable"
    sink.handler.data_reply["later@example.ru"] = "451 4.3.0 try again later"
    status, c = await admin.post("/campaigns", body(client_ids=ids))
    assert status == 201
    status, _ = await admin.post(f"/campaigns/{c['id']}/start")
    assert status == 200
    # the 4xx recipient is retried with backoff; let it through on a later attempt
    import asyncio

    task = asyncio.create_task(runner.run_once())
    for _ in range(200):
        await asyncio.sleep(0.05)
        async with api.db.sessions() as s:
            r = await s.scalar(
                select(CampaignRecipient).where(CampaignRecipient.email == "later@example.ru")
            )
        if r is not None and r.attempts >= 2:
            sink.handler.data_reply.pop("later@example.ru")
            break
    await asyncio.wait_for(task, 30)
    status, page = await admin.get(f"/campaigns/{c['id']}/recipients")
    by = {i["email"]: i for i in page["items"]}
    assert by["good@example.ru"]["status"] == "sent"
    assert by["later@example.ru"]["status"] == "sent" and by["later@example.ru"]["attempts"] >= 3
    assert by["refuse@example.ru"]["status"] == "failed"
    assert "550" in by["refuse@example.ru"]["error"]
    bad = [i for i in page["items"] if i["email"].startswith("no such")]
    assert bad and bad[0]["status"] == "failed" and bad[0]["error"], page
    assert sink.handler.count_by_rcpt() == {"good@example.ru": 1, "later@example.ru": 1}


async def test_pause_resume_cancel_and_draft_edits(api: Api, runner: CampaignRunner) -> None:
    admin = api.as_("admin")
    ids, _ = await seed_clients(api.db, None, ["p@example.ru"])
    status, c = await admin.post("/campaigns", body(client_ids=ids))
    status, patched = await admin.patch(f"/campaigns/{c['id']}", {"name": "Лето"})
    assert status == 200 and patched["name"] == "Лето", patched
    status, err = await admin.patch(f"/campaigns/{c['id']}", {"text": "{% if %}"})
    assert status == 400 and err["field"] == "text"
    status, _sched = await admin.patch(
        f"/campaigns/{c['id']}", {"send_at": "2099-01-01T10:00:00+03:00"}
    )
    assert status == 200
    status, st = await admin.post(f"/campaigns/{c['id']}/start")
    assert st["status"] == "scheduled"
    assert await runner.run_once() == 0  # not yet
    status, st = await admin.post(f"/campaigns/{c['id']}/pause")
    assert st["status"] == "paused"
    status, err = await admin.patch(f"/campaigns/{c['id']}", {"name": "x"})
    assert status == 409
    status, st = await admin.post(f"/campaigns/{c['id']}/resume")
    assert st["status"] == "scheduled"
    status, st = await admin.post(f"/campaigns/{c['id']}/cancel")
    assert st["status"] == "cancelled"
    status, err = await admin.post(f"/campaigns/{c['id']}/resume")
    assert status == 409


async def test_suppressed_addresses_are_skipped_and_links_are_signed(
    api: Api, sink: SmtpSink, runner: CampaignRunner
) -> None:
    from crm_core.services import consent

    admin = api.as_("admin")
    ids, _ = await seed_clients(api.db, None, ["keep@example.ru", "gone@example.ru"])
    async with api.db.transaction() as s:
        await consent.suppress(s, "Gone@Example.ru", "unsubscribed", "link")
    status, c = await admin.post("/campaigns", body(client_ids=ids))
    status, aud = await admin.get(f"/campaigns/{c['id']}/audience")
    assert aud["addresses"] == 2 and aud["suppressed"] == 1, aud
    status, _ = await admin.post(f"/campaigns/{c['id']}/start")
    assert status == 200
    await runner.run_once()
    assert sink.handler.count_by_rcpt() == {"keep@example.ru": 1}
    status, page = await admin.get(f"/campaigns/{c['id']}/recipients", status="suppressed")
    assert page["total"] == 1 and page["items"][0]["email"] == "gone@example.ru"
    msg = parsed(sink.handler.received[0][2])
    url = str(msg["List-Unsubscribe"]).strip().strip("<>")
    token = url.rsplit("/u/", 1)[1]
    async with api.db.transaction() as s:
        secret = await consent.signing_secret(s, None)
    assert consent.read_unsubscribe_token(secret, token) == ("keep@example.ru", c["id"])
    text = msg.get_body(preferencelist=("plain",))
    assert text is not None and url in text.get_content()


async def test_audience_by_list_filter_minus_contacted(
    api: Api, sink: SmtpSink, runner: CampaignRunner
) -> None:
    from datetime import timedelta

    from crm_core.models import Client, utcnow

    admin = api.as_("admin")
    ids, _ = await seed_clients(api.db, None, ["k1@example.ru", "k2@example.ru"], city="Казань")
    await seed_clients(api.db, None, ["m1@example.ru"], city="Москва")
    async with api.db.transaction() as s:
        c = await s.get(Client, ids[1])
        assert c is not None
        c.last_contact_at = utcnow() - timedelta(days=2)
    status, err = await admin.post("/campaigns", body(filter={"nonsense": "1"}))
    assert status == 422, err
    status, c = await admin.post(
        "/campaigns", body(filter={"city": "Казань"}, exclude_contacted_days=7)
    )
    assert status == 201, c
    assert c["filter"] == {"city": "Казань"}
    status, aud = await admin.get(f"/campaigns/{c['id']}/audience")
    assert aud["addresses"] == 1, aud
    status, _ = await admin.post(f"/campaigns/{c['id']}/start")
    await runner.run_once()
    assert sink.handler.count_by_rcpt() == {"k1@example.ru": 1}
    # a later campaign excluding anyone contacted in 7 days skips k1 (just mailed) too
    status, c2 = await admin.post(
        "/campaigns", body(filter={"city": "Казань"}, exclude_contacted_days=7)
    )
    status, aud = await admin.get(f"/campaigns/{c2['id']}/audience")
    assert aud["addresses"] == 0, aud


async def test_unsubscribed_after_the_list_was_written_is_not_sent(
    api: Api, sink: SmtpSink, runner: CampaignRunner
) -> None:
    from crm_core.access import Actor
    from crm_core.models import Campaign
    from crm_core.services import campaigns as svc
    from crm_core.services import consent

    admin = api.as_("admin")
    ids, _ = await seed_clients(api.db, None, ["stay@example.ru", "leave@example.ru"])
    status, c = await admin.post("/campaigns", body(client_ids=ids))
    status, _ = await admin.post(f"/campaigns/{c['id']}/start")
    assert status == 200
    async with api.db.transaction() as s:  # the runner's first step, done here
        row = await s.get(Campaign, c["id"])
        assert row is not None
        row.total = await svc.materialize(s, row, Actor.of(api.users["admin"]))
        row.materialized = True
    async with api.db.transaction() as s:
        await consent.suppress(s, "leave@example.ru", "unsubscribed", "link")
    await runner.run_once()
    assert sink.handler.count_by_rcpt() == {"stay@example.ru": 1}
    status, page = await admin.get(f"/campaigns/{c['id']}/recipients", status="suppressed")
    assert page["total"] == 1 and page["items"][0]["email"] == "leave@example.ru"


async def test_smtp_login_refused_is_a_clear_error_at_start_and_test(api: Api) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from connectors.email.campaign_smtp import CampaignSmtp
    from gateway.api.campaigns import CAMPAIGN_TRANSPORT
    from tests.support.dovecot import free_port
    from tests.support.smtp_sink import SinkHandler

    from .conftest import smtp_settings

    def refuse(*_args: object) -> AuthResult:
        return AuthResult(success=False, handled=False)

    port = free_port()
    server = Controller(
        SinkHandler(),
        hostname="127.0.0.1",
        port=port,
        authenticator=refuse,
        auth_require_tls=False,
        auth_required=True,
    )
    server.start()
    try:
        bad = CampaignSmtp({"default": smtp_settings(port, username="news", password="wrong")})
        api.http.app[CAMPAIGN_TRANSPORT] = bad
        admin = api.as_("admin")
        ids, _ = await seed_clients(api.db, None, ["x@example.ru"])
        status, c = await admin.post("/campaigns", body(client_ids=ids))
        status, err = await admin.post(f"/campaigns/{c['id']}/start")
        assert status == 422 and err["field"] == "smtp_account", err
        assert "login refused" in err["error"] and "535" in err["error"], err
        status, err = await admin.post(f"/campaigns/{c['id']}/test", {})
        assert status == 422 and err["field"] == "smtp_account", err
        status, again = await admin.get(f"/campaigns/{c['id']}")
        assert again["status"] == "draft" and again["total"] == 0
    finally:
        server.stop()


async def test_a_process_that_lost_its_lease_marks_nothing_sending(api: Api) -> None:
    import pytest

    from crm_core.access import Actor
    from crm_core.campaigns import LeaseLost, _Committer, _Op
    from crm_core.models import Campaign
    from crm_core.services import campaigns as svc

    admin = api.as_("admin")
    ids, _ = await seed_clients(api.db, None, ["l@example.ru"])
    status, c = await admin.post("/campaigns", body(client_ids=ids))
    status, _ = await admin.post(f"/campaigns/{c['id']}/start")
    assert status == 200
    async with api.db.transaction() as s:
        row = await s.get(Campaign, c["id"])
        assert row is not None
        await svc.materialize(s, row, Actor.of(api.users["admin"]))
        row.locked_by = "the-other-process"
    async with api.db.sessions() as s:
        rec = await s.scalar(select(CampaignRecipient))
        assert rec is not None
    stale = _Committer(api.db, c["id"], "me")
    stale.start()
    try:
        with pytest.raises(LeaseLost):
            await stale.submit_wait(_Op("sending", rec.id, rec.outbox_id, "m@x"))
    finally:
        await stale.stop()
    async with api.db.sessions() as s:
        again = await s.get(CampaignRecipient, rec.id)
        assert again is not None and again.status == "pending" and again.message_id is None
