"""Handlers: two-factor sign-in (TOTP).

Signed in: ``GET /auth/two-factor`` (on or off, recovery codes left), ``POST
/auth/two-factor/setup`` (a secret, its otpauth URI and QR code), ``.../enable``
``{"code"}`` (ten recovery codes, shown once), ``.../disable`` ``{"password", "code"}``.

The second step of a sign-in (public; the password step answered a ``challenge``):
``POST /auth/login/two-factor`` ``{"challenge", "code"}`` signs in with a TOTP or a
recovery code.  A user whose role must use two-factor (setting ``two_factor_roles``) and
has none is given a ``setup`` challenge instead: ``POST /auth/login/two-factor/setup``
``{"challenge"}`` and ``.../enable`` ``{"challenge", "code"}`` enrol them and sign them
in - nothing else is reachable with that challenge.  Wrong codes count toward the
sign-in flood limit of the password step.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from pydantic import Field

from crm_core.access import Actor
from crm_core.models import User
from crm_core.services import two_factor as tf
from crm_core.services.auth import failure_keys, password_matches, record_failure, retry_after
from crm_core.services.common import Invalid, audit
from crm_core.services.users import get_user
from gateway.api.common import actor, database, ok, path_id, read_body
from gateway.api.keys import CREDENTIAL, USER
from gateway.api.responses import Out, UserOut
from gateway.api.schemas import Empty, Strict
from gateway.auth import client_address
from gateway.errors import ApiError
from gateway.keys import SETTINGS
from gateway.openapi import operation

__all__ = ["ROUTES", "second_step"]

EXPIRED = "the sign-in step expired or was already used: sign in again"


class TwoFactorStatusOut(Out):
    enabled: bool
    enabled_at: str | None
    recovery_codes_left: int
    required: bool = Field(description="the user's role must sign in with two-factor")


class SetupOut(Out):
    secret: str = Field(description="base32, for typing into the app by hand")
    otpauth_uri: str
    qr_svg: str = Field(description="the otpauth URI as a QR code, inline SVG")


class RecoveryOut(Out):
    recovery_codes: list[str] = Field(description="ten single-use codes, shown once")


class SignedInOut(Out):
    user: UserOut
    csrf_token: str = Field(description="send it as X-CSRF-Token on every change")
    recovery_codes: list[str] | None = Field(
        None, description="after the enrolment a role requires: ten single-use codes, shown once"
    )


class CodeIn(Strict):
    code: str = Field(min_length=1, max_length=64)


class DisableIn(Strict):
    password: str = Field(min_length=1, max_length=1024)
    code: str = Field(min_length=1, max_length=64)


class ChallengeIn(Strict):
    challenge: str = Field(min_length=1, max_length=200)


class ChallengeCodeIn(Strict):
    challenge: str = Field(min_length=1, max_length=200)
    code: str = Field(min_length=1, max_length=64)


# --- the seams to the password step (gateway.api.auth) ---------------------------------


def _flood_keys(request: web.Request, user: User) -> list[str]:
    return failure_keys(user.email, client_address(request))


async def check_flood(request: web.Request, user: User) -> None:
    """429 + Retry-After while the account or the address is over the sign-in failure
    limit (the password step's limit: wrong codes count toward it)."""
    async with database(request).sessions() as s:
        wait = await retry_after(s, _flood_keys(request, user))
    if wait:
        raise ApiError(
            429,
            f"too many failed sign-ins: try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )


async def count_failure(request: web.Request, user: User) -> None:
    async with database(request).transaction() as s:
        await record_failure(s, _flood_keys(request, user))


async def check_password(request: web.Request, user: User, password: str) -> None:
    """422 naming ``password`` when it is not the user's (counted as a failure)."""
    await check_flood(request, user)
    async with database(request).sessions() as s:
        fresh = await s.get(User, user.id)
    matches, _ = await asyncio.to_thread(password_matches, fresh, password)
    if not matches:
        async with database(request).transaction() as s:
            await record_failure(s, _flood_keys(request, user))
            await audit(
                s, Actor.of(user), "two_factor_failed", "user", user.id, {"during": "disable"}
            )
        raise ApiError(422, "password: the password is wrong", "password")


async def sign_in(request: web.Request, user: User, extra: dict[str, Any]) -> web.Response:
    """The session cookie and ``{"user", "csrf_token"}`` (plus ``extra``)."""
    from gateway.api.auth import complete_sign_in  # the password step imports this module

    resp = await complete_sign_in(request, user, method="two_factor")
    if extra:
        body = json.loads(resp.text or "{}")
        resp.text = json.dumps({**body, **extra}, ensure_ascii=False)
    return resp


SESSION_ONLY = "two-factor settings need a signed-in session, not an API token"


def _session_only(request: web.Request) -> None:
    cred = request.get(CREDENTIAL)
    if cred is None or cred.kind != "session":
        raise ApiError(403, SESSION_ONLY)


def required_for(request: web.Request, user: User) -> bool:
    settings = request.app.get(SETTINGS)
    return settings is not None and user.role in settings.two_factor_roles


async def second_step(request: web.Request, user: User) -> dict[str, Any] | None:
    """Called by the password step once the password is right: the answer asking for the
    second step (with a new challenge), or None when the user signs in right away."""
    async with database(request).transaction() as s:
        if await tf.is_enabled(s, user.id):
            challenge = await tf.start_challenge(s, user, "verify")
            return {"two_factor_required": True, "challenge": challenge}
        if required_for(request, user):
            challenge = await tf.start_challenge(s, user, "setup")
            return {"two_factor_setup_required": True, "challenge": challenge}
    return None


@operation(
    summary="Whether two-factor sign-in is on for me", tag="auth", response=TwoFactorStatusOut
)
async def get_two_factor(request: web.Request) -> web.Response:
    user = request[USER]
    async with database(request).sessions() as s:
        out = await tf.two_factor_status(s, user.id)
    return ok({**out, "required": required_for(request, user)})


@operation(
    summary="Start enrolling in two-factor sign-in: a new secret and its QR code (not in "
    "force until enabled with a code)",
    tag="auth",
    body=Empty,
    response=SetupOut,
    errors=(401, 403, 409),
)
async def post_setup(request: web.Request) -> web.Response:
    _session_only(request)
    await read_body(request, Empty)
    async with database(request).transaction() as s:
        out = await tf.begin_setup(s, request[USER])
    return ok(out)


@operation(
    summary="Turn two-factor sign-in on with the first code from the app; answers ten "
    "recovery codes, shown once",
    tag="auth",
    body=CodeIn,
    response=RecoveryOut,
    errors=(401, 403, 409, 422),
)
async def post_enable(request: web.Request) -> web.Response:
    _session_only(request)
    body = await read_body(request, CodeIn)
    codes = await _enable(request, request[USER], body.code)
    return ok({"recovery_codes": codes})


async def _enable(request: web.Request, user: User, code: str) -> list[str]:
    """Enable, keeping the audit of a wrong code although the request fails."""
    failure: Invalid | None = None
    async with database(request).transaction() as s:
        try:
            codes = await tf.enable(s, user, code, actor=Actor.of(user))
        except Invalid as exc:  # the failed attempt's audit entry is committed
            failure = exc
    if failure is not None:
        raise failure
    return codes


@operation(
    summary="Turn two-factor sign-in off (needs the password and a code)",
    tag="auth",
    body=DisableIn,
    response=TwoFactorStatusOut,
    errors=(401, 403, 409, 422),
)
async def post_disable(request: web.Request) -> web.Response:
    _session_only(request)
    body = await read_body(request, DisableIn)
    user = request[USER]
    if required_for(request, user):
        raise ApiError(403, "two-factor sign-in is required for your role: it cannot be turned off")
    await check_password(request, user, body.password)
    failure: Invalid | None = None
    async with database(request).transaction() as s:
        try:
            await tf.disable(s, user, body.code, actor=actor(request))
        except Invalid as exc:
            failure = exc
    if failure is not None:
        await count_failure(request, user)
        raise failure
    async with database(request).sessions() as s:
        out = await tf.two_factor_status(s, user.id)
    return ok({**out, "required": False})


async def _challenge(request: web.Request, challenge: str, purpose: str) -> tf.Challenge:
    async with database(request).sessions() as s:
        opened = await tf.open_challenge(s, challenge, purpose)
    if opened is None:
        raise ApiError(401, EXPIRED, "challenge")
    return opened


@operation(
    summary="The second step of a sign-in: a code from the app or a recovery code; sets "
    "the session cookie like the password step",
    tag="auth",
    body=ChallengeCodeIn,
    response=SignedInOut,
    public=True,
    errors=(401, 403, 422, 429),
)
async def post_login_two_factor(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, ChallengeCodeIn)
    opened = await _challenge(request, body.challenge, "verify")
    await check_flood(request, opened.user)
    async with database(request).transaction() as s:
        kind = await tf.check_code(s, opened.user.id, body.code)
        if kind is None:
            await tf.fail_challenge(s, opened)
        elif not await tf.finish_challenge(s, opened):
            kind = None
    if kind is None:
        await count_failure(request, opened.user)
        raise ApiError(422, "the code is wrong or already used", "code")
    return await sign_in(request, opened.user, {})


@operation(
    summary="Enrolment forced by the user's role, during sign-in: a new secret and its QR "
    "code for the setup challenge",
    tag="auth",
    body=ChallengeIn,
    response=SetupOut,
    public=True,
    errors=(401, 409, 422, 429),
)
async def post_login_setup(request: web.Request) -> web.Response:
    body = await read_body(request, ChallengeIn)
    opened = await _challenge(request, body.challenge, "setup")
    await check_flood(request, opened.user)
    async with database(request).transaction() as s:
        out = await tf.begin_setup(s, opened.user)
    return ok(out)


@operation(
    summary="Finish the enrolment forced by the role with the first code: answers the "
    "recovery codes (shown once) and signs in",
    tag="auth",
    body=ChallengeCodeIn,
    response=SignedInOut,
    public=True,
    errors=(401, 403, 409, 422, 429),
)
async def post_login_enable(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, ChallengeCodeIn)
    opened = await _challenge(request, body.challenge, "setup")
    await check_flood(request, opened.user)
    try:
        codes = await _enable(request, opened.user, body.code)
    except Invalid:
        await count_failure(request, opened.user)
        raise
    async with database(request).transaction() as s:
        await tf.finish_challenge(s, opened)
    return await sign_in(request, opened.user, {"recovery_codes": codes})


@operation(
    summary="Turn a user's two-factor sign-in off (admin; a lost phone and no recovery code)",
    tag="auth",
    body=Empty,
    response=TwoFactorStatusOut,
    errors=(401, 403, 404),
)
async def post_reset(request: web.Request) -> web.Response:
    who = actor(request)
    if not who.is_admin:
        raise ApiError(403, "only admins may do this")
    user_id = path_id(request)
    await read_body(request, Empty)
    async with database(request).transaction() as s:
        user = await get_user(s, who, user_id)
        await tf.reset(s, user, actor=who)
        out = await tf.two_factor_status(s, user.id)
    return ok({**out, "required": required_for(request, user)})


ROUTES = [
    ("GET", "/auth/two-factor", get_two_factor),
    ("POST", "/auth/two-factor/setup", post_setup),
    ("POST", "/auth/two-factor/enable", post_enable),
    ("POST", "/auth/two-factor/disable", post_disable),
    ("POST", "/auth/login/two-factor", post_login_two_factor),
    ("POST", "/auth/login/two-factor/setup", post_login_setup),
    ("POST", "/auth/login/two-factor/enable", post_login_enable),
    ("POST", "/users/{id}/two-factor/reset", post_reset),
]
