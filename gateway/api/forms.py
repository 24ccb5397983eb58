"""Handlers: website forms (admins): list, create, change, rotate the secret.  Each form
shows its webhook URL and a ready HTML snippet for the site."""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web
from pydantic import Field

from crm_core.models import Form
from crm_core.services import forms as svc
from gateway.api.common import actor, database, ok, path_id, read_body
from gateway.api.responses import FormOut
from gateway.api.schemas import Empty, Strict
from gateway.errors import ApiError
from gateway.keys import SETTINGS
from gateway.openapi import operation

__all__ = ["ROUTES", "form_out"]


class FormPatch(Strict):
    name: str | None = Field(None, max_length=200)
    aliases: dict[str, str] | None = Field(
        None, description="site field -> crmhub field, e.g. {'Ваш телефон': 'phone'}"
    )
    honeypot_fields: list[str] | None = Field(None, max_length=20)
    active: bool | None = None


class FormCreate(FormPatch):
    name: str = Field(min_length=1, max_length=200)


def _admin(request: web.Request) -> None:
    if not actor(request).is_admin:
        raise ApiError(403, "only admins may manage website forms")


def _base_url(request: web.Request) -> str:
    settings = request.app.get(SETTINGS)
    public = settings.public_url if settings is not None else None
    if public:
        return public.rstrip("/")
    return str(request.url.origin())


def form_out(form: Form, base: str) -> dict[str, Any]:
    out = svc.form_dict(form)
    url = f"{base}/hooks/forms/{form.key}?secret={form.secret}"
    trap = (form.honeypot_fields or ["website"])[0]
    out["webhook_url"] = url
    out["html_snippet"] = (
        f'<form method="post" action="{escape(url)}" accept-charset="utf-8">\n'
        '  <input name="name" placeholder="Имя" required>\n'
        '  <input name="phone" type="tel" placeholder="Телефон">\n'
        '  <input name="email" type="email" placeholder="E-mail">\n'
        '  <textarea name="message" placeholder="Сообщение"></textarea>\n'
        f'  <input name="{escape(trap)}" tabindex="-1" autocomplete="off" '
        'style="position:absolute;left:-9999px" aria-hidden="true">\n'
        '  <button type="submit">Отправить</button>\n'
        "</form>"
    )
    return out


@operation(summary="Website forms (admin)", tag="forms", response=FormOut, many=True)
async def get_forms(request: web.Request) -> web.Response:
    _admin(request)
    async with database(request).sessions() as s:
        items = [form_out(f, _base_url(request)) for f in await svc.list_forms(s)]
    return ok({"items": items, "total": len(items), "limit": len(items), "offset": 0})


@operation(
    summary="Register a website form (admin): its key, secret, webhook URL and HTML snippet",
    tag="forms",
    body=FormCreate,
    response=FormOut,
    status=201,
    errors=(401, 403, 422),
)
async def post_form(request: web.Request) -> web.Response:
    _admin(request)
    body = await read_body(request, FormCreate)
    async with database(request).transaction() as s:
        form = await svc.create_form(
            s,
            body.name,
            body.aliases,
            honeypot_fields=body.honeypot_fields,
            actor=actor(request),
        )
        if body.active is False:
            await svc.update_form(s, actor(request), form, {"active": False})
        out = form_out(form, _base_url(request))
    return ok(out, 201)


@operation(
    summary="Change a website form (admin): name, field aliases, honeypot fields, active",
    tag="forms",
    body=FormPatch,
    response=FormOut,
    errors=(401, 403, 404, 422),
)
async def patch_form(request: web.Request) -> web.Response:
    _admin(request)
    form_id = path_id(request)
    body = await read_body(request, FormPatch)
    async with database(request).transaction() as s:
        form = await svc.get_form(s, form_id)
        await svc.update_form(s, actor(request), form, body.model_dump(exclude_unset=True))
        out = form_out(form, _base_url(request))
    return ok(out)


@operation(
    summary="A new secret for a website form (admin); the old one is refused from now on",
    tag="forms",
    body=Empty,
    response=FormOut,
    errors=(401, 403, 404),
)
async def rotate_form_secret(request: web.Request) -> web.Response:
    _admin(request)
    form_id = path_id(request)
    await read_body(request, Empty)
    async with database(request).transaction() as s:
        form = await svc.get_form(s, form_id)
        await svc.rotate_secret(s, actor(request), form)
        out = form_out(form, _base_url(request))
    return ok(out)


ROUTES = [
    ("GET", "/forms", get_forms),
    ("POST", "/forms", post_form),
    ("PATCH", "/forms/{id}", patch_form),
    ("POST", "/forms/{id}/rotate-secret", rotate_form_secret),
]
