"""Sign-in handlers: login/logout, forgotten passwords, invitation and reset links,
changing one's password, sessions and API tokens (docs/sign-in.md).

The login is two steps with a seam between them: :func:`password_step` checks the
email and password (rate limit, same answer for an unknown email), and
:func:`complete_sign_in` starts the session and sets the cookie.  A second factor goes
between the two: when the user has one, the login answers a challenge instead, and
the handler of the second step calls :func:`complete_sign_in` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

import structlog
from aiohttp import web
from pydantic import Field
from sqlalchemy import select

from crm_core.access import Actor
from crm_core.identity import IdentityError, normalize_email
from crm_core.models import AuthLink, User, utcnow
from crm_core.outbox import enqueue
from crm_core.services.auth import (
    FAILURE_WINDOW,
    change_password,
    check_password_policy,
    clear_failures,
    create_token,
    end_session,
    end_sessions,
    failure_keys,
    hash_password,
    issue_link,
    link_mail,
    link_user,
    list_sessions,
    list_tokens,
    password_matches,
    record_failure,
    redeem_link,
    retry_after,
    revoke_token,
    session_by_cookie,
    session_dict,
    start_session,
    token_dict,
)
from crm_core.services.common import Invalid, NotFound, audit
from crm_core.services.users import get_user, invite_user, user_dict
from gateway.api.common import actor, database, ok, path_id, read_body, read_query
from gateway.api.keys import API_STATE, CREDENTIAL, USER
from gateway.api.responses import Out, UserOut
from gateway.api.schemas import Empty, Strict
from gateway.errors import ApiError
from gateway.keys import LIVE, SETTINGS
from gateway.live import close_streams
from gateway.openapi import operation
from gateway.sessions import (
    CSRF_HEADER,
    CSRF_MESSAGE,
    SESSION_COOKIE,
    client_address,
    session_policy,
)
from gateway.settings import Settings

__all__ = [
    "ROUTES",
    "complete_sign_in",
    "link_url",
    "password_step",
    "send_link_mail",
    "set_session_cookie",
    "setup_auth",
]

log = structlog.get_logger("crmhub.auth")
BAD_CREDENTIALS = "wrong email or password"
FORGOT_ANSWER = {
    "status": "accepted",
    "message": "if this email belongs to an active user, "
    "a link to reset the password is on its way",
}
BACKGROUND: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("auth_background")


# --- bodies and answers ----------------------------------------------------------------


class LoginIn(Strict):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class ForgotIn(Strict):
    email: str = Field(max_length=320)


class SetPasswordIn(Strict):
    token: str = Field(max_length=200, description="the token query parameter of the link")
    password: str = Field(max_length=1024, description="at least 10 characters, not a common one")


class PasswordChangeIn(Strict):
    current: str = Field(max_length=1024)
    new: str = Field(max_length=1024)


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    scope: Literal["read", "full"] = Field("full", description="read: GET/HEAD only")
    expires_at: datetime | None = Field(None, description="ISO 8601 with a zone; null: never")


class InviteIn(Strict):
    email: str = Field(max_length=320)
    role: Literal["admin", "supervisor", "manager"] = "manager"
    name: str | None = Field(None, max_length=200)
    team: str | None = Field(None, max_length=100)


class LoginOut(Out):
    """Signed in (``user``, ``csrf_token``, the cookie), or the second step to take
    (``two_factor_required`` / ``two_factor_setup_required`` with a ``challenge``: no
    cookie yet; ``gateway.api.two_factor``)."""

    user: UserOut | None = None
    csrf_token: str | None = Field(None, description=f"send it as {CSRF_HEADER} on every change")
    two_factor_required: bool | None = None
    two_factor_setup_required: bool | None = None
    challenge: str | None = Field(None, description="for /auth/login/two-factor[/setup|/enable]")


class ForgotOut(Out):
    status: str
    message: str


class SetPasswordOut(Out):
    email: str
    purpose: str = Field(description="invite or reset")
    ended_sessions: int


class PasswordChangedOut(Out):
    ended_sessions: int = Field(description="the user's other sessions, now ended")


class SessionOut(Out):
    id: int
    device: str
    address: str
    created_at: str | None
    last_seen_at: str | None
    expires_at: str | None
    current: bool


class TokenOut(Out):
    id: int
    name: str
    scope: str
    origin: str = Field(description="user, admin (users add / rotate-token) or migrated")
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    expired: bool


class NewTokenOut(TokenOut):
    token: str = Field(description="the token, shown once")


class InviteOut(UserOut):
    link: str | None = Field(None, description="the link to set the password, when not emailed")
    emailed: bool


class EndedOut(Out):
    ended: int


class PageQuery(Strict):
    limit: int = Field(100, ge=1, le=200)
    offset: int = Field(0, ge=0, le=100_000)


# --- helpers ---------------------------------------------------------------------------


def _settings(request: web.Request) -> Settings | None:
    return request.app.get(SETTINGS)


def set_session_cookie(resp: web.StreamResponse, cookie: str, settings: Settings | None) -> None:
    """``crmhub_session``: HttpOnly, SameSite=Lax, Path=/, Secure when the public URL is
    https; it lasts as long as the session may (``session_max_days``)."""
    secure = bool(settings and (settings.public_url or "").startswith("https://"))
    max_age = int(session_policy(settings).lifetime.total_seconds())
    resp.set_cookie(
        SESSION_COOKIE,
        cookie,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=secure,
        max_age=max_age,
    )


def _clear_cookie(resp: web.StreamResponse) -> None:
    resp.del_cookie(SESSION_COOKIE, path="/")


def _close(request: web.Request, user_id: int, credentials: list[str] | None) -> None:
    """This process's streams close now; other processes' at their next recheck."""
    live = request.app.get(LIVE)
    if live is not None:
        close_streams(live, user_id, credentials)


def link_url(settings: Settings | None, token: str, origin: str | None = None) -> str:
    """``{public_url}/ui/set-password?token=...`` (the request's origin when unset)."""
    base = (settings.public_url if settings and settings.public_url else None) or origin
    if base is None:
        host = settings.host if settings else "127.0.0.1"
        port = settings.port if settings else 8080
        base = f"http://{host}:{port}"
    return f"{base.rstrip('/')}/ui/set-password?token={token}"


async def send_link_mail(
    s: Any, settings: Settings | None, user: User, link: AuthLink, url: str
) -> bool:
    """Put the link's email in the outbox when ``[smtp]`` is configured; whether it did.
    The command is ``private``: it never appears on a timeline."""
    if settings is None or settings.smtp is None:
        return False
    subject, text = link_mail(link.purpose, url, user.name)
    await enqueue(
        s,
        channel="email",
        kind="send_email",
        payload={
            "from": settings.smtp.from_address,
            "to": [user.email],
            "subject": subject,
            "text": text,
            "private": True,
        },
        # the hash, not the id: SQLite may give a deleted link's id to the next one
        idempotency_key=f"auth-link:{link.token_hash}",
        created_by=link.created_by,
    )
    return True


def _wake_outbox(app: web.Application) -> None:
    from gateway.wiring import OUTBOX  # the wiring imports the API: import late

    worker = app.get(OUTBOX)
    if worker is not None:
        worker.wake()


def _normalized(email: str) -> str | None:
    try:
        return normalize_email(email)
    except IdentityError:
        # an address today's check refuses but a user may hold (the demo's *.local
        # users, rows older than the check): looked up as typed, lower-cased
        text = email.strip().lower()
        return text if "@" in text and len(text) <= 320 else None


# --- sign-in ---------------------------------------------------------------------------


async def password_step(request: web.Request, email: str, password: str) -> User:
    """Step one of a sign-in: the user whose email and password these are.

    429 with Retry-After after 5 failures within a minute for this email (whether or
    not a user has it) or this client address; 401 with one message for an unknown
    email, a wrong password or a user without a password (a dummy hash is verified
    then, so the time taken says nothing either); 403 for a deactivated user who gave
    the right password.  Each failure is recorded and audited."""
    db = database(request)
    address = client_address(request)
    keys = failure_keys(email, address)
    email_n = _normalized(email)
    async with db.sessions() as s:
        wait = await retry_after(s, keys)
        user = None
        if email_n is not None and wait == 0:
            user = await s.scalar(select(User).where(User.email == email_n))
    if wait:
        raise ApiError(
            429,
            f"too many failed sign-ins: try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )
    matches, rehash = await asyncio.to_thread(password_matches, user, password)
    if not matches or user is None:
        async with db.transaction() as s:
            await record_failure(s, keys)
            await audit(
                s,
                None,
                "sign_in_failed",
                "user",
                user.id if user is not None else None,
                {"email": (email_n or email)[:320], "address": address},
            )
        log.info("sign_in_failed", address=address, known=user is not None)
        raise ApiError(401, BAD_CREDENTIALS)
    if rehash is not None:  # made with older parameters: stored again with ARGON2's
        async with db.transaction() as s:
            fresh = await s.get(User, user.id)
            if fresh is not None:
                fresh.password_hash = rehash
    if not user.active:
        raise ApiError(403, "this user is deactivated")
    return user


async def complete_sign_in(
    request: web.Request, user: User, *, method: str = "password"
) -> web.Response:
    """Start a session for ``user`` (who passed every step): the ``crmhub_session``
    cookie and ``{"user", "csrf_token"}``.  The account's failure count is cleared."""
    settings = _settings(request)
    async with database(request).transaction() as s:
        fresh = await s.get(User, user.id)
        if fresh is None or not fresh.active:
            raise ApiError(403, "this user is deactivated")
        await clear_failures(s, f"email:{fresh.email}")
        row, cookie = await start_session(
            s,
            fresh,
            user_agent=request.headers.get("User-Agent", ""),
            address=client_address(request),
            policy=session_policy(settings),
            method=method,
        )
        out = {"user": user_dict(fresh), "csrf_token": row.csrf_token}
    resp = ok(out)
    set_session_cookie(resp, cookie, settings)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@operation(
    summary="Sign in with email and password: sets the crmhub_session cookie and answers "
    "the user and the CSRF token (429 + Retry-After after 5 failures a minute)",
    tag="auth",
    body=LoginIn,
    response=LoginOut,
    public=True,
    errors=(401, 403, 422, 429),
)
async def post_login(request: web.Request) -> web.Response:
    body = await read_body(request, LoginIn)
    user = await password_step(request, body.email, body.password)
    # A user with two-factor (or whose role requires it) gets a challenge, no cookie; the
    # second step's handler calls complete_sign_in().
    from gateway.api.two_factor import second_step

    pending = await second_step(request, user)
    if pending is not None:
        resp = ok(pending)
        resp.headers["Cache-Control"] = "no-store"
        return resp
    return await complete_sign_in(request, user)


@operation(
    summary="Sign out: ends this browser's session (needs X-CSRF-Token) and clears the cookie",
    tag="auth",
    body=Empty,
    status=204,
    public=True,
    errors=(403,),
)
async def post_logout(request: web.Request) -> web.Response:
    await read_body(request, Empty)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        db = database(request)
        async with db.sessions() as s:
            found = await session_by_cookie(s, cookie, session_policy(_settings(request)))
        if found is not None:
            sess, user = found
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), sess.csrf_token.encode()):
                raise ApiError(403, CSRF_MESSAGE, CSRF_HEADER)
            with contextlib.suppress(NotFound):  # ended meanwhile (another tab)
                async with db.transaction() as s:
                    await end_session(s, user.id, sess.id, actor=Actor.of(user), reason="sign_out")
            _close(request, user.id, [f"s:{sess.id}"])
    resp = web.Response(status=204)
    _clear_cookie(resp)
    return resp


