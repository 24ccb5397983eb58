"""``GET /api/v1/interactions/{id}/recording``: a call's recording, to whoever sees the call.

The PBX names the file (MixMonitor's ``MIXMONITOR_FILENAME``, stored on the call as
``recording_file``).  It is served from the PBX's ``recordings_dir`` (HTTP Range by
aiohttp's ``FileResponse``); a file name that climbs out of that directory, by ``..`` or
by a symbolic link, is refused.  Without a readable file, the call's ``recording_url``
(from ``recording_url_template``) is fetched and passed through, Range included.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import mimetypes
import time
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import aiohttp
from aiohttp import hdrs, web
from pydantic import BaseModel
from sqlalchemy import select

from connectors.asterisk.config import AsteriskSettings
from crm_core.access import Actor, visible_interactions
from crm_core.models import Interaction, User
from gateway.api.common import actor, database, ok, path_id
from gateway.api.keys import USER
from gateway.errors import ApiError
from gateway.keys import SETTINGS
from gateway.openapi import operation

__all__ = ["MEDIA_PREFIX", "ROUTES", "content_type", "resolve_recording", "setup_media"]

MEDIA_PREFIX = "/media/recordings"
LINK_TTL_SECONDS = 600

_AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".wav49": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".gsm": "audio/x-gsm",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
}
_PASSED_ON = (
    hdrs.CONTENT_TYPE,
    hdrs.CONTENT_LENGTH,
    hdrs.CONTENT_RANGE,
    hdrs.ACCEPT_RANGES,
    hdrs.ETAG,
    hdrs.LAST_MODIFIED,
)
PROXY_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_read=30)


def content_type(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    return _AUDIO_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def resolve_recording(root: str, name: str) -> Path | None:
    """The file ``name`` (as the PBX gave it) inside ``root``, or ``None``.

    The PBX's own path rarely matches the local mount, so the longest trailing part of
    ``name`` that exists under ``root`` wins (``/var/spool/asterisk/monitor/2026/12/03/x.wav``
    is ``2026/12/03/x.wav`` under a mounted monitor directory).  ``..`` and links leading
    out of ``root`` are refused.
    """
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("/", "")]
    if not parts or any(p in ("..", ".") or "\x00" in p for p in parts):
        return None
    base = Path(root).resolve()
    for k in range(len(parts)):
        candidate = base.joinpath(*parts[k:])
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if real.is_relative_to(base) and real.is_file():
            return real
    return None


def _pbx(request: web.Request, name: Any) -> AsteriskSettings | None:
    for pbx in request.app[SETTINGS].asterisk:
        if pbx.name == name:
            return pbx
    return None


async def _recorded_call(s: Any, iid: int, who: Actor) -> Interaction:
    inter: Interaction | None = await s.scalar(
        select(Interaction).where(Interaction.id == iid, visible_interactions(who))
    )
    if inter is None:
        raise ApiError(404, f"interaction {iid} not found")
    if inter.channel != "call" or not (inter.recording_file or inter.recording_url):
        raise ApiError(404, f"interaction {iid} has no recording")
    return inter


async def _serve(request: web.Request, inter: Interaction) -> web.StreamResponse:
    pbx = _pbx(request, (inter.meta or {}).get("pbx"))
    if inter.recording_file and pbx is not None and pbx.recordings_dir:
        path = await asyncio.to_thread(resolve_recording, pbx.recordings_dir, inter.recording_file)
        if path is not None:
            return web.FileResponse(path, headers={hdrs.CONTENT_TYPE: content_type(path.name)})
    if inter.recording_url:
        return await _proxy(request, inter.recording_url)
    raise ApiError(404, f"the recording of interaction {inter.id} is not readable by crmhub")


@operation(
    summary="A call's recording (audio; HTTP Range supported); 404 when it has none",
    tag="calls",
)
async def get_recording(request: web.Request) -> web.StreamResponse:
    iid = path_id(request, "interaction_id")
    async with database(request).sessions() as s:
        inter = await _recorded_call(s, iid, actor(request))
    return await _serve(request, inter)


# ---------------------------------------------------------------- signed media links
def _sign(key: str, iid: int, uid: int, exp: int) -> str:
    msg = f"recording:{iid}:{uid}:{exp}".encode()
    mac = hmac.new(key.encode(), msg, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


class RecordingLinkOut(BaseModel):
    url: str  # /media/recordings/{id}?access=...
    expires_at: str


@operation(
    summary="A short-lived link to a call's recording for an <audio> element (no header needed)",
    tag="calls",
    response=RecordingLinkOut,
)
async def recording_link(request: web.Request) -> web.Response:
    iid = path_id(request, "interaction_id")
    user = request[USER]
    async with database(request).sessions() as s:
        await _recorded_call(s, iid, actor(request))
    exp = int(time.time()) + LINK_TTL_SECONDS
    access = f"{user.id}.{exp}.{_sign(user.token_hash, iid, user.id, exp)}"
    return ok(
        {
            "url": f"{MEDIA_PREFIX}/{iid}?access={access}",
            "expires_at": datetime.fromtimestamp(exp, UTC).isoformat(),
        }
    )


async def media_recording(request: web.Request) -> web.StreamResponse:
    """``GET /media/recordings/{id}?access=...``: what an ``<audio src>`` can fetch.  The
    link names its user and expiry and is signed with that user's token hash: it dies with
    the token, the user's deactivation, or after ``LINK_TTL_SECONDS``; the call's
    visibility is checked again."""
    raw = request.match_info["interaction_id"]
    uid_s, _, rest = request.query.get("access", "").partition(".")
    exp_s, _, sig = rest.partition(".")
    if not (raw.isdigit() and len(raw) <= 18 and uid_s.isdigit() and exp_s.isdigit() and sig):
        raise web.HTTPForbidden(text="a valid access link is required")
    iid, uid, exp = int(raw), int(uid_s), int(exp_s)
    if exp < time.time():
        raise web.HTTPForbidden(text="the link has expired: ask for a new one")
    async with database(request).sessions() as s:
        user = await s.get(User, uid)
        good = user is not None and hmac.compare_digest(sig, _sign(user.token_hash, iid, uid, exp))
        if user is None or not good or not user.active:
            raise web.HTTPForbidden(text="a valid access link is required")
        try:
            inter = await _recorded_call(s, iid, Actor.of(user))
        except ApiError as exc:
            raise web.HTTPNotFound(text=exc.message) from None
    try:
        return await _serve(request, inter)
    except ApiError as exc:
        raise _http(exc) from None


def _http(exc: ApiError) -> web.HTTPException:
    cls = {404: web.HTTPNotFound, 416: web.HTTPRequestRangeNotSatisfiable}.get(
        exc.status, web.HTTPBadGateway
    )
    return cls(text=exc.message)


async def _proxy(request: web.Request, url: str) -> web.StreamResponse:
    headers = {k: v for k in (hdrs.RANGE, hdrs.IF_RANGE) if (v := request.headers.get(k))}
    try:
        async with (
            aiohttp.ClientSession(timeout=PROXY_TIMEOUT) as session,
            session.get(url, headers=headers, allow_redirects=True) as upstream,
        ):
            if upstream.status == 404:
                raise ApiError(404, "the recording is not on the recording server")
            if upstream.status == 416:
                raise ApiError(416, "requested range not satisfiable")
            if upstream.status not in (200, 206):
                raise ApiError(502, f"the recording server answered HTTP {upstream.status}")
            resp = web.StreamResponse(status=upstream.status)
            for name in _PASSED_ON:
                if name in upstream.headers:
                    resp.headers[name] = upstream.headers[name]
            ours = content_type(PurePosixPath(url.split("?", 1)[0]).name)
            given = upstream.headers.get(hdrs.CONTENT_TYPE, "")
            if ours.startswith("audio/") or not given.startswith("audio/"):
                resp.headers[hdrs.CONTENT_TYPE] = ours  # audio/wav, not audio/x-wav
            await resp.prepare(request)
            async for chunk in upstream.content.iter_chunked(64 * 1024):
                await resp.write(chunk)
            await resp.write_eof()
            return resp
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ApiError(502, f"the recording server is unreachable: {exc}") from None


ROUTES = [
    ("GET", "/interactions/{interaction_id}/recording", get_recording),
    ("GET", "/interactions/{interaction_id}/recording/link", recording_link),
]


def setup_media(app: web.Application) -> None:
    """The signed-link route, outside ``/api/`` (no bearer token: an ``<audio src>``)."""
    app.router.add_get(MEDIA_PREFIX + "/{interaction_id}", media_recording)
