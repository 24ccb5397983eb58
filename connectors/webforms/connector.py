"""``POST /hooks/forms/{form_key}``: the website-form webhook (aiohttp handler).

Checks, in order: unknown/inactive form -> 404; body over ``max_body_bytes`` -> 413
(Content-Length first, then a capped read); secret (``?secret=`` or
``X-Crmhub-Form-Secret``, or an ``X-Signature: sha256=<hex>`` HMAC of the body as Google
Apps Script sends it; constant-time compare) -> 403; malformed body -> 400
``{"error", "field"}``; Tilda ``test=test`` -> 200 ``ok``; honeypot -> 200
``{"status": "ok"}`` (looks accepted, nothing stored, ``on_spam``); otherwise
``ingest(event, wait=True)`` -> 201 new / 200 duplicate, answered with an opaque
``receipt`` only (the secret is public in the site's page: no client or lead ids);
``IngestUnavailable`` -> 503 + Retry-After.

Rate: a token bucket per form and client IP applies to unauthenticated posts only (a
wrong or missing secret, or a form without one) -> 429 + Retry-After.  Deliveries that
carry the form's secret or signature are never refused for rate (a busy site, or Tilda
retrying from its own servers), and a duplicate of a submission never spends a token.

CORS: every answer carries ``Access-Control-Allow-Origin: *`` and ``OPTIONS`` preflights
are answered, so a site's own JavaScript can ``fetch()`` the hook.  The form secret is
then visible in the page: it keeps random posts out and can be rotated, while the
honeypot and the rate limit are what stop bots.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from connectors.webforms.config import FormRegistry, FormSpec, WebformLimits
from connectors.webforms.normalize import is_tilda_handshake, normalize_form
from connectors.webforms.parsing import parse_body_full
from crm_core.events import Classification, NormalizeError
from crm_core.ports import Ingest, IngestUnavailable

__all__ = ["CORS_HEADERS", "RateLimiter", "form_routes", "form_webhook", "receipt_for"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CORS_HEADERS: dict[str, str] = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": (
        "Content-Type, Idempotency-Key, X-Crmhub-Form-Secret, X-Signature"
    ),
    "Access-Control-Max-Age": "86400",
}
SECRET_HEADER = "X-Crmhub-Form-Secret"
RETRY_AFTER_UNAVAILABLE = "5"


class RateLimiter:
    """Token bucket per key (client IP), in memory, bounded in size (LRU eviction)."""

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        *,
        max_keys: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def refund(self, key: str) -> None:
        """Give back a token spent by :meth:`take` (the post turned out a duplicate)."""
        hit = self._buckets.get(key)
        if hit is not None:
            self._buckets[key] = (min(self.burst, hit[0] + 1.0), hit[1])

    def take(self, key: str) -> float:
        """Spend one token; returns 0 when allowed, else the seconds until one is free."""
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


def _json(status: int, body: dict[str, Any], **headers: str) -> web.Response:
    return web.json_response(body, status=status, headers={**CORS_HEADERS, **headers})


def _error(status: int, message: str, field: str | None, **headers: str) -> web.Response:
    return _json(status, {"error": message, "field": field}, **headers)


class _Recent:
    """(form, external id) of submissions accepted lately: their duplicates are free."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[tuple[str, str], None] = OrderedDict()

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._keys

    def add(self, key: tuple[str, str]) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.size:
            self._keys.popitem(last=False)


def receipt_for(form_key: str, external_id: str) -> str:
    """The public receipt of a submission: stable for its duplicates, opaque (derived
    from what the sender sent; tells nothing about our clients, leads or volume)."""
    return hashlib.sha256(f"webform\0{form_key}\0{external_id}".encode()).hexdigest()[:32]


def _too_many(wait: float) -> web.Response:
    retry = str(max(1, math.ceil(wait)))
    return _error(429, "too many submissions, retry later", None, **{"Retry-After": retry})


