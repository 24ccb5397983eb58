"""``crmhub import clients FILE`` and ``crmhub import undo ID``.

The last line on stdout is one JSON object: the import's report (``--dry-run``: the same
report, nothing written) or the undo's result.  A file that cannot be imported prints
``{"error", "error_ru", "field"}`` and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crm_core.db import Database, migrate
from crm_core.imports.errors import ImportFileError
from crm_core.imports.mapping import MAX_MAPPING_BYTES, parse_mapping
from crm_core.imports.read import read_clients
from crm_core.imports.table import Limits
from crm_core.services.common import ServiceError
from gateway.settings import Settings

__all__ = ["add_import_parser", "run_import"]


def add_import_parser(sub: Any, func: Callable[..., int]) -> None:
    imp = sub.add_parser("import", help="import the client base from XLSX or CSV").add_subparsers(
        dest="sub", required=True
    )
    ic = imp.add_parser("clients", help="import clients from an .xlsx or .csv file")
    ic.add_argument("file")
    ic.add_argument("--sheet", help="sheet name (default: the first sheet)")
    ic.add_argument("--mapping", help="YAML file: which column is which field")
    ic.add_argument("--owner", help="email of the owner of new clients whose row names none")
    ic.add_argument(
        "--dry-run", action="store_true", help="report what would change; write nothing"
    )
    ic.set_defaults(func=func)
    iu = imp.add_parser("undo", help="take back an import (keeps clients changed since)")
    iu.add_argument("id", type=int)
    iu.set_defaults(func=func)


def _error(exc: ImportFileError | ServiceError) -> dict[str, Any]:
    if isinstance(exc, ImportFileError):
        return exc.as_dict()
    from gateway.errors_ru import russian

    return {"field": exc.field, "error": exc.message, "error_ru": russian(exc.message)}


async def _owner_id(db: Database, email: str | None) -> int | None:
    if not email:
        return None
    from sqlalchemy import func, select

    from crm_core.models import User

    async with db.sessions() as s:
        uid = await s.scalar(select(User.id).where(func.lower(User.email) == email.strip().lower()))
    if uid is None:
        raise ServiceError(f"no user with email {email}", "owner")
    return int(uid)


def _clients(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from crm_core.services.imports import import_clients

    mapping = None
    if args.mapping:
        mpath = Path(args.mapping)
        try:
            with mpath.open("rb") as fh:
                raw = fh.read(MAX_MAPPING_BYTES + 1)
        except OSError as exc:
            raise ImportFileError(
                f"cannot read mapping {mpath.name}: {exc.strerror}",
                f"не удалось прочитать файл соответствия {mpath.name}: {exc.strerror}",
                "mapping",
            ) from None
        mapping = parse_mapping(raw)
    limits = Limits(max_bytes=settings.import_max_bytes, max_rows=settings.import_max_rows)

    async def write() -> dict[str, Any]:
        from crm_core.services.imports import load_catalog

        db = Database(settings.database_url)
        try:
            await migrate(db)
            catalog = await load_catalog(db)
            sheet = read_clients(
                args.file, sheet=args.sheet, mapping=mapping, limits=limits, catalog=catalog
            )
            owner = await _owner_id(db, args.owner)
            report = await import_clients(
                db, sheet, file_name=Path(args.file).name, owner_id=owner, dry_run=args.dry_run
            )
        finally:
            await db.dispose()
        return report.as_dict()

    return asyncio.run(write())


async def _undo(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from crm_core.services.imports import undo_import

    db = Database(settings.database_url)
    try:
        await migrate(db)
        return await undo_import(db, args.id)
    finally:
        await db.dispose()


def run_import(args: argparse.Namespace, settings: Settings, emit: Callable[[Any], None]) -> int:
    try:
        if args.sub == "clients":
            emit(_clients(args, settings))
        else:
            emit(asyncio.run(_undo(args, settings)))
    except (ImportFileError, ServiceError) as exc:
        emit(_error(exc))
        return 2
    return 0
