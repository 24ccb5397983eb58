"""Consent on the client card (API) and the public unsubscribe endpoint, on SQLite and
PostgreSQL: permissions, validation, audit, the RU/EN page, one-click idempotency and
tampered tokens."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from crm_core.db import Database
from crm_core.models import AuditEntry, EmailConsent, EmailConsentEvent
from crm_core.services import consent as svc
from gateway.unsubscribe import setup_unsubscribe
from tests.support.api import Api, make_app, seed_team


async def _client(api: Api, owner: str = "a1") -> tuple[int, int]:
    status, client = await api.as_(owner).post(
        "/clients",
        {"kind": "company", "name": "ООО Ромашка", "emails": ["Office@Romashka.ru"]},
    )
    assert status == 201, client
    status, person = await api.as_(owner).post(
        f"/clients/{client['id']}/contacts", {"name": "Иван Петров", "emails": ["ivan@romashka.ru"]}
    )
    assert status == 201, person
    return client["id"], person["id"]


async def _count(db: Database, model: Any) -> int:
    async with db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_card_consent_and_permissions(api: Api) -> None:
    cid, _ = await _client(api)
    status, data = await api.as_("a1").get(f"/clients/{cid}/consent")
    assert status == 200
    assert [(i["email"], i["state"], i["contact_name"]) for i in data["items"]] == [
        ("office@romashka.ru", "unknown", None),
        ("ivan@romashka.ru", "unknown", "Иван Петров"),
    ]
    put = {"email": "IVAN@romashka.ru", "state": "granted", "note": "согласие по телефону"}
    status, data = await api.as_("a1").call("PUT", f"/clients/{cid}/consent", put)
    assert status == 200, data
    item = data["items"][1]
    assert item["state"] == "granted" and not item["suppressed"]
    assert item["history"][0]["user_name"] == "A1"
    assert item["history"][0]["note"] == "согласие по телефону"
    async with api.db.sessions() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "set_consent"))
    assert entry is not None and entry.entity_id == cid
    # the same again: nothing new in the history or the audit
    status, data = await api.as_("a1").call("PUT", f"/clients/{cid}/consent", put)
    assert status == 200 and len(data["items"][1]["history"]) == 1
    assert await _count(api.db, EmailConsentEvent) == 1

    # another manager (team A or B) does not see the client: 404, nothing changed
    for name in ("a2", "b1"):
        status, _ = await api.as_(name).get(f"/clients/{cid}/consent")
        assert status == 404
        wd = {"email": "ivan@romashka.ru", "state": "withdrawn"}
        status, _ = await api.as_(name).call("PUT", f"/clients/{cid}/consent", wd)
        assert status == 404
    # the supervisor of team A and the admin do
    for name in ("sup", "admin"):
        status, _ = await api.as_(name).get(f"/clients/{cid}/consent")
        assert status == 200
    status, _ = await api.anonymous().get(f"/clients/{cid}/consent")
    assert status == 401
    assert await _count(api.db, EmailConsentEvent) == 1


async def test_put_validation(api: Api) -> None:
    cid, _ = await _client(api)
    url = f"/clients/{cid}/consent"
    for body, field in (
        ({"email": "other@example.ru", "state": "granted"}, "email"),  # not this client's
        ({"email": "not an address", "state": "granted"}, "email"),
        ({"email": "ivan@romashka.ru", "state": "unsubscribed"}, "state"),
        ({"email": "ivan@romashka.ru", "state": "granted", "note": "x" * 501}, "note"),
        ({"email": "ivan@romashka.ru", "state": "granted", "extra": 1}, "extra"),
    ):
        status, data = await api.as_("a1").call("PUT", url, body)
        assert status == 422, (body, data)
        assert data["field"] == field, data
    # the address unsubscribed itself: granting again needs a note
    async with api.db.transaction() as s:
        await svc.suppress(s, "ivan@romashka.ru", "unsubscribed", "one_click")
    body = {"email": "ivan@romashka.ru", "state": "granted"}
    status, data = await api.as_("a1").call("PUT", url, body)
    assert status == 422 and data["field"] == "note"
    status, data = await api.as_("a1").call("PUT", url, {**body, "note": "попросил вернуть"})
    assert status == 200 and data["items"][1]["state"] == "granted"
    assert await _count(api.db, EmailConsentEvent) == 2


# --- the public unsubscribe endpoint ---------------------------------------------------


async def _public(db: Database, aiohttp_client: Any) -> TestClient[Any, Any]:
    await seed_team(db)
    app = make_app(db)
    setup_unsubscribe(app)
    return await aiohttp_client(app)


async def _token(db: Database, email: str, campaign: int | None = 3) -> str:
    async with db.transaction() as s:
        secret = await svc.signing_secret(s)
    return svc.make_unsubscribe_token(secret, email, campaign)


async def test_page_in_russian_and_english(db: Database, aiohttp_client: Any) -> None:
    http = await _public(db, aiohttp_client)
    token = await _token(db, "ivan.petrov@romashka.ru")
    resp = await http.get(f"/u/{token}")
    page = await resp.text()
    assert resp.status == 200
    assert "Отписать адрес i***v@romashka.ru от рассылок?" in page
    assert "ivan.petrov" not in page  # masked
    assert "<script" not in page and "http" not in page.split("</style>")[1]  # no assets
    assert "script-src" not in resp.headers["Content-Security-Policy"]
    resp = await http.get(f"/u/{token}", headers={"Accept-Language": "en-US,en;q=0.9,ru;q=0.5"})
    assert "Unsubscribe i***v@romashka.ru from our mailings?" in await resp.text()
    resp = await http.get(f"/u/{token}?lang=ru", headers={"Accept-Language": "en"})
    assert 'lang="ru"' in await resp.text()
    assert await _count(db, EmailConsent) == 0  # a GET changes nothing (link scanners)


async def test_one_click_is_idempotent(db: Database, aiohttp_client: Any) -> None:
    http = await _public(db, aiohttp_client)
    token = await _token(db, "ivan@romashka.ru", 7)
    for _ in range(2):
        resp = await http.post(
            f"/u/{token}",
            data="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert resp.status == 200
        assert "отписан" in await resp.text()
    async with db.sessions() as s:
        events = list(await s.scalars(select(EmailConsentEvent)))
        assert await svc.suppressed(s, ["ivan@romashka.ru"]) == {"ivan@romashka.ru"}
    assert [(e.email, e.state, e.source, e.campaign_id, e.user_id) for e in events] == [
        ("ivan@romashka.ru", "unsubscribed", "one_click", 7, None)
    ]
    # the page's own button, after: the same answer, still one entry
    resp = await http.post(f"/u/{token}?lang=en", data={"via": "page"})
    assert resp.status == 200 and "is unsubscribed" in await resp.text()
    resp = await http.get(f"/u/{token}")
    assert "уже отписан" in await resp.text()
    assert await _count(db, EmailConsentEvent) == 1


async def test_page_button_unsubscribes(db: Database, aiohttp_client: Any) -> None:
    http = await _public(db, aiohttp_client)
    token = await _token(db, "olga@romashka.ru", None)
    resp = await http.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click", "via": "page"})
    assert resp.status == 200
    async with db.sessions() as s:
        event = await s.scalar(select(EmailConsentEvent))
    assert event is not None and event.source == "unsubscribe_page" and event.campaign_id is None


async def test_bad_tokens_answer_400_and_change_nothing(db: Database, aiohttp_client: Any) -> None:
    http = await _public(db, aiohttp_client)
    token = await _token(db, "ivan@romashka.ru")
    other = await _token(db, "olga@romashka.ru")
    forged = ".".join(other.split(".")[:2] + token.split(".")[2:])
    cut = token[:-5]
    hostile = '1.PHNjcmlwdD4.1.x"><script>alert(1)</script>'
    for bad, words in ((forged, "Подпись"), (cut, "повреждена"), (hostile, "повреждена")):
        for method in ("GET", "POST"):
            resp = await http.request(method, f"/u/{bad}", data="List-Unsubscribe=One-Click")
            text = await resp.text()
            assert resp.status == 400, (bad, text)
            assert words in text
            assert "<script>" not in text
    resp = await http.get(f"/u/{cut}?lang=en")
    assert "damaged" in await resp.text()
    assert await _count(db, EmailConsent) == 0
    assert await _count(db, EmailConsentEvent) == 0


async def test_concurrent_one_clicks_record_once(db: Database, aiohttp_client: Any) -> None:
    import asyncio

    http = await _public(db, aiohttp_client)
    token = await _token(db, "rush@romashka.ru", 9)

    async def click() -> int:
        resp = await http.post(f"/u/{token}", data="List-Unsubscribe=One-Click")
        await resp.read()
        return resp.status

    assert await asyncio.gather(*(click() for _ in range(8))) == [200] * 8
    assert await _count(db, EmailConsentEvent) == 1


async def test_hostile_paths_never_5xx(db: Database, aiohttp_client: Any) -> None:
    http = await _public(db, aiohttp_client)
    token = await _token(db, "ivan@romashka.ru")
    for path in (
        "/u/" + "A" * 5000,
        "/u/%00",
        "/u/1.%D0%B8%D0%B2%D0%B0%D0%BD.1.x",
        "/u/" + token + "/extra",
        "/u/" + token.replace(".", "%2E"),
        "/u/..%2F..%2Fetc%2Fpasswd",
    ):
        for method in ("GET", "POST", "HEAD"):
            resp = await http.request(method, path, data=b"x" * 10_000)
            assert resp.status < 500, (method, path, resp.status)
    # only the percent-encoded form of the real token is a real token (the router
    # decodes it): one unsubscribe
    assert await _count(db, EmailConsentEvent) == 1
