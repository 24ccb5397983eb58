"""``crmhub export clients --format xlsx|csv [-o FILE] [--segment ID] [--filter K=V ...]``.

The filters are the clients list's (``GET /api/v1/clients``), given as ``--filter
status=active --filter q=Ромашка``; ``--as EMAIL`` exports what that user may see
(default: everything).  The last line on stdout is one JSON object ``{"file", "format",
"clients", "rows", "seconds"}``; a refused filter prints ``{"error", "error_ru",
"field"}`` and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from crm_core.access import Actor
from crm_core.db import Database, migrate
from crm_core.services.common import ServiceError
from gateway.settings import Settings

__all__ = ["add_export_parser", "run_export"]


def add_export_parser(sub: Any, func: Callable[..., int]) -> None:
    exp = sub.add_parser("export", help="export the client base to XLSX or CSV").add_subparsers(
        dest="sub", required=True
    )
    ec = exp.add_parser("clients", help="export clients (the list's filters apply)")
    ec.add_argument("--format", choices=["xlsx", "csv"], default="xlsx")
    ec.add_argument("-o", "--output", help="file to write (default: clients-<time>.<format>)")
    ec.add_argument("--segment", type=int, help="only clients of this manual segment (id)")
    ec.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a filter of the clients list (status=active, owner_id=3, q=..., kind=company)",
    )
    ec.add_argument("--as", dest="as_user", help="export only what this user (email) may see")
    ec.set_defaults(func=func)


def _error(exc: ServiceError | ValidationError) -> dict[str, Any]:
    from gateway.errors_ru import russian

    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        message = f"{field}: {first['msg']}" if field else first["msg"]
        return {"field": field, "error": message, "error_ru": russian(message)}
    return {"field": exc.field, "error": exc.message, "error_ru": russian(exc.message)}


async def _actor(db: Database, email: str | None) -> Actor:
    if not email:
        return Actor(user_id=0, role="admin")
    from sqlalchemy import func, select

    from crm_core.models import User

    async with db.sessions() as s:
        user = await s.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        raise ServiceError(f"no user with email {email}", "as")
    return Actor.of(user)


async def _export(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from crm_core.services.export import CsvSink, XlsxSink, segment_filter
    from gateway.api.export import ClientExportQuery, export_filter, file_name, write_export

    params: dict[str, Any] = {}
    for item in args.filter:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ServiceError(f"filter: expected KEY=VALUE, got {item!r}", "filter")
        params[key.strip()] = value
    params["format"] = args.format
    if args.segment is not None:
        params["segment"] = args.segment
    query = ClientExportQuery.model_validate(params)
    flt = export_filter(query)
    out = Path(args.output or file_name(args.format))
    db = Database(settings.database_url)
    started = time.monotonic()
    try:
        await migrate(db)
        who = await _actor(db, args.as_user)
        async with db.sessions() as s:
            segment_id = await segment_filter(s, query.segment)
        tmp = out.with_name(out.name + ".part")
        try:
            if args.format == "csv":
                with tmp.open("wb") as fh:

                    async def write(data: bytes) -> None:
                        fh.write(data)

                    clients, rows = await write_export(db, who, flt, CsvSink(write), segment_id)
            else:
                clients, rows = await write_export(db, who, flt, XlsxSink(tmp), segment_id)
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        await db.dispose()
    return {
        "file": str(out),
        "format": args.format,
        "clients": clients,
        "rows": rows,
        "seconds": round(time.monotonic() - started, 3),
    }


def run_export(args: argparse.Namespace, settings: Settings, emit: Callable[[Any], None]) -> int:
    try:
        emit(asyncio.run(_export(args, settings)))
    except (ServiceError, ValidationError) as exc:
        emit(_error(exc))
        return 2
    return 0
