"""The form webhook handler, driven through aiohttp's test client with a fake ingest."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from connectors.webforms import (
    FormSpec,
    InMemoryFormRegistry,
    RateLimiter,
    WebformLimits,
    form_routes,
)
from crm_core.events import Classification
from tests.support.webforms import RecordingIngest, fixture_bytes

URLENC = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
SECRET = "s3cret-token"
NOW = datetime(2026, 3, 2, 9, 15, 20, tzinfo=UTC)

MakeClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


class Env:
    def __init__(
        self,
        client: TestClient[web.Request, web.Application],
        ingest: RecordingIngest,
        spam: list[str],
    ) -> None:
        self.client = client
        self.ingest = ingest
        self.spam = spam

    async def post(
        self, path: str = "/hooks/forms/site", *, secret: str | None = SECRET, **kw: Any
    ) -> Any:
        params = {"secret": secret} if secret is not None else {}
        return await self.client.post(path, params=params, **kw)


@pytest.fixture
def make_env(aiohttp_client: Any) -> Callable[..., Awaitable[Env]]:
    async def make(limits: WebformLimits | None = None) -> Env:
        registry = InMemoryFormRegistry(
            {
                "site": FormSpec(key="site", name="Сайт", secret=SECRET),
                "off": FormSpec(key="off", secret=SECRET, active=False),
                "open": FormSpec(key="open"),
                "open2": FormSpec(key="open2"),
            }
        )
        ingest = RecordingIngest()
        spam: list[str] = []
        app = web.Application()
        app.router.add_routes(
            form_routes(registry, ingest, limits=limits or WebformLimits(), on_spam=spam.append)
        )
        return Env(await aiohttp_client(app), ingest, spam)

    return make


@pytest.fixture
async def env(make_env: Callable[..., Awaitable[Env]]) -> Env:
    return await make_env()


async def test_new_lead_201_then_duplicate_200(env: Env) -> None:
    body = fixture_bytes("tilda_02_lead.urlencoded.txt")
    first = await env.post(data=body, headers=URLENC)
    assert first.status == 201
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    got = await first.json()
    # The form secret sits in the site's page: the public answer carries an opaque
    # receipt only, never ids of our clients or leads (or a count of events).
    assert set(got) == {"status", "duplicate", "receipt"}
    assert got["status"] == "accepted" and got["duplicate"] is False
    assert len(got["receipt"]) == 32 and "467251" not in got["receipt"]
    again = await env.post(data=body, headers=URLENC)
    assert again.status == 200
    assert await again.json() == {
        "status": "duplicate",
        "duplicate": True,
        "receipt": got["receipt"],
    }
    assert len(env.ingest.events) == 1
    event = env.ingest.events[0]
    assert event.external_id == "467251:8442970"
    assert event.source == "site"
    assert event.subject == "Сайт"
    assert event.phones == ["+79165551234"]
    assert event.meta["remote_ip"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("fixture", "ctype", "phones"),
    [
        ("cf7_to_webhook.json", "application/json", ["+79165551234"]),
        ("elementor_01_simple.urlencoded.txt", URLENC["Content-Type"], ["+79165551234"]),
        ("elementor_02_advanced.urlencoded.txt", URLENC["Content-Type"], ["+74951234567"]),
        ("generic_02_post.urlencoded.txt", URLENC["Content-Type"], ["+79165551234"]),
        ("google_forms_apps_script.json", "application/json; charset=utf-8", ["+375291234567"]),
        (
            "generic_03_multipart.txt",
            "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
            ["+79165551234", "+74951234567"],
        ),
    ],
)
async def test_each_variant_is_accepted(
    env: Env, fixture: str, ctype: str, phones: list[str]
) -> None:
    resp = await env.post(data=fixture_bytes(fixture), headers={"Content-Type": ctype})
    assert resp.status == 201, await resp.text()
    assert env.ingest.events[0].phones == phones


async def test_double_click_same_minute_is_one_event(env: Env) -> None:
    body = {"name": "Ivan", "phone": "8 916 555 12 34"}
    assert (await env.post(data=body)).status == 201
    assert (await env.post(data=body)).status == 200
    assert len(env.ingest.events) == 1


async def test_idempotency_key_header(env: Env) -> None:
    r1 = await env.post(json={"phone": "89165551234"}, headers={"Idempotency-Key": "k1"})
    r2 = await env.post(json={"phone": "89165551234", "x": "2"}, headers={"Idempotency-Key": "k1"})
    assert (r1.status, r2.status) == (201, 200)
    assert env.ingest.events[0].external_id == "site:k1"


async def test_no_usable_contact_is_stored_for_review(env: Env) -> None:
    resp = await env.post(
        data=fixture_bytes("generic_05_no_contacts.urlencoded.txt"), headers=URLENC
    )
    assert resp.status == 201
    assert (await resp.json())["status"] == "accepted"  # stored; reviewed by people
    assert env.ingest.events[0].classification is Classification.NEEDS_REVIEW


@pytest.mark.parametrize("path", ["/hooks/forms/nope", "/hooks/forms/off"])
async def test_unknown_or_inactive_form_404(env: Env, path: str) -> None:
    resp = await env.post(path, data={"phone": "89165551234"})
    assert resp.status == 404
    assert (await resp.json())["field"] == "form_key"
    assert env.ingest.calls == 0


async def test_body_too_large_by_content_length_413(
    make_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await make_env(WebformLimits(max_body_bytes=100))
    resp = await env.post(data=b"comment=" + b"x" * 200, headers=URLENC)
    assert resp.status == 413
    assert await resp.json() == {"error": "body is larger than 100 bytes", "field": "body"}
    assert env.ingest.calls == 0


async def test_body_too_large_when_chunked_413(make_env: Callable[..., Awaitable[Env]]) -> None:
    env = await make_env(WebformLimits(max_body_bytes=100))

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 50

    resp = await env.post(data=chunks(), headers=URLENC)
    assert resp.status == 413
    assert env.ingest.calls == 0


async def test_rate_limit_429_for_unauthenticated_posts(
    make_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await make_env(WebformLimits(rate_per_minute=6, burst=2))
    open_form = [
        (await env.post("/hooks/forms/open", secret=None, data={"phone": f"8916555123{i}"})).status
        for i in range(3)
    ]
    assert open_form == [201, 201, 429]
    resp = await env.post("/hooks/forms/open", secret=None, data={"phone": "89165551239"})
    assert resp.status == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 10
    assert len(env.ingest.events) == 2
    # Wrong secrets are limited too (per form and client): guessing is slowed down.
    wrong = [(await env.post(secret="guess", data={"phone": "89165551234"})).status for _ in "abc"]
    assert wrong == [403, 403, 429]
    # ...while the site's own, authenticated deliveries are never refused for rate.
    ok = [(await env.post(data={"phone": f"8916555124{i}"})).status for i in range(10)]
    assert ok == [201] * 10


async def test_authenticated_deliveries_are_never_refused_for_rate(
    make_env: Callable[..., Awaitable[Env]],
) -> None:
    """30 concurrent identical Tilda deliveries (Tilda retries from its own servers,
    all from one address behind our proxy) and 30 distinct ones: no 429, one event each."""
    env = await make_env(WebformLimits(rate_per_minute=1, burst=1))
    body = fixture_bytes("tilda_02_lead.urlencoded.txt")
    same = await asyncio.gather(*(env.post(data=body, headers=URLENC) for _ in range(30)))
    assert sorted(r.status for r in same) == [200] * 29 + [201]
    distinct = await asyncio.gather(
        *(env.post(data={"name": "Ivan", "phone": f"89165551{i:03d}"}) for i in range(30))
    )
    assert [r.status for r in distinct] == [201] * 30
    sig_body = b'{"phone": "89165550000"}'
    sig = hmac.new(SECRET.encode(), sig_body, hashlib.sha256).hexdigest()
    signed = await asyncio.gather(
        *(
            env.post(secret=None, data=sig_body, headers={**JSON, "X-Signature": f"sha256={sig}"})
            for _ in range(5)
        )
    )
    assert sorted(r.status for r in signed) == [200] * 4 + [201]
    assert len(env.ingest.events) == 32


async def test_duplicates_never_consume_the_budget(
    make_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await make_env(WebformLimits(rate_per_minute=1, burst=2))
    form = {"name": "Ivan", "phone": "89165551234"}
    first = await env.post("/hooks/forms/open", secret=None, data=form)
    assert first.status == 201
    again = await asyncio.gather(
        *(env.post("/hooks/forms/open", secret=None, data=form) for _ in range(20))
    )
    assert [r.status for r in again] == [200] * 20
    other = await env.post("/hooks/forms/open", secret=None, data={"phone": "89165550001"})
    assert other.status == 201  # the second token is still there
    third = await env.post("/hooks/forms/open", secret=None, data={"phone": "89165550002"})
    assert third.status == 429


async def test_forwarded_for_is_honoured_only_when_trusted(
    make_env: Callable[..., Awaitable[Env]],
) -> None:
    untrusted = await make_env(WebformLimits(rate_per_minute=1, burst=1))
    trusted = await make_env(WebformLimits(rate_per_minute=1, burst=1, trust_forwarded=True))
    for env, expected in ((untrusted, [201, 429]), (trusted, [201, 201])):
        got = []
        for i, ip in enumerate(("203.0.113.1", "203.0.113.2")):
            resp = await env.post(
                "/hooks/forms/open",
                secret=None,
                data={"phone": f"8916555120{i}"},
                headers={"X-Forwarded-For": f"{ip}, 10.0.0.1"},
            )
            got.append(resp.status)
        assert got == expected
    assert trusted.ingest.events[1].meta["remote_ip"] == "203.0.113.2"


async def test_the_limit_is_per_form(make_env: Callable[..., Awaitable[Env]]) -> None:
    env = await make_env(WebformLimits(rate_per_minute=1, burst=1))
    r1 = await env.post("/hooks/forms/open", secret=None, data={"phone": "89165550001"})
    r2 = await env.post("/hooks/forms/open", secret=None, data={"phone": "89165550002"})
    r3 = await env.post("/hooks/forms/open2", secret=None, data={"phone": "89165550003"})
    assert (r1.status, r2.status, r3.status) == (201, 429, 201)


def test_rate_limiter_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(60, 1, clock=lambda: now[0])
    assert limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(1.0)
    now[0] = 1.0
    assert limiter.take("a") == 0
    assert limiter.take("b") == 0  # per key


@pytest.mark.parametrize(
    ("secret", "headers", "message"),
    [
        (None, {}, "form secret missing: pass ?secret= or the X-Crmhub-Form-Secret header"),
        ("wrong", {}, "form secret is wrong"),
        (None, {"X-Crmhub-Form-Secret": "wrong"}, "form secret is wrong"),
        (None, {"X-Signature": "sha256=00ff"}, "X-Signature does not match the body"),
    ],
)
async def test_bad_secret_403(
    env: Env, secret: str | None, headers: dict[str, str], message: str
) -> None:
    resp = await env.post(secret=secret, data={"phone": "89165551234"}, headers=headers)
    assert resp.status == 403
    assert await resp.json() == {"error": message, "field": "secret"}
    assert env.ingest.calls == 0


async def test_secret_in_header_and_form_without_secret(env: Env) -> None:
    resp = await env.post(
        secret=None, data={"phone": "89165551234"}, headers={"X-Crmhub-Form-Secret": SECRET}
    )
    assert resp.status == 201
    resp = await env.post("/hooks/forms/open", secret=None, data={"phone": "89165551235"})
    assert resp.status == 201


async def test_google_apps_script_hmac_signature(env: Env) -> None:
    body = fixture_bytes("google_forms_apps_script.json")  # signed as the .gs fixture does
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    resp = await env.post(secret=None, data=body, headers={**JSON, "X-Signature": f"sha256={sig}"})
    assert resp.status == 201
    assert env.ingest.events[0].external_id == "2_ABaOnud..."


@pytest.mark.parametrize(
    ("body", "headers", "error"),
    [
        (
            b"{not json",
            JSON,
            {
                "error": "body is not valid JSON: Expecting property name "
                "enclosed in double quotes at line 1 column 2",
                "field": "body",
            },
        ),
        (b'["a"]', JSON, {"error": "JSON body must be an object, got list", "field": "body"}),
        (b"a=%FF", URLENC, None),
        (b"", URLENC, {"error": "form submission has no filled fields", "field": "body"}),
        (b"<x/>", {"Content-Type": "application/xml"}, None),
    ],
)
async def test_malformed_body_400(
    env: Env, body: bytes, headers: dict[str, str], error: dict[str, str] | None
) -> None:
    resp = await env.post(data=body, headers=headers)
    assert resp.status == 400
    got = await resp.json()
    assert got["error"] and got["field"] in ("body", "Content-Type")
    if error is not None:
        assert got == error
    assert env.ingest.calls == 0


async def test_tilda_handshake_200_ok_nothing_stored(env: Env) -> None:
    resp = await env.post(data=fixture_bytes("tilda_01_test_request.txt"), headers=URLENC)
    assert resp.status == 200
    assert await resp.text() == "ok"
    assert env.ingest.calls == 0


async def test_honeypot_200_nothing_stored_counted(env: Env) -> None:
    resp = await env.post(
        data=fixture_bytes("generic_04_spam_honeypot.urlencoded.txt"), headers=URLENC
    )
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}
    assert env.ingest.calls == 0
    assert env.spam == ["site"]


async def test_ingest_unavailable_503(env: Env) -> None:
    env.ingest.unavailable = True
    resp = await env.post(data={"phone": "89165551234"})
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "5"
    answer = await resp.json()
    assert answer["error"].startswith("cannot store the submission now")
    assert answer["error_ru"] == "не удалось сохранить заявку, повторите позже"


async def test_cors_preflight(env: Env) -> None:
    resp = await env.client.options(
        "/hooks/forms/site",
        headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST"},
    )
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert "X-Crmhub-Form-Secret" in resp.headers["Access-Control-Allow-Headers"]


async def test_error_answers_carry_cors(env: Env) -> None:
    resp = await env.post("/hooks/forms/nope", data={"a": "b"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
