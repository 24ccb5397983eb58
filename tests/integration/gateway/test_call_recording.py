"""Issue 10 item 16 through the whole app: the call recorded by the real PBX
(``g_inbound_recorded``: MixMonitor, then 101 answers) keeps MixMonitor's file, and
``GET /api/v1/interactions/{id}/recording`` serves it (from ``recordings_dir`` or through
``recording_url_template``) with HTTP Range, to whoever sees the call."""

from __future__ import annotations

import io
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from crm_core.db import Database
from crm_core.models import Interaction, Lead, User
from gateway.api.keys import DB
from gateway.api.recordings import _sign
from gateway.app import create_app
from tests.support.ami_server import AMIServer, load_transcript
from tests.support.ami_truth import AMI_FIXTURES
from tests.support.app import add_user, make_settings
from tests.support.telephony import ami_settings, drained, rows, until

G = AMI_FIXTURES / "g_inbound_recorded.ami"
A = AMI_FIXTURES / "a_inbound_answered.ami"
BASENAME = "1796293038.0.wav"  # MixMonitor's file in the recording (its PBX path differs)


def silence_wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(rate * seconds))
    return buf.getvalue()


async def _run_calls(
    aiohttp_client: Any, db_url: str, tmp_path: Path, pbx: dict[str, Any], *scripts: Path
) -> TestClient:
    async with AMIServer(speed=0.0) as srv:
        settings = make_settings(db_url, tmp_path, asterisk=[ami_settings(srv.port, **pbx)])
        client: TestClient = await aiohttp_client(create_app(settings))
        for p in scripts:
            srv.push(load_transcript(p))

        async def done() -> bool:
            ended = await rows(client, Interaction, Interaction.kind == "call_ended")
            return len(ended) >= len(scripts)

        await until(done, what="calls ended")
        await drained(client)
    return client


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A recording server on 127.0.0.1 (what ``recording_url_template`` points at)."""
    audio = silence_wav()
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        if request.match_info["name"] != BASENAME:
            raise web.HTTPNotFound()
        resp = web.Response(body=audio, content_type="audio/x-wav")
        rng = request.http_range
        if rng.start is not None or rng.stop is not None:
            part = audio[rng]
            resp = web.Response(body=part, status=206, content_type="audio/x-wav")
            end = (rng.start or 0) + len(part) - 1
            resp.headers["Content-Range"] = f"bytes {rng.start or 0}-{end}/{len(audio)}"
        resp.headers["Accept-Ranges"] = "bytes"
        return resp

    app = web.Application()
    app.router.add_get("/rec/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_recorded_call_served_from_recordings_dir(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    anna, anna_token = await add_user(db_url, "anna@example.ru", "manager", extension="101")
    _, boris_token = await add_user(db_url, "boris@example.ru", "manager", extension="102")
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    audio = silence_wav()
    (monitor / BASENAME).write_bytes(audio)
    (tmp_path / "secret.wav").write_bytes(b"not yours")
    pbx = {"recordings_dir": str(monitor), "recording_url_template": None}
    client = await _run_calls(aiohttp_client, db_url, tmp_path, pbx, G, A)
    recorded, plain = await rows(client, Interaction, Interaction.kind == "call_ended")
    assert recorded.recording_file is not None and recorded.recording_file.endswith(BASENAME)
    assert recorded.recording_url is None and recorded.user_id == anna
    assert plain.recording_file is None and plain.recording_url is None
    anna_h = {"Authorization": f"Bearer {anna_token}"}
    href = f"/api/v1/interactions/{recorded.id}/recording"

    # the timeline (and the click-to-call status) give the link only when there is one
    (lead, _) = await rows(client, Lead)
    r = await client.get(f"/api/v1/leads/{lead.id}/timeline", headers=anna_h)
    assert r.status == 200
    (entry,) = [e for e in (await r.json())["items"] if e["kind"] == "call_ended"]
    assert entry["recording_href"] == href and entry["recording_url"] is None

    r = await client.get(href, headers=anna_h)
    assert r.status == 200 and r.headers["Content-Type"] == "audio/wav"
    assert r.headers.get("Accept-Ranges") == "bytes"
    assert await r.read() == audio
    r = await client.get(href, headers={**anna_h, "Range": "bytes=0-99"})
    assert r.status == 206 and r.headers["Content-Range"] == f"bytes 0-99/{len(audio)}"
    assert await r.read() == audio[:100]
    r = await client.get(href, headers={**anna_h, "Range": f"bytes={len(audio) + 10}-"})
    assert r.status == 416

    # same visibility as the call: Boris does not see Anna's lead, nobody unauthenticated
    r = await client.get(href, headers={"Authorization": f"Bearer {boris_token}"})
    assert r.status == 404
    assert (await client.get(href)).status == 401
    # the call without a recording
    r = await client.get(f"/api/v1/interactions/{plain.id}/recording", headers=anna_h)
    body = await r.json()
    assert r.status == 404 and "has no recording" in body["error"]
    assert body.get("error_ru") == f"У звонка {plain.id} нет записи"
    r = await client.get("/api/v1/interactions/999999/recording", headers=anna_h)
    assert r.status == 404

    # a file name climbing out of the directory is never served
    db: Database = client.app[DB]
    async with db.transaction() as s:
        await s.execute(
            update(Interaction)
            .where(Interaction.id == recorded.id)
            .values(recording_file="/var/spool/asterisk/monitor/../../secret.wav")
        )
    r = await client.get(href, headers=anna_h)
    assert r.status == 404 and "not readable" in (await r.json())["error"]


async def test_recording_proxied_from_the_template_url(
    db_url: str,
    tmp_path: Path,
    aiohttp_client: Any,
    recorder: tuple[str, list[dict[str, str]]],
) -> None:
    base, seen = recorder
    _, admin = await add_user(db_url, "boss@example.ru", "admin")
    await add_user(db_url, "anna@example.ru", "manager", extension="101")
    pbx = {"recording_url_template": base + "/rec/{basename}"}
    client = await _run_calls(aiohttp_client, db_url, tmp_path, pbx, G, A)
    recorded, plain = await rows(client, Interaction, Interaction.kind == "call_ended")
    assert recorded.recording_url == f"{base}/rec/{BASENAME}"
    assert plain.recording_url is None  # answered, but nothing was recorded
    h = {"Authorization": f"Bearer {admin}"}
    href = f"/api/v1/interactions/{recorded.id}/recording"
    audio = silence_wav()
    r = await client.get(href, headers=h)
    assert r.status == 200 and r.headers["Content-Type"] == "audio/wav"
    assert await r.read() == audio
    r = await client.get(href, headers={**h, "Range": "bytes=44-"})
    assert r.status == 206 and await r.read() == audio[44:]
    assert r.headers["Content-Range"] == f"bytes 44-{len(audio) - 1}/{len(audio)}"
    assert seen[-1].get("Range") == "bytes=44-"
    assert "Authorization" not in seen[-1]  # the user's token stays with crmhub

    # the recording server lost it
    db: Database = client.app[DB]
    async with db.transaction() as s:
        await s.execute(
            update(Interaction)
            .where(Interaction.id == recorded.id)
            .values(recording_url=f"{base}/rec/gone.wav")
        )
    r = await client.get(href, headers=h)
    assert r.status == 404


async def test_signed_link_for_the_audio_element(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    """``GET .../recording/link`` (bearer) gives a short-lived link an ``<audio src>`` can
    use without a header; it is bound to the call, the user and its token."""
    anna, anna_token = await add_user(db_url, "anna@example.ru", "manager", extension="101")
    _, boris_token = await add_user(db_url, "boris@example.ru", "manager", extension="102")
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    audio = silence_wav()
    (monitor / BASENAME).write_bytes(audio)
    pbx = {"recordings_dir": str(monitor), "recording_url_template": None}
    client = await _run_calls(aiohttp_client, db_url, tmp_path, pbx, G, A)
    recorded, plain = await rows(client, Interaction, Interaction.kind == "call_ended")
    anna_h = {"Authorization": f"Bearer {anna_token}"}
    r = await client.get(f"/api/v1/interactions/{recorded.id}/recording/link", headers=anna_h)
    assert r.status == 200, await r.text()
    url = (await r.json())["url"]
    assert url.startswith(f"/media/recordings/{recorded.id}?access={anna}.")
    r = await client.get(url)  # no Authorization header
    assert r.status == 200 and r.headers["Content-Type"] == "audio/wav"
    assert await r.read() == audio
    r = await client.get(url, headers={"Range": "bytes=100-199"})
    assert r.status == 206 and await r.read() == audio[100:200]

    # bound to its call, its signature and its time
    assert (await client.get(url.replace(f"/{recorded.id}?", f"/{plain.id}?"))).status == 403
    assert (await client.get(url[:-2] + ("AA" if url[-2:] != "AA" else "BB"))).status == 403
    # an expired link, well signed
    (user,) = await rows(client, User, User.id == anna)
    past = int(time.time()) - 1
    stale = f"/media/recordings/{recorded.id}?access={anna}.{past}."
    r = await client.get(stale + _sign(user.token_hash, recorded.id, anna, past))
    assert r.status == 403 and "expired" in await r.text()
    assert (await client.get(f"/media/recordings/{recorded.id}")).status == 403
    # Boris cannot get a link for Anna's call; no link for a call without a recording
    r = await client.get(
        f"/api/v1/interactions/{recorded.id}/recording/link",
        headers={"Authorization": f"Bearer {boris_token}"},
    )
    assert r.status == 404
    r = await client.get(f"/api/v1/interactions/{plain.id}/recording/link", headers=anna_h)
    assert r.status == 404
    # a deactivated user's links die with them
    db: Database = client.app[DB]
    async with db.transaction() as s:
        await s.execute(update(User).where(User.id == anna).values(active=False))
    assert (await client.get(url)).status == 403