# --- forgotten password, links ---------------------------------------------------------


async def _forgot(app: web.Application, email_n: str, origin: str) -> None:
    settings = app.get(SETTINGS)
    if settings is None or settings.smtp is None:
        # Nobody would receive the link, and a new one would void a link an admin
        # handed over (an invitation): nothing is issued.
        log.warning(
            "reset_link_not_sent",
            reason="no [smtp] configured: an admin can run crmhub users reset-link",
        )
        return
    db = app[app[API_STATE].db_key]
    async with db.transaction() as s:
        user = await s.scalar(select(User).where(User.email == email_n))
        if user is None or not user.active:
            return
        recent = await s.scalar(
            select(AuthLink.id).where(
                AuthLink.user_id == user.id,
                AuthLink.purpose == "reset",
                AuthLink.created_at > utcnow() - FAILURE_WINDOW,
            )
        )
        if recent is not None:  # one reset mail a minute at most
            return
        link, token = await issue_link(s, user, "reset", actor=None)
        url = link_url(settings, token, origin)
        await send_link_mail(s, settings, user, link, url)
    _wake_outbox(app)


@operation(
    summary="Ask for a password reset link by email: always 202 with the same answer",
    tag="auth",
    body=ForgotIn,
    response=ForgotOut,
    status=202,
    public=True,
    errors=(422,),
)
async def post_forgot(request: web.Request) -> web.Response:
    body = await read_body(request, ForgotIn)
    email_n = _normalized(body.email)
    if email_n is not None:
        # In the background: the answer comes as fast whether the user exists or not.
        task = asyncio.create_task(_forgot(request.app, email_n, str(request.url.origin())))
        tasks = request.app[BACKGROUND]
        tasks.add(task)
        task.add_done_callback(_done(tasks))
    return ok(FORGOT_ANSWER, 202)


