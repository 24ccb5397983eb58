"""JSON errors for the REST API: ``{"error": "message", "field": "name"}``.

The middleware turns service errors, pydantic validation errors, malformed JSON,
unique-constraint races and aiohttp's own HTTP errors (unknown route, wrong method)
into 4xx JSON.  It applies to ``/api/`` only; other paths keep their own behaviour,
except that on every path a busy store (:func:`crm_core.db.is_busy_error`) is answered
503 with ``Retry-After``, never 500.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from crm_core.db import is_busy_error
from crm_core.ports import IngestUnavailable
from crm_core.services.common import Conflict, Forbidden, Invalid, NotFound, ServiceError
from gateway.errors_ru import russian

__all__ = [
    "ApiError",
    "busy_response",
    "error_middleware",
    "json_dumps",
    "json_error",
    "validation_field",
]

log = structlog.get_logger("crmhub.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BUSY_MESSAGE = "the database is busy; the change was not saved, retry after Retry-After seconds"
BUSY_RETRY_AFTER = 5

_STATUS: dict[type[ServiceError], int] = {
    NotFound: 404,
    Conflict: 409,
    Invalid: 422,
    Forbidden: 403,
}


class ApiError(Exception):
    """An error a handler raises with its HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


def json_error(
    status: int, message: str, field: str | None = None, ru: str | None = None
) -> web.Response:
    """``{"error", "error_ru" (when there is a Russian wording), "field"}``; ``ru`` is
    the Russian wording when the error brought its own (a stage's Russian name)."""
    body: dict[str, Any] = {"error": message}
    ru = ru or russian(message)
    if ru is not None:
        body["error_ru"] = ru
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status, dumps=json_dumps)


def json_dumps(data: Any) -> str:
    """JSON with Russian text as it is (not ``\\u`` escapes)."""
    return json.dumps(data, ensure_ascii=False)


def validation_field(exc: ValidationError) -> tuple[str, str]:
    """(field path, message) of the first error of a pydantic ValidationError."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err.get("loc", ()) if not str(p).startswith(("function-", "union["))]
    field = ".".join(loc) or "body"
    msg = str(err.get("msg", "invalid value"))
    return field, f"{field}: {msg}"


def busy_response(exc: BaseException, request: web.Request) -> web.Response:
    """503 + Retry-After: the store could not take the write in time; nothing was saved."""
    log.warning("store_busy", path=request.path, method=request.method, error=str(exc)[:300])
    resp = json_error(503, BUSY_MESSAGE)
    resp.headers["Retry-After"] = str(BUSY_RETRY_AFTER)
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        try:
            return await handler(request)
        except Exception as exc:
            if is_busy_error(exc):
                return busy_response(exc, request)
            raise
    try:
        return await handler(request)
    except ApiError as exc:
        resp = json_error(exc.status, exc.message, exc.field)
        resp.headers.update(exc.headers)
        return resp
    except ServiceError as exc:
        status = next((v for k, v in _STATUS.items() if isinstance(exc, k)), 400)
        return json_error(status, exc.message, exc.field, getattr(exc, "message_ru", None))
    except ValidationError as exc:
        field, message = validation_field(exc)
        return json_error(422, message, field)
    except IntegrityError as exc:
        log.info("api_conflict", error=str(exc.orig)[:300])
        return json_error(409, "the change conflicts with existing data (a duplicate?)")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason)
    except HttpProcessingError as exc:  # a malformed body part (multipart headers, chunks)
        log.info("api_bad_body", path=request.path, error=str(exc.message)[:200])
        return json_error(400, "the request body is malformed (multipart or HTTP framing)")
    except IngestUnavailable as exc:
        return busy_response(exc, request)
    except RecursionError:  # a nested input that slipped past the depth checks
        log.warning("api_recursion", path=request.path, method=request.method)
        return json_error(400, "the input is nested too deeply")
    except Exception as exc:
        if is_busy_error(exc):
            return busy_response(exc, request)
        log.exception("api_error", path=request.path, method=request.method)
        return json_error(500, "internal error; the change was not saved")
