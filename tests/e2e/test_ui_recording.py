"""Issue 10 item 16 in the browser: a recorded call on the timeline has an
``<audio controls preload="none">`` player whose source is a short-lived signed link the UI
asked for with its bearer token; pressing play streams the recording (HTTP 200/206)."""

from __future__ import annotations

import io
import os
import re
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

if not os.environ.get("CI"):
    pytest.importorskip("playwright", reason="pip install -e '.[test]' for the browser tests")
from playwright.async_api import Page, Response, expect

from crm_core.models import Interaction
from gateway.api.keys import DB
from tests.e2e.conftest import UI
from tests.e2e.test_ui import api, shot, sign_in


def _wav(seconds: float = 2.0, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x10\x00\xf0\xff" * int(rate * seconds / 2))
    return buf.getvalue()


@pytest.fixture
async def recording_server(tmp_path: Path) -> AsyncIterator[str]:
    """The PBX's recording server on 127.0.0.1 (``recording_url_template`` points here)."""
    (tmp_path / "1.wav").write_bytes(_wav())

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(tmp_path / request.match_info["name"])  # Range included

    app = web.Application()
    app.router.add_get("/rec/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_recorded_call_plays_through_the_authenticated_endpoint(
    page: Page, ui: UI, recording_server: str
) -> None:
    status, client = await api(
        ui, "POST", "/clients", ui.admin, {"name": "ООО «Запись»", "phones": ["+74951112233"]}
    )
    assert status == 201, client
    async with ui.app[DB].transaction() as s:
        for outcome, url in (("answered", f"{recording_server}/rec/1.wav"), ("missed", None)):
            s.add(
                Interaction(
                    client_id=client["id"],
                    channel="call",
                    direction="in",
                    kind="call_ended",
                    outcome=outcome,
                    duration_s=2,
                    recording_url=url,
                    meta={"pbx": "office"},
                )
            )
    loads: list[Response] = []
    page.on("response", lambda r: loads.append(r) if "recording" in r.url else None)
    await sign_in(page, ui, ui.admin)
    await page.goto(ui.at(f"/ui/#/clients/{client['id']}"))
    items = page.locator(".timeline li")
    await expect(items).to_have_count(2)
    await expect(items.locator("audio")).to_have_count(1)  # the missed call has none
    audio = items.locator("audio.tl-audio")
    await expect(audio).to_be_visible()
    await expect(audio).to_have_attribute("controls", "")
    await expect(audio).to_have_attribute("preload", "none")
    href = await audio.get_attribute("data-href")
    assert href is not None and href.startswith("/api/v1/interactions/")
    await expect(audio).to_have_attribute("src", re.compile(r"^/media/recordings/\d+\?access="))
    link = [r for r in loads if r.url.endswith(href + "/link")]
    assert [r.status for r in link] == [200]
    sent = await link[0].request.all_headers()  # the sign-in session's cookie, no token
    assert "authorization" not in sent and "crmhub_session=" in sent.get("cookie", "")
    assert not [r for r in loads if "/media/" in r.url]  # preload="none": nothing yet

    box = await audio.bounding_box()
    assert box is not None
    await page.mouse.click(box["x"] + 16, box["y"] + box["height"] / 2)  # the play button
    await page.wait_for_function(
        "a => a.readyState >= 1 && a.duration > 1.5", arg=await audio.element_handle()
    )
    media = [r for r in loads if "/media/recordings/" in r.url]
    assert media and {r.status for r in media} <= {200, 206}
    assert media[0].headers["content-type"] == "audio/wav"
    assert "authorization" not in await media[0].request.all_headers()
    await expect(items.locator(".tl-audio-error")).to_have_text("")
    await shot(page, "recording")
