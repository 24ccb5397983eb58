"""Handlers: client base import as a durable job (admins and supervisors).

``POST /imports/preview`` (multipart ``file``; optional ``sheet``, ``mapping``) reads the
header and the first rows and answers the detected mapping, stores nothing.
``POST /imports`` takes the same parts plus ``owner`` (an email) and ``dry_run``, checks
that the file can be read (a bad file is a 4xx naming ``file``, ``sheet`` or ``mapping``
and leaves nothing behind), stores it under the data folder, records a queued job and
returns 202 at once.  ``mapping`` is YAML or JSON: ``{"columns": {header: field}}``
(docs/import.md), which is how the browser's wizard sends the columns chosen.

Jobs are rows of ``import_batches``: every hub runs an :class:`ImportRunner` that takes
queued jobs, and jobs whose hub stopped renewing its lease (a crash), with ``FOR UPDATE
SKIP LOCKED`` on PostgreSQL; a job commits chunk by chunk with its last row, so a
restarted one goes on from there.  ``GET /imports`` lists the latest imports,
``GET /imports/{id}`` shows one (status, rows so far, total, report), ``POST
/imports/{id}/undo`` takes one back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import func, select

from crm_core.db import Database
from crm_core.imports.errors import ImportFileError
from crm_core.imports.mapping import MAX_MAPPING_BYTES, Mapping, parse_mapping
from crm_core.imports.read import preview_clients, read_clients
from crm_core.imports.table import Limits
from crm_core.models import ImportBatch, User
from crm_core.services.imports import (
    JobLost,
    claim_import_job,
    fail_import_job,
    get_import,
    list_imports,
    load_catalog,
    queue_import_job,
    release_leases,
    renew_lease,
    run_import_job,
    undo_import,
)
from gateway.api.common import actor, database, ok, path_id, read_body
from gateway.api.keys import API_STATE
from gateway.api.schemas import Empty
from gateway.errors import ApiError, json_dumps
from gateway.keys import SETTINGS
from gateway.openapi import operation

__all__ = ["IMPORT_JOBS", "ROUTES", "ImportRunner", "ImportUpload", "setup_imports"]

log = structlog.get_logger(__name__)
_TEXT_FIELDS = ("sheet", "owner", "mapping", "dry_run")
PREVIEW_ROWS = 10


class ImportUpload(BaseModel):
    """The multipart parts: the file and, optionally, how to read it."""

    file: bytes
    sheet: str | None = None
    owner: str | None = None  # email of the owner of new clients whose row names none
    mapping: str | None = None  # YAML or JSON text (docs/import.md)
    dry_run: str | None = None  # "true": report only, write nothing


class PreviewUpload(BaseModel):
    file: bytes
    sheet: str | None = None
    mapping: str | None = None


class ImportQueued(BaseModel):
    id: int
    status: str


class ImportOut(BaseModel):
    id: int
    status: str
    dry_run: bool
    file_name: str
    user_id: int | None
    rows: int
    total: int | None
    report: dict[str, Any]
    created_at: str
    finished_at: str | None
    undone_at: str | None


class ImportPreview(BaseModel):
    sheet: str | None
    sheets: list[str]
    detail: str
    header_row: int
    total: int | None
    columns: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    mapping: dict[str, str | None]
    fields: list[dict[str, str]]


def _config(app: web.Application) -> tuple[Limits, Path, timedelta, bool]:
    """Limits, the folder of uploads, the lease, whether this process runs jobs."""
    settings = app.get(SETTINGS)
    if settings is None:
        folder = Path(tempfile.gettempdir()) / "crmhub-imports"
        return Limits(), folder, timedelta(seconds=30), True
    limits = Limits(settings.import_max_bytes, settings.import_max_rows)
    folder = Path(settings.attachments_dir).parent / "imports"
    return limits, folder, timedelta(seconds=settings.import_lease_seconds), settings.run_workers


@dataclass
class ImportRunner:
    """Runs this hub's import jobs one at a time: takes queued jobs and abandoned ones
    (lease expired), renews the lease while it works."""

    app: web.Application
    owner: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    progress: dict[int, int] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    @property
    def db(self) -> Database:
        return self.app[self.app[API_STATE].db_key]

    async def loop(self) -> None:
        _, _, lease, _ = _config(self.app)
        while True:
            try:
                batch = await claim_import_job(self.db, self.owner, lease)
            except Exception as exc:  # the store is busy or away: try again later
                log.warning("import_claim_failed", error=f"{type(exc).__name__}: {exc}")
                batch = None
            if batch is not None:
                try:
                    await self.run(batch, lease)
                except Exception:  # the database went away: the lease runs out, retried
                    log.exception("import_run_failed", import_id=batch.id)
                    await asyncio.sleep(lease.total_seconds())
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(lease.total_seconds() / 2):
                    await self.wake.wait()
            self.wake.clear()

    async def _heartbeat(self, batch_id: int, lease: timedelta) -> None:
        while True:
            await asyncio.sleep(lease.total_seconds() / 3)
            with contextlib.suppress(Exception):
                await renew_lease(self.db, batch_id, self.owner, lease)

    async def run(self, batch: ImportBatch, lease: timedelta) -> None:
        limits, _, _, _ = _config(self.app)
        params = dict(batch.params or {})
        path = Path(str(params.get("path") or ""))
        db = self.db
        beat = asyncio.create_task(self._heartbeat(batch.id, lease))
        finished = True

        async def progress(rows: int) -> None:
            self.progress[batch.id] = rows

        try:
            self.progress[batch.id] = batch.rows
            catalog = await load_catalog(db)
            mapping: Mapping | None = (
                parse_mapping(params["mapping"]) if params.get("mapping") else None
            )
            sheet = await asyncio.to_thread(
                read_clients,
                path,
                sheet=params.get("sheet"),
                mapping=mapping,
                limits=limits,
                catalog=catalog,
            )
            await run_import_job(db, batch, sheet, owner=self.owner, lease=lease, progress=progress)
        except ImportFileError as exc:
            await fail_import_job(db, batch.id, exc.as_dict())
        except JobLost:
            finished = False  # our lease ran out and another hub took the job over
        except asyncio.CancelledError:
            finished = False  # shutdown: the job goes on after a restart (or elsewhere)
            raise
        except Exception as exc:
            log.exception("import_failed", import_id=batch.id)
            await fail_import_job(
                db, batch.id, {"error": f"internal error: {type(exc).__name__}", "field": None}
            )
        finally:
            beat.cancel()
            self.progress.pop(batch.id, None)
            if finished:
                await asyncio.to_thread(path.unlink, missing_ok=True)


IMPORT_JOBS = web.AppKey("import_jobs", ImportRunner)


def setup_imports(app: web.Application) -> None:
    runner = ImportRunner(app)
    app[IMPORT_JOBS] = runner

    async def ctx(app: web.Application) -> Any:
        if _config(app)[3]:
            runner.task = asyncio.create_task(runner.loop(), name="import-runner")
        yield
        if runner.task is not None:
            runner.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner.task
            with contextlib.suppress(Exception):
                await release_leases(runner.db, runner.owner)

    app.cleanup_ctx.append(ctx)


def _require_lead(request: web.Request) -> None:
    if actor(request).role not in ("admin", "supervisor"):
        raise ApiError(403, "only admins and supervisors may do this")


def _file_error(exc: ImportFileError) -> web.Response:
    field_name = exc.field if exc.field in ("sheet", "mapping") else "file"
    body = {"error": exc.message, "error_ru": exc.message_ru, "field": field_name}
    status = 413 if "limit" in exc.message and "bytes" in exc.message else 422
    return web.json_response(body, status=status, dumps=json_dumps)


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
                    raise ApiError(
                        413,
                        f"file is more than the limit of {limit} bytes",
                        "file",
                    )
                fh.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


async def _owner_id(db: Database, email: str) -> int:
    async with db.sessions() as s:
        uid = await s.scalar(select(User.id).where(func.lower(User.email) == email.strip().lower()))
    if uid is None:
        raise ApiError(422, f"no user with email {email}", "owner")
    return int(uid)


async def _read_parts(
    request: web.Request, folder: Path, limits: Limits, allowed: tuple[str, ...]
) -> tuple[Path | None, str, dict[str, str]]:
    """The uploaded file (stored) and the text parts; the caller discards the file."""
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
            elif name in allowed:
                raw = await part.read_chunk(MAX_MAPPING_BYTES + 1)  # type: ignore[union-attr]
                if len(raw) > MAX_MAPPING_BYTES:
                    raise ApiError(413, f"{name} is longer than 64 KB", name)
                texts[str(name)] = raw.decode("utf-8", "replace")
            else:
                expected = ", ".join(("file", *allowed))
                raise ApiError(422, f"unknown part {name!r} (expected {expected})", name)
        if stored is None:
            raise ApiError(422, "file is required", "file")
    except BaseException:
        if stored is not None:
            stored.unlink(missing_ok=True)
        raise
    return stored, file_name, texts


@operation(
    summary="Preview an import: the header found, each column's field, the first rows "
    "(multipart `file`; admin, supervisor); nothing is stored",
    tag="imports",
    body=PreviewUpload,
    body_type="multipart/form-data",
    response=ImportPreview,
    errors=(400, 401, 403, 413, 422),
)
async def post_preview(request: web.Request) -> web.Response:
    _require_lead(request)
    limits, folder, _, _ = _config(request.app)
    stored, _, texts = await _read_parts(request, folder, limits, ("sheet", "mapping"))
    assert stored is not None
    try:
        catalog = await load_catalog(database(request))
        mapping = parse_mapping(texts["mapping"]) if texts.get("mapping") else None
        data = await asyncio.to_thread(
            preview_clients,
            stored,
            sheet=texts.get("sheet") or None,
            mapping=mapping,
            limits=limits,
            catalog=catalog,
            n=PREVIEW_ROWS,
        )
    except ImportFileError as exc:
        return _file_error(exc)
    finally:
        stored.unlink(missing_ok=True)
    return ok(data)


def _flag(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "on")


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
    limits, folder, _, _ = _config(request.app)
    stored, file_name, texts = await _read_parts(request, folder, limits, _TEXT_FIELDS)
    assert stored is not None
    try:
        db = database(request)
        params: dict[str, Any] = {"sheet": texts.get("sheet") or None}
        if texts.get("owner"):
            params["owner_id"] = await _owner_id(db, texts["owner"])
        if texts.get("mapping"):
            params["mapping"] = texts["mapping"]
        try:
            catalog = await load_catalog(db)
            mapping = parse_mapping(texts["mapping"]) if texts.get("mapping") else None
            sheet = await asyncio.to_thread(
                read_clients,
                stored,
                sheet=params["sheet"],
                mapping=mapping,
                limits=limits,
                catalog=catalog,
            )
            sheet.rows.close()  # header and mapping are fine; the job reads the rows
        except ImportFileError as exc:
            stored.unlink(missing_ok=True)
            return _file_error(exc)
        params["total"] = sheet.total
        batch_id = await queue_import_job(
            db,
            file_name=file_name,
            path=str(stored),
            user_id=actor(request).user_id,
            params=params,
            dry_run=_flag(texts.get("dry_run")),
        )
    except BaseException:
        stored.unlink(missing_ok=True)
        raise
    request.app[IMPORT_JOBS].wake.set()
    return ok({"id": batch_id, "status": "queued"}, 202)


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
        data["rows"] = max(running, data["rows"])
    return ok(data)


class ImportListItem(BaseModel):
    id: int
    status: str
    dry_run: bool
    file_name: str
    user_id: int | None
    rows: int
    total: int | None
    summary: dict[str, Any]
    created_at: str
    finished_at: str | None
    undone_at: str | None


@operation(
    summary="The latest imports, newest first (admin, supervisor)",
    tag="imports",
    response=ImportListItem,
    many=True,
    errors=(401, 403),
)
async def get_imports(request: web.Request) -> web.Response:
    _require_lead(request)
    items = await list_imports(database(request))
    return ok({"items": items, "total": len(items), "limit": len(items), "offset": 0})


@operation(
    summary="Undo an import: remove what it created, take back what it added, except "
    "clients changed since (admin, supervisor)",
    tag="imports",
    body=Empty,
    errors=(401, 403, 404, 409, 422),
)
async def post_undo(request: web.Request) -> web.Response:
    _require_lead(request)
    batch_id = path_id(request)
    if request.can_read_body:
        await read_body(request, Empty)
    return ok(await undo_import(database(request), batch_id))


ROUTES = [
    ("POST", "/imports/preview", post_preview),
    ("POST", "/imports", post_import),
    ("GET", "/imports", get_imports),
    ("GET", "/imports/{id}", get_import_job),
    ("POST", "/imports/{id}/undo", post_undo),
]
