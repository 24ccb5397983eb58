"""``GET /api/v1/clients/export``: the filtered clients list as an XLSX or CSV download.

The query is the clients list's (every filter it knows) plus ``format`` and ``segment``.
CSV is streamed page by page as it is read; an XLSX is built in a temporary file
(openpyxl write-only: constant memory) and then streamed.  Everything that can be
refused (a bad filter, an unknown segment) is checked before the first byte is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from typing import Literal

from aiohttp import web
from pydantic import Field

from crm_core.access import Actor
from crm_core.db import Database
from crm_core.services.common import ListFilter
from crm_core.services.export import CsvSink, XlsxSink, export_columns, export_rows, segment_filter
from gateway.api.clients import split_custom
from gateway.api.common import actor, database
from gateway.api.schemas import ClientListQuery, Id
from gateway.openapi import operation

__all__ = ["ROUTES", "ClientExportQuery", "export_filter", "write_export"]

CONTENT_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}


class ClientExportQuery(ClientListQuery):
    format: Literal["xlsx", "csv"] = Field("xlsx", description="xlsx (default) or csv")
    segment: Id | None = Field(None, description="only clients of this (manual) segment")


def export_filter(query: ClientExportQuery) -> ListFilter:
    flt = query.to_filter()
    flt.extra.pop("format", None)
    return flt


async def write_export(
    db: Database,
    who: Actor,
    flt: ListFilter,
    sink: CsvSink | XlsxSink,
    segment_id: int | None,
) -> tuple[int, int]:
    """Write the export into ``sink``; (clients, rows) written."""
    clients = rows = 0
    async with db.sessions() as s:
        await sink.header(await export_columns(s))
        async for n, batch in export_rows(s, who, flt, segment_id=segment_id):
            await sink.rows(batch)
            clients += n
            rows += len(batch)
    await sink.close()
    return clients, rows


def file_name(fmt: str) -> str:
    return f"clients-{datetime.now(UTC):%Y%m%d-%H%M%S}.{fmt}"


@operation(
    summary="Export the clients list (its filters apply) as an .xlsx or .csv file",
    tag="clients",
    query=ClientExportQuery,
    errors=(401, 404, 422),
)
async def export_clients(request: web.Request) -> web.StreamResponse:
    plain, custom = split_custom(request)  # cf.<key>=value as in the list
    query = ClientExportQuery.model_validate(plain)
    flt = export_filter(query)
    if custom:
        flt.extra["cf"] = custom
    db = database(request)
    who = actor(request)
    async with db.sessions() as s:
        segment_id = await segment_filter(s, query.segment)
        # The list service checks its filters on the first page: do it before sending.
        from crm_core.services.clients import list_clients

        await list_clients(s, who, replace(flt, limit=1))
    fmt = query.format
    headers = {
        "Content-Type": CONTENT_TYPES[fmt],
        "Content-Disposition": f'attachment; filename="{file_name(fmt)}"',
        "Cache-Control": "no-store",
    }
    if fmt == "csv":
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        await write_export(db, who, flt, CsvSink(resp.write), segment_id)
        await resp.write_eof()
        return resp
    fd, tmp = tempfile.mkstemp(prefix="crmhub-export-", suffix=".xlsx")
    os.close(fd)
    try:
        await write_export(db, who, flt, XlsxSink(tmp), segment_id)
        fh = open(tmp, "rb")  # noqa: ASYNC230 - a local temp file, read below in a thread
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # the open handle keeps the data until it is closed
    with fh:
        resp = web.StreamResponse(headers=headers)
        resp.content_length = os.fstat(fh.fileno()).st_size
        await resp.prepare(request)
        while chunk := await asyncio.to_thread(fh.read, 1 << 18):
            await resp.write(chunk)
        await resp.write_eof()
    return resp


ROUTES = [("GET", "/clients/export", export_clients)]
