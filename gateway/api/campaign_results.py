"""Handlers: what campaigns brought.

``GET /campaigns/{id}/results``: counts by recipient status and every message sent.
``GET /campaigns/{id}/results/recipients``: the recipients list with each client's name
(the results page's table), paged by keyset.
``GET /campaigns/{id}/recipients.xlsx``: every recipient (or one status) as an .xlsx,
built with openpyxl's write-only workbook in a temporary file (constant memory, rows
added in a worker thread) and then streamed; a cell that a spreadsheet could read as a
formula is written as text.
``GET /analytics/campaigns``: per campaign, replies turned into leads and deals (JSON,
or CSV / XLSX / SVG like every analytics report).

``GET /campaign-access``: whether the signed-in user may send campaigns (the pages show
the menu entry by it).

Who may see them: admins and supervisors every campaign; a manager the campaigns they
created (any other answers 404, ids do not leak).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from pydantic import Field

from crm_core.access import Actor
from crm_core.db import Database
from crm_core.models import Campaign
from crm_core.services import campaign_results as svc
from crm_core.services.campaigns import get_campaign
from crm_core.services.export import Column, XlsxSink
from gateway.api.analytics import PeriodQuery, report
from gateway.api.campaigns import policy_of
from gateway.api.common import actor, database, ok, path_id, read_query
from gateway.api.schemas import Id, Strict
from gateway.openapi import operation

__all__ = ["ROUTES"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RecipientStatus = Literal[
    "pending",
    "sending",
    "sent",
    "failed",
    "bounced",
    "unsubscribed",
    "replied",
    "suppressed",
    "unknown",
]
HEADERS = {
    "ru": ("ID клиента", "Клиент", "Адрес", "Статус", "Ошибка", "Отправлено", "Попыток"),
    "en": ("Client ID", "Client", "Address", "Status", "Error", "Sent at", "Attempts"),
}


async def _campaign(db: Database, who: Actor, campaign_id: int) -> Campaign:
    """The campaign if ``who`` may see it (the campaigns' own rule), else 404."""
    async with db.sessions() as s:
        return await get_campaign(s, who, campaign_id)


@operation(
    summary="A campaign's results: recipients by status and messages sent (opens and clicks "
    "are not tracked)",
    tag="campaigns",
    errors=(401, 404),
)
async def get_results(request: web.Request) -> web.Response:
    campaign_id = path_id(request)
    db = database(request)
    c = await _campaign(db, actor(request), campaign_id)
    async with db.sessions() as s:
        data = await svc.campaign_counts(s, campaign_id)
    counts = data["counts"]
    return ok(
        {
            "campaign_id": c.id,
            "status": c.status,
            "total": data["total"],
            "counts": counts,
            "sent": data["sent_total"],
            "failed": counts["failed"],
            "bounced": counts["bounced"],
            "unsubscribed": counts["unsubscribed"],
            "replied": counts["replied"],
            "unknown": counts["unknown"],
            "tracking": False,
        }
    )


class RecipientsExportQuery(Strict):
    status: RecipientStatus | None = Field(None, description="only recipients in this status")
    lang: Literal["ru", "en"] = Field("ru", description="language of the header row")


@operation(
    summary="A campaign's recipients (all, or one status) as an .xlsx file",
    tag="campaigns",
    query=RecipientsExportQuery,
    errors=(401, 404, 422),
)
async def export_recipients(request: web.Request) -> web.StreamResponse:
    campaign_id = path_id(request)
    q = read_query(request, RecipientsExportQuery)
    db = database(request)
    await _campaign(db, actor(request), campaign_id)
    fd, tmp = tempfile.mkstemp(prefix="crmhub-campaign-", suffix=".xlsx")
    os.close(fd)
    try:
        sink = XlsxSink(tmp, sheet="Recipients" if q.lang == "en" else "Получатели")
        await sink.header([Column(f"c{i}", h) for i, h in enumerate(HEADERS[q.lang])])
        async with db.sessions() as s:
            async for batch in svc.recipient_rows(s, campaign_id, q.status):
                await sink.rows(batch)
        await sink.close()
        fh = open(tmp, "rb")  # noqa: ASYNC230 - a local temp file, read below in a thread
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # the open handle keeps the data until it is closed
    name = f"campaign-{campaign_id}-recipients-{datetime.now(UTC):%Y%m%d-%H%M%S}.xlsx"
    with fh:
        resp = web.StreamResponse(
            headers={
                "Content-Type": XLSX,
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
            }
        )
        resp.content_length = os.fstat(fh.fileno()).st_size
        await resp.prepare(request)
        while chunk := await asyncio.to_thread(fh.read, 1 << 18):
            await resp.write(chunk)
        await resp.write_eof()
    return resp


class NamedRecipientsQuery(Strict):
    status: RecipientStatus | None = Field(None, description="only recipients in this status")
    limit: int = Field(50, ge=1, le=200)
    after: Id | None = Field(None, description="the next_after of the previous page")


@operation(
    summary="A campaign's recipients with their client's name (paged by keyset, by status)",
    tag="campaigns",
    query=NamedRecipientsQuery,
    errors=(401, 404, 422),
)
async def get_named_recipients(request: web.Request) -> web.Response:
    campaign_id = path_id(request)
    q = read_query(request, NamedRecipientsQuery)
    db = database(request)
    who = actor(request)
    await _campaign(db, who, campaign_id)
    async with db.sessions() as s:
        data = await svc.recipients_with_names(
            s, who, campaign_id, status=q.status, limit=q.limit, after=q.after
        )
    return ok(data)


class CampaignReportQuery(PeriodQuery):
    limit: int = Field(50, ge=1, le=200, description="campaigns per page")
    offset: int = Field(0, ge=0, le=1_000_000)


@operation(
    summary="Campaigns started in the period: recipients, sent, replies, and the leads and "
    "deals of the clients who replied (created within 90 days of the message)",
    tag="analytics",
    query=CampaignReportQuery,
    errors=(401, 422),
)
async def get_campaigns_report(request: web.Request) -> web.Response:
    q = read_query(request, CampaignReportQuery)
    async with database(request).sessions() as s:
        data = await svc.campaigns_report(
            s, actor(request), *q.window(), limit=q.limit, offset=q.offset
        )
    return await report("campaigns", data, q)


@operation(
    summary="Whether you may create and send campaigns (admins, supervisors; managers when "
    "an admin allows it, to their own clients)",
    tag="campaigns",
    errors=(401,),
)
async def get_campaign_access(request: web.Request) -> web.Response:
    who = actor(request)
    allowed = policy_of(request.app).managers_allowed
    return ok(
        {
            "may_send": who.is_admin or who.is_supervisor or allowed,
            "managers_allowed": allowed,
        }
    )


ROUTES = [
    ("GET", "/campaign-access", get_campaign_access),
    ("GET", "/campaigns/{id}/results", get_results),
    ("GET", "/campaigns/{id}/recipients.xlsx", export_recipients),
    ("GET", "/campaigns/{id}/results/recipients", get_named_recipients),
    ("GET", "/analytics/campaigns", get_campaigns_report),
]
