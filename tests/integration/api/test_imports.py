"""``POST /api/v1/imports`` (multipart, a job off the request) and ``GET /imports/{id}``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from crm_core.models import Client, ImportBatch
from crm_core.services.users import create_user
from tests.support.api import Api, Caller, count

SAMPLES = Path(__file__).parents[2] / "fixtures" / "import"


async def upload(who: Caller, content: bytes | None, **fields: str) -> tuple[int, Any]:
    form = aiohttp.FormData(default_to_multipart=True)
    if content is not None:
        form.add_field("file", content, filename="clients.xlsx")
    for k, v in fields.items():
        form.add_field(k, v)
    resp = await who.http.post("/api/v1/imports", data=form, headers=who._headers())
    return resp.status, await resp.json()


async def wait_done(who: Caller, batch_id: int) -> dict[str, Any]:
    for _ in range(200):
        status, job = await who.get(f"/imports/{batch_id}")
        assert status == 200, job
        if job["status"] not in ("queued", "running"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError("the import job did not finish")


async def test_import_job_runs_off_the_request_and_reports(api: Api) -> None:
    async with api.db.transaction() as s:
        for email in ("petrov@example.ru", "ivanova@example.ru"):
            await create_user(s, email, "manager")
    xlsx = (SAMPLES / "clients_simple.xlsx").read_bytes()
    status, body = await upload(api.as_("a1"), xlsx)
    assert status == 403
    status, body = await upload(api.as_("sup"), xlsx, owner="a1@example.ru")
    assert status == 202 and body["status"] == "queued"
    job = await wait_done(api.as_("sup"), body["id"])
    assert job["status"] == "done" and job["rows"] == 6
    report = job["report"]
    assert (report["created"], report["updated"]) == (4, 1)
    assert report["errors"][0]["row"] == 7 and report["errors"][0]["error_ru"]
    assert await count(api.db, Client) == 4
    status, _ = await api.as_("a1").get(f"/imports/{body['id']}")
    assert status == 403
    status, _ = await api.as_("admin").get("/imports/999999")
    assert status == 404


async def test_bad_uploads_are_4xx_naming_the_field_and_change_nothing(api: Api) -> None:
    admin = api.as_("admin")
    status, body = await upload(admin, None, sheet="X")
    assert status == 422 and body["field"] == "file"
    status, body = await upload(admin, b"\x00\x01junk\x00 not a sheet")
    assert status == 422 and body["field"] == "file" and body["error_ru"]
    xlsx = (SAMPLES / "clients_simple.xlsx").read_bytes()
    status, body = await upload(admin, xlsx, sheet="Нет такого")
    assert status == 422 and body["field"] == "sheet" and "Клиенты" in body["error"]
    status, body = await upload(admin, xlsx, mapping="a: &x [1]\nb: *x\n")
    assert status == 422 and body["field"] == "mapping"
    status, body = await upload(admin, xlsx, owner="nobody@example.ru")
    assert status == 422 and body["field"] == "owner"
    resp = await admin.http.post("/api/v1/imports", json={}, headers=admin._headers())
    assert resp.status == 400
    assert await count(api.db, ImportBatch) == 0 and await count(api.db, Client) == 0


async def test_a_malformed_multipart_part_header_is_400_not_500(api: Api) -> None:
    """Found by schemathesis: a part header with a raw CR escape and control bytes made
    aiohttp's multipart reader raise InvalidHeader, which answered 500."""
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\n".encode()
        + 'Content-Disposition: form-data; name="ꕜ%0D¦\x15²"\r\n\r\n[null]\r\n'.encode()
        + f"--{boundary}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="f"\r\n\r\nxx\r\n'
        + f"--{boundary}--\r\n".encode()
    )
    admin = api.as_("admin")
    headers = {**admin._headers(), "Content-Type": f"multipart/form-data; boundary={boundary}"}
    resp = await admin.http.post("/api/v1/imports", data=body, headers=headers)
    answer = await resp.json()
    assert resp.status == 400, answer
    assert answer["error_ru"]
    assert await count(api.db, ImportBatch) == 0
