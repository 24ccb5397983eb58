"""The public unsubscribe endpoint: ``/u/{token}``, no login.

``GET`` shows a small page (Russian or English: ``?lang=``, else ``Accept-Language``)
with the masked address and a confirm button; ``POST`` unsubscribes, both from that
button and from a mail program's one-click request (RFC 8058, body
``List-Unsubscribe=One-Click``).  Idempotent: a second POST answers the same page and
records nothing.  A cut or altered token answers 400 naming the problem and changes
nothing.  The page has no script and no external asset; every value in it is escaped.

The token's signature is checked before the database is touched, so a flood of forged
links costs one HMAC each.  The route is outside ``/api/`` and its auth and CSRF.
"""

from __future__ import annotations

import asyncio
import html
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import structlog
from aiohttp import web
from sqlalchemy import select

from crm_core.db import Database
from crm_core.models import EmailConsent
from crm_core.services import consent as svc
from crm_core.services.campaigns import mark_unsubscribed
from crm_core.services.common import ServiceError
from gateway.api.keys import DB
from gateway.keys import SETTINGS

__all__ = ["SECRET", "SecretHolder", "app_secret", "setup_unsubscribe"]

log = structlog.get_logger("crmhub.unsubscribe")

MAX_POST_BYTES = 4096  # a one-click body is 26 bytes; the page's form a few more


@dataclass
class SecretHolder:
    """The signing secret, read from the settings or the database on first use."""

    value: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


SECRET = web.AppKey("unsubscribe_secret", SecretHolder)


async def app_secret(app: web.Application) -> str:
    """The installation's signing secret (``secret_key``, else the one kept in the
    database): the same in every hub process and after a restart."""
    holder = app[SECRET]
    if holder.value is None:
        async with holder.lock:
            if holder.value is None:
                settings = app.get(SETTINGS)
                configured = settings.secret_key if settings is not None else None
                db: Database = app[DB]
                async with db.transaction() as s:
                    holder.value = await svc.signing_secret(s, configured)
    return holder.value


# --- the page ------------------------------------------------------------------------

TEXT = {
    "ru": {
        "title": "Отписка от рассылки",
        "ask": "Отписать адрес {email} от рассылок?",
        "ask_note": "Вы больше не будете получать от нас рассылки на этот адрес. "
        "Письма по вашим заказам и ответы на ваши обращения продолжат приходить.",
        "button": "Отписаться",
        "done": "Адрес {email} отписан от рассылок.",
        "done_note": "Больше рассылок на этот адрес не будет. Если это ошибка, "
        "напишите своему менеджеру.",
        "already": "Адрес {email} уже отписан от рассылок.",
        "bad": "Ссылка для отписки не работает",
        "malformed": "Ссылка повреждена: похоже, она обрезана или изменена. "
        "Откройте её из письма целиком или скопируйте полностью.",
        "signature": "Подпись ссылки не совпадает: ссылка изменена или устарела. "
        "Воспользуйтесь ссылкой из последнего письма.",
        "other": "English",
    },
    "en": {
        "title": "Unsubscribe",
        "ask": "Unsubscribe {email} from our mailings?",
        "ask_note": "You will get no more mailings from us at this address. Messages about "
        "your orders and answers to your requests will still arrive.",
        "button": "Unsubscribe",
        "done": "{email} is unsubscribed from our mailings.",
        "done_note": "No more mailings will be sent to this address. If this is a mistake, "
        "write to your manager.",
        "already": "{email} is already unsubscribed from our mailings.",
        "bad": "This unsubscribe link does not work",
        "malformed": "The link is damaged: it looks cut short or altered. Open it from the "
        "email as a whole or copy all of it.",
        "signature": "The link's signature does not match: it was altered or is out of date. "
        "Use the link in the latest email.",
        "other": "Русский",
    },
}

STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}"
    "main{max-width:32rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;"
    "box-shadow:0 1px 4px rgba(0,0,0,.12)}h1{font-size:1.3rem;margin-top:0}"
    "button{font:inherit;padding:.6rem 1.4rem;border:0;border-radius:6px;background:#2458c6;"
    "color:#fff;cursor:pointer}.note{color:#555}.bad h1{color:#a32020}"
    "nav{margin-top:1.5rem;font-size:.9rem}a{color:#2458c6}"
)

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
}


