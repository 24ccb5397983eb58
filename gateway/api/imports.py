"""Handlers: client base import as a job (admins and supervisors).

``POST /imports`` takes a multipart upload (``file``; optional ``sheet``, ``owner`` (an
email), ``mapping`` (YAML text)), checks that the file can be read (a bad file is a 422
naming ``file``, ``sheet`` or ``mapping`` and leaves nothing behind), stores it, records a
queued job and returns 202 at once; the import runs off the request in this process.
``GET /imports/{id}`` shows the job: status (queued, running, done, failed, undone),
rows processed so far and, when done, the report (``crmhub import clients``'s JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import func, select

from crm_core.db import Database
from crm_core.imports.errors import ImportFileError
from crm_core.imports.mapping import MAX_MAPPING_BYTES, Mapping, parse_mapping
from crm_core.imports.read import read_clients
from crm_core.imports.table import Limits
from crm_core.models import User
from crm_core.services.imports import (
    fail_import_job,
    get_import,
    import_clients,
    queue_import_job,
)
from gateway.api.common import actor, database, ok, path_id
from gateway.errors import ApiError, json_dumps
from gateway.keys import SETTINGS
from gateway.openapi import operation

__all__ = ["IMPORT_JOBS", "ROUTES", "ImportJobs", "ImportUpload", "setup_imports"]

log = structlog.get_logger(__name__)
_TEXT_FIELDS = ("sheet", "owner", "mapping")


@dataclass
class ImportJobs:
    """Imports running in this process and their progress (rows read so far)."""

    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    progress: dict[int, int] = field(default_factory=dict)


IMPORT_JOBS = web.AppKey("import_jobs", ImportJobs)


class ImportUpload(BaseModel):
    """The multipart parts: the file and, optionally, how to read it."""

    file: bytes
    sheet: str | None = None
    owner: str | None = None  # email of the owner of new clients whose row names none
    mapping: str | None = None  # YAML text (docs/import.md)


class ImportQueued(BaseModel):
    id: int
    status: str


class ImportOut(BaseModel):
    id: int
    status: str
    file_name: str
    user_id: int | None
    rows: int
    report: dict[str, Any]
    created_at: str
    finished_at: str | None
    undone_at: str | None


def setup_imports(app: web.Application) -> None:
    app[IMPORT_JOBS] = ImportJobs()

    async def stop(app: web.Application) -> None:
        for task in list(app[IMPORT_JOBS].tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.on_cleanup.append(stop)


def _config(app: web.Application) -> tuple[Limits, Path]:
    """Limits and the folder of uploads (defaults where the app has no settings)."""
    settings = app.get(SETTINGS)
    if settings is None:
        return Limits(), Path(tempfile.gettempdir()) / "crmhub-imports"
    limits = Limits(settings.import_max_bytes, settings.import_max_rows)
    return limits, Path(settings.attachments_dir).parent / "imports"


def _require_lead(request: web.Request) -> None:
    if actor(request).role not in ("admin", "supervisor"):
        raise ApiError(403, "only admins and supervisors may do this")


def _file_error(exc: ImportFileError) -> web.Response:
    field_name = exc.field if exc.field in ("sheet", "mapping") else "file"
    body = {"error": exc.message, "error_ru": exc.message_ru, "field": field_name}
    status = 413 if "limit" in exc.message and "bytes" in exc.message else 422
    return web.json_response(body, status=status, dumps=json_dumps)


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def _new_upload(folder: Path) -> tuple[int, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix="import-", suffix=".upload")
    return fd, Path(name)


async def _store(part: Any, folder: Path, limit: int) -> Path:
    fd, path = _new_upload(folder)
    size = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            while chunk := await part.read_chunk(256 * 1024):
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"file is more than the limit of {limit} bytes", "file")
                fh.write(chunk)
    except BaseException:
        _discard(path)
        raise
    return path


async def _owner_id(db: Database, email: str) -> int:
    async with db.sessions() as s:
        uid = await s.scalar(select(User.id).where(func.lower(User.email) == email.strip().lower()))
    if uid is None:
        raise ApiError(422, f"no user with email {email}", "owner")
    return int(uid)


@operation(
    summary="Import clients from an .xlsx or .csv file (multipart `file`; admin, supervisor)",
    tag="imports",
    body=ImportUpload,
    body_type="multipart/form-data",
    response=ImportQueued,
    status=202,
    errors=(400, 401, 403, 413, 422),
)
async def post_import(request: web.Request) -> web.Response:
    _require_lead(request)
    limits, folder = _config(request.app)
    if not request.content_type.startswith("multipart/"):
        raise ApiError(400, "the body must be multipart/form-data with a `file` part", "file")
    reader = await request.multipart()
    texts: dict[str, str] = {}
    stored: Path | None = None
    file_name = ""
    try:
        while (part := await reader.next()) is not None:
            name = getattr(part, "name", None)
            if name == "file" and stored is None:
                file_name = Path(getattr(part, "filename", None) or "upload").name
                stored = await _store(part, folder, limits.max_bytes)
            elif name in _TEXT_FIELDS:
                raw = await part.read_chunk(MAX_MAPPING_BYTES + 1)  # type: ignore[union-attr]
                if len(raw) > MAX_MAPPING_BYTES:
                    raise ApiError(413, f"{name} is longer than 64 KB", name)
                texts[name] = raw.decode("utf-8", "replace")
            else:
                raise ApiError(
                    422, f"unknown part {name!r} (expected file, sheet, owner, mapping)", name
                )
        if stored is None:
            raise ApiError(422, "file is required", "file")
        db = database(request)
        params: dict[str, Any] = {"sheet": texts.get("sheet") or None}
        if texts.get("owner"):
            params["owner_id"] = await _owner_id(db, texts["owner"])
        if texts.get("mapping"):
            params["mapping"] = texts["mapping"]
        try:
            mapping = parse_mapping(texts["mapping"]) if texts.get("mapping") else None
            sheet = await asyncio.to_thread(
                read_clients, stored, sheet=params["sheet"], mapping=mapping, limits=limits
            )
            sheet.rows.close()  # header and mapping are fine; the job reads the rows
        except ImportFileError as exc:
            _discard(stored)
            return _file_error(exc)
        batch_id = await queue_import_job(
            db, file_name=file_name, path=str(stored), user_id=actor(request).user_id, params=params
        )
    except BaseException:
        if stored is not None:
            _discard(stored)
        raise
    _start(request.app, db, batch_id, stored, file_name, params)
    return ok({"id": batch_id, "status": "queued"}, 202)


def _start(
    app: web.Application,
    db: Database,
    batch_id: int,
    path: Path,
    file_name: str,
    params: dict[str, Any],
) -> None:
    jobs = app[IMPORT_JOBS]
    limits, _ = _config(app)

    async def progress(rows: int) -> None:
        jobs.progress[batch_id] = rows

    async def run() -> None:
        jobs.progress[batch_id] = 0
        try:
            mapping: Mapping | None = (
                parse_mapping(params["mapping"]) if params.get("mapping") else None
            )
            sheet = read_clients(path, sheet=params.get("sheet"), mapping=mapping, limits=limits)
            await import_clients(
                db,
                sheet,
                file_name=file_name,
                owner_id=params.get("owner_id"),
                batch_id=batch_id,
                progress=progress,
            )
        except ImportFileError as exc:
            await fail_import_job(db, batch_id, exc.as_dict())
        except Exception as exc:
            log.exception("import_failed", import_id=batch_id)
            await fail_import_job(
                db, batch_id, {"error": f"internal error: {type(exc).__name__}", "field": None}
            )
        finally:
            jobs.progress.pop(batch_id, None)
            _discard(path)

    task = asyncio.create_task(run(), name=f"import-{batch_id}-{uuid.uuid4().hex[:4]}")
    jobs.tasks.add(task)
    task.add_done_callback(jobs.tasks.discard)


@operation(
    summary="An import job: status, progress and report (admin, supervisor)",
    tag="imports",
    response=ImportOut,
    errors=(401, 403, 404),
)
async def get_import_job(request: web.Request) -> web.Response:
    _require_lead(request)
    batch_id = path_id(request)
    data = await get_import(database(request), batch_id)
    running = request.app[IMPORT_JOBS].progress.get(batch_id)
    if running is not None and data["status"] in ("queued", "running"):
        data["status"] = "running"
        data["rows"] = running
    return ok(data)


ROUTES = [
    ("POST", "/imports", post_import),
    ("GET", "/imports/{id}", get_import_job),
]