def _client_ip(request: web.Request, trust_forwarded: bool) -> str:
    if trust_forwarded:
        forwarded = request.headers.get("X-Forwarded-For", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return request.remote or "unknown"


def _authorized(request: web.Request, form: FormSpec, body: bytes) -> str | None:
    """None when the request carries the form's secret; else what is wrong."""
    if not form.secret:
        return None
    expected = form.secret.encode()
    signature = request.headers.get("X-Signature", "")
    if signature.startswith("sha256="):
        digest = hmac.new(expected, body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(signature[7:].strip().lower().encode(), digest.encode()):
            return None
        return "X-Signature does not match the body"
    given = request.query.get("secret") or request.headers.get(SECRET_HEADER)
    if not given:
        return f"form secret missing: pass ?secret= or the {SECRET_HEADER} header"
    if not hmac.compare_digest(given.encode(), expected):
        return "form secret is wrong"
    return None


async def _read_capped(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is longer than ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def form_webhook(
    registry: FormRegistry,
    ingest: Ingest,
    *,
    limits: WebformLimits = WebformLimits(),
    on_spam: Callable[[str], None] | None = None,
    region: str = "RU",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Handler:
    """The handler for ``POST``/``OPTIONS /hooks/forms/{form_key}`` (see the module doc)."""
    limiter = RateLimiter(limits.rate_per_minute, limits.burst, max_keys=limits.max_tracked_ips)
    recent = _Recent(limits.max_tracked_ips)
    too_large = f"body is larger than {limits.max_body_bytes} bytes"

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return web.Response(status=204, headers=CORS_HEADERS)
        if request.method != "POST":
            return _error(405, "use POST", None, Allow="POST, OPTIONS")
        form_key = request.match_info.get("form_key", "")
        form = await registry.get(form_key)
        if form is None or not form.active:
            return _error(404, f"no active form {form_key!r}", "form_key")
        if request.content_length is not None and request.content_length > limits.max_body_bytes:
            return _error(413, too_large, "body")
        body = await _read_capped(request, limits.max_body_bytes)
        if body is None:
            return _error(413, too_large, "body")
        remote_ip = _client_ip(request, limits.trust_forwarded)
        bucket = f"{form.key} {remote_ip}"
        problem = _authorized(request, form, body)
        if problem is not None:
            wait = limiter.take(bucket)
            return _too_many(wait) if wait > 0 else _error(403, problem, "secret")
        trusted = bool(form.secret)  # the post carries the form's secret or signature
        try:
            parsed = parse_body_full(body, request.headers.get("Content-Type", ""))
            if is_tilda_handshake(parsed.fields):
                return web.Response(text="ok", headers=CORS_HEADERS)
            event = normalize_form(
                parsed.fields,
                form=form,
                content_type=parsed.kind,
                received_at=clock(),
                region=region,
                idempotency_key=request.headers.get("Idempotency-Key"),
                remote_ip=remote_ip,
                files=parsed.files,
            )
        except NormalizeError as exc:
            if not trusted and (wait := limiter.take(bucket)) > 0:
                return _too_many(wait)
            return _json(400, exc.to_json())
        seen_key = (form.key, event.external_id)
        charged = not trusted and seen_key not in recent
        if charged and (wait := limiter.take(bucket)) > 0:
            return _too_many(wait)
        if event.classification is Classification.SPAM:
            if on_spam is not None:
                on_spam(form.key)
            return _json(200, {"status": "ok"})
        recent.add(seen_key)
        try:
            receipt = await ingest(event, wait=True)
        except IngestUnavailable as exc:
            unavailable = {
                "error": f"cannot store the submission now, retry later: {exc}",
                "error_ru": "не удалось сохранить заявку, повторите позже",
                "field": None,
            }
            return _json(503, unavailable, **{"Retry-After": RETRY_AFTER_UNAVAILABLE})
        if charged and receipt.duplicate:
            limiter.refund(bucket)
        return _json(
            200 if receipt.duplicate else 201,
            {
                "status": "duplicate" if receipt.duplicate else "accepted",
                "duplicate": receipt.duplicate,
                "receipt": receipt_for(form.key, event.external_id),
            },
        )

    return handler


def form_routes(
    registry: FormRegistry,
    ingest: Ingest,
    *,
    limits: WebformLimits = WebformLimits(),
    on_spam: Callable[[str], None] | None = None,
    region: str = "RU",
    path: str = "/hooks/forms/{form_key}",
) -> list[web.RouteDef]:
    """``app.router.add_routes(form_routes(...))``: POST and the CORS preflight."""
    handler = form_webhook(registry, ingest, limits=limits, on_spam=on_spam, region=region)
    return [web.post(path, handler), web.options(path, handler)]