def choose_lang(request: web.Request) -> str:
    """``?lang=ru|en`` first, then the best of ru/en in ``Accept-Language``; Russian."""
    asked = request.query.get("lang", "").strip().lower()
    if asked in TEXT:
        return asked
    best, best_q = "ru", -1.0
    for item in request.headers.get("Accept-Language", "")[:500].split(","):
        tag, _, params = item.strip().partition(";")
        lang = tag.strip().lower().split("-")[0]
        if lang not in TEXT:
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if q > best_q:
            best, best_q = lang, q
    return best


def _page(
    lang: str, path: str, *, heading: str, note: str = "", form: str = "", bad: bool = False
) -> str:
    t = TEXT[lang]
    other = "en" if lang == "ru" else "ru"
    e = html.escape
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{e(t["title"])}</title>'
        f"<style>{STYLE}</style></head><body><main{' class=bad' if bad else ''}>"
        f"<h1>{e(heading)}</h1>"
        + (f'<p class="note">{e(note)}</p>' if note else "")
        + form
        + f'<nav><a href="{e(path)}?lang={other}" lang="{other}">{e(t["other"])}</a></nav>'
        "</main></body></html>"
    )


def _respond(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
    )


def _bad(lang: str, path: str, err: svc.UnsubscribeTokenError) -> web.Response:
    t = TEXT[lang]
    note = t["signature"] if err.reason == "signature" else t["malformed"]
    return _respond(_page(lang, path, heading=t["bad"], note=note, bad=True), 400)


async def _read(request: web.Request) -> tuple[str, int | None] | svc.UnsubscribeTokenError:
    try:
        return svc.read_unsubscribe_token(
            await app_secret(request.app), request.match_info["token"]
        )
    except svc.UnsubscribeTokenError as err:
        return err


async def unsubscribe_page(request: web.Request) -> web.Response:
    lang = choose_lang(request)
    path = request.path
    got = await _read(request)
    if isinstance(got, svc.UnsubscribeTokenError):
        return _bad(lang, path, got)
    email, _campaign = got
    t = TEXT[lang]
    masked = svc.mask_email(email)
    async with request.app[DB].sessions() as s:
        state = await s.scalar(select(EmailConsent.state).where(EmailConsent.email == email))
    if state == "unsubscribed":
        return _respond(_page(lang, path, heading=t["already"].format(email=masked)))
    form = (
        f'<form method="post" action="{html.escape(path)}?lang={lang}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<input type="hidden" name="via" value="page">'
        f'<button type="submit">{html.escape(t["button"])}</button></form>'
    )
    return _respond(
        _page(lang, path, heading=t["ask"].format(email=masked), note=t["ask_note"], form=form)
    )


async def unsubscribe_post(request: web.Request) -> web.Response:
    lang = choose_lang(request)
    path = request.path
    got = await _read(request)
    if isinstance(got, svc.UnsubscribeTokenError):
        return _bad(lang, path, got)
    email, campaign_id = got
    # The body only says where the request came from: the page's form, or a mail
    # program's one-click POST (``List-Unsubscribe=One-Click``, any encoding).
    body = (await request.content.read(MAX_POST_BYTES)).decode("utf-8", "replace")
    try:
        via_page = parse_qs(body, max_num_fields=10).get("via") == ["page"]
    except ValueError:  # more fields than any form of ours sends
        via_page = False
    source = "unsubscribe_page" if via_page else "one_click"
    try:
        async with request.app[DB].transaction() as s:
            result = await svc.suppress(s, email, "unsubscribed", source, campaign_id=campaign_id)
            await mark_unsubscribed(s, campaign_id, email)  # the campaign's results
    except ServiceError:  # an address signed by us that today's validator refuses
        return _bad(lang, path, svc.UnsubscribeTokenError("malformed", "bad address"))
    log.info("unsubscribed", campaign_id=campaign_id, source=source, result=result)
    t = TEXT[lang]
    return _respond(
        _page(
            lang, path, heading=t["done"].format(email=svc.mask_email(email)), note=t["done_note"]
        )
    )


def setup_unsubscribe(app: web.Application) -> None:
    """Add ``GET``/``POST /u/{token}``; ``app[DB]`` must hold the database by the first
    request."""
    app[SECRET] = SecretHolder()
    app.router.add_get("/u/{token:.+}", unsubscribe_page)
    app.router.add_post("/u/{token:.+}", unsubscribe_post)