def _done(tasks: set[asyncio.Task[None]]) -> Any:
    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("forgot_failed", error=str(task.exception()))

    return done


@operation(
    summary="Set the password with an invitation or reset link's token (single use, 24 h); "
    "a reset ends the user's sessions",
    tag="auth",
    body=SetPasswordIn,
    response=SetPasswordOut,
    public=True,
    errors=(400, 422),
)
async def post_set_password(request: web.Request) -> web.Response:
    body = await read_body(request, SetPasswordIn)
    db = database(request)
    async with db.sessions() as s:
        link, user = await link_user(s, body.token)
    check_password_policy(body.password, email=user.email)
    new_hash = await asyncio.to_thread(hash_password, body.password)
    async with db.transaction() as s:
        link, user = await link_user(s, body.token)
        ended = await redeem_link(s, link, user, new_hash)
        out = {"email": user.email, "purpose": link.purpose, "ended_sessions": len(ended)}
    _close(request, user.id, [f"s:{i}" for i in ended])
    return ok(out)


@operation(
    summary="Change your password (a signed-in session): your other sessions end",
    tag="auth",
    body=PasswordChangeIn,
    response=PasswordChangedOut,
    errors=(401, 403, 422, 429),
)
async def post_password(request: web.Request) -> web.Response:
    cred = request[CREDENTIAL]
    if cred.kind != "session":
        raise ApiError(403, "changing the password needs a signed-in session, not an API token")
    body = await read_body(request, PasswordChangeIn)
    db = database(request)
    me = request[USER]
    keys = failure_keys(me.email, client_address(request))
    async with db.sessions() as s:
        wait = await retry_after(s, keys)
        user = await s.get(User, me.id)
    if wait:
        raise ApiError(
            429,
            f"too many failed sign-ins: try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )
    matches, _ = await asyncio.to_thread(password_matches, user, body.current)
    if not matches:
        async with db.transaction() as s:
            await record_failure(s, keys)
            await audit(s, actor(request), "password_change_failed", "user", me.id, {})
        raise ApiError(422, "current: the current password is wrong", "current")
    try:
        check_password_policy(body.new, email=me.email)
    except Invalid as exc:
        raise Invalid(exc.message.replace("password:", "new:", 1), "new") from None
    new_hash = await asyncio.to_thread(hash_password, body.new)
    async with db.transaction() as s:
        user = await s.get(User, me.id)
        assert user is not None
        await change_password(s, user, new_hash, actor=actor(request), action="password_change")
        ended = await end_sessions(
            s, me.id, actor=actor(request), reason="password_change", keep=cred.id
        )
    _close(request, me.id, [f"s:{i}" for i in ended])
    return ok({"ended_sessions": len(ended)})


# --- sessions --------------------------------------------------------------------------


@operation(
    summary="Your sign-in sessions (device, address, last seen), the latest first",
    tag="auth",
    query=PageQuery,
    response=SessionOut,
    many=True,
    errors=(401, 422),
)
async def get_sessions(request: web.Request) -> web.Response:
    q = read_query(request, PageQuery)
    cred = request[CREDENTIAL]
    current = cred.id if cred.kind == "session" else None
    async with database(request).sessions() as s:
        rows, total = await list_sessions(
            s, request[USER].id, session_policy(_settings(request)), limit=q.limit, offset=q.offset
        )
    items = [session_dict(r, current) for r in rows]
    return ok({"items": items, "total": total, "limit": q.limit, "offset": q.offset})


@operation(
    summary="End one of your sessions (this one too: then the cookie is cleared)",
    tag="auth",
    status=204,
    errors=(401, 403, 404),
)
async def delete_session(request: web.Request) -> web.Response:
    sid = path_id(request)
    me = request[USER]
    async with database(request).transaction() as s:
        await end_session(s, me.id, sid, actor=actor(request), reason="ended_by_user")
    _close(request, me.id, [f"s:{sid}"])
    resp = web.Response(status=204)
    cred = request[CREDENTIAL]
    if cred.kind == "session" and cred.id == sid:
        _clear_cookie(resp)
    return resp


@operation(
    summary="End every session of a user (admin); their live streams opened from them close",
    tag="users",
    body=Empty,
    response=EndedOut,
    errors=(401, 403, 404),
)
async def post_end_sessions(request: web.Request) -> web.Response:
    _admin_only(request)
    uid = path_id(request)
    await read_body(request, Empty)
    async with database(request).transaction() as s:
        user = await get_user(s, actor(request), uid)
        ended = await end_sessions(s, user.id, actor=actor(request), reason="ended_by_admin")
    _close(request, uid, [f"s:{i}" for i in ended])
    return ok({"ended": len(ended)})


# --- API tokens ------------------------------------------------------------------------


@operation(
    summary="Your API tokens (not revoked; expired ones marked), newest first",
    tag="auth",
    query=PageQuery,
    response=TokenOut,
    many=True,
    errors=(401, 422),
)
async def get_tokens(request: web.Request) -> web.Response:
    q = read_query(request, PageQuery)
    async with database(request).sessions() as s:
        rows, total = await list_tokens(s, request[USER].id, limit=q.limit, offset=q.offset)
    items = [token_dict(r) for r in rows]
    return ok({"items": items, "total": total, "limit": q.limit, "offset": q.offset})


@operation(
    summary="Make an API token for an integration (a signed-in session): shown once",
    tag="auth",
    body=TokenIn,
    response=NewTokenOut,
    status=201,
    errors=(401, 403, 422),
)
async def post_token(request: web.Request) -> web.Response:
    if request[CREDENTIAL].kind != "session":
        raise ApiError(403, "making an API token needs a signed-in session, not an API token")
    body = await read_body(request, TokenIn)
    async with database(request).transaction() as s:
        user = await s.get(User, request[USER].id)
        assert user is not None
        row, token = await create_token(
            s, user, body.name, body.scope, body.expires_at, actor=actor(request)
        )
        out = {**token_dict(row), "token": token}
    resp = ok(out, 201)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@operation(
    summary="Revoke one of your API tokens: refused at once, its live streams close",
    tag="auth",
    status=204,
    errors=(401, 403, 404),
)
async def delete_token(request: web.Request) -> web.Response:
    tid = path_id(request)
    me = request[USER]
    async with database(request).transaction() as s:
        await revoke_token(s, me.id, tid, actor=actor(request))
    _close(request, me.id, [f"t:{tid}"])
    return web.Response(status=204)


# --- invitations -----------------------------------------------------------------------


def _admin_only(request: web.Request) -> None:
    if not actor(request).is_admin:
        raise ApiError(403, "only admins may do this")


@operation(
    summary="Invite a user (admin): created without a password; a single-use link (24 h) "
    "to set it is emailed when [smtp] is configured, else answered as link",
    tag="users",
    body=InviteIn,
    response=InviteOut,
    status=201,
    errors=(401, 403, 409, 422),
)
async def post_invite(request: web.Request) -> web.Response:
    _admin_only(request)
    body = await read_body(request, InviteIn)
    settings = _settings(request)
    async with database(request).transaction() as s:
        user = await invite_user(
            s, body.email, body.role, name=body.name, team=body.team, actor=actor(request)
        )
        link, token = await issue_link(s, user, "invite", actor=actor(request))
        url = link_url(settings, token, str(request.url.origin()))
        emailed = await send_link_mail(s, settings, user, link, url)
        out = {**user_dict(user), "emailed": emailed, "link": None if emailed else url}
    if emailed:
        _wake_outbox(request.app)
    return ok(out, 201)


async def _background(app: web.Application) -> AsyncIterator[None]:
    app[BACKGROUND] = set()
    yield
    pending = app[BACKGROUND]
    tasks = list(pending)
    if tasks:
        await asyncio.wait(tasks, timeout=10)


def setup_auth(app: web.Application) -> None:
    """The forgotten-password work runs in the background: finished before shutdown."""
    app[BACKGROUND] = set()
    app.cleanup_ctx.append(_background)


ROUTES = [
    ("POST", "/auth/login", post_login),
    ("POST", "/auth/logout", post_logout),
    ("POST", "/auth/forgot", post_forgot),
    ("POST", "/auth/set-password", post_set_password),
    ("POST", "/auth/password", post_password),
    ("GET", "/auth/sessions", get_sessions),
    ("DELETE", "/auth/sessions/{id}", delete_session),
    ("GET", "/auth/tokens", get_tokens),
    ("POST", "/auth/tokens", post_token),
    ("DELETE", "/auth/tokens/{id}", delete_token),
    ("POST", "/users/invite", post_invite),
    ("POST", "/users/{id}/end-sessions", post_end_sessions),
]
