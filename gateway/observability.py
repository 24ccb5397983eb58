"""structlog set-up, Prometheus metrics and the request-id middleware."""

from __future__ import annotations

import itertools
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics", "configure_logging", "request_context_middleware"]


def configure_logging(fmt: str = "auto", level: str = "INFO", *, stdlib: bool = True) -> None:
    """JSON lines in production (not a terminal), a console renderer on a terminal;
    always on stderr.  With ``stdlib`` (``crmhub serve``) the standard library's logging
    (aiohttp, panoramisk, alembic, the connectors' own loggers) goes through the same
    structlog processors, so with JSON every line is JSON, tracebacks included.
    ``stdlib=False`` leaves the standard library's logging alone (one-shot CLI commands:
    its last-resort handler already writes warnings to stderr)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if use_json
        else structlog.dev.ConsoleRenderer()
    )
    # JSON: a traceback becomes a structured "exception" field (still one line).
    tracebacks: structlog.typing.Processor = (
        structlog.processors.dict_tracebacks if use_json else structlog.processors.format_exc_info
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if stdlib:
        handler = logging.StreamHandler(_StderrProxy())
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=[
                    *shared,
                    structlog.stdlib.add_logger_name,
                    structlog.stdlib.PositionalArgumentsFormatter(),
                    structlog.stdlib.ExtraAdder(),
                ],
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    tracebacks,
                    renderer,
                ],
            )
        )
        root = logging.getLogger()
        for old in list(root.handlers):
            root.removeHandler(old)
        root.addHandler(handler)
        root.setLevel(lvl)
        for noisy in ("aiohttp.access",):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        logging.captureWarnings(True)
    structlog.configure(
        processors=[*shared, tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        # sys.stderr looked up per logger, not fixed here: stdout stays for command
        # output (``crmhub ingest`` prints JSON) and a replaced stderr is followed.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )


class _StderrProxy:
    """``sys.stderr`` as it is at each write (tests and tools replace it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


class Metrics:
    """One registry per application (tests build many apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_received = Counter(
            "crmhub_events_received_total",
            "Events accepted into the inbox",
            ["channel"],
            registry=r,
        )
        self.events_processed = Counter(
            "crmhub_events_processed_total",
            "Events processed by the pipeline",
            ["channel", "status"],
            registry=r,
        )
        self.events_failed = Counter(
            "crmhub_events_failed_total", "Processing failures", ["channel"], registry=r
        )
        self.form_spam = Counter(
            "crmhub_form_spam_total", "Form submissions dropped by a honeypot", ["form"], registry=r
        )
        self.connector_up = Gauge(
            "crmhub_connector_up",
            "1 when a push connector is connected",
            ["channel", "name"],
            registry=r,
        )
        self.outbox = Counter(
            "crmhub_outbox_total", "Outbox commands by result", ["channel", "status"], registry=r
        )
        self.sla_breaches = Counter(
            "crmhub_sla_breaches_total", "Tasks whose SLA was breached", registry=r
        )
        self.reminders = Counter("crmhub_reminders_total", "Task reminders fired", registry=r)
        self.inbox_failed = Gauge(
            "crmhub_inbox_failed", "Inbox events currently failed", registry=r
        )
        self.http = Histogram(
            "crmhub_http_request_seconds",
            "HTTP request latency",
            ["route", "status"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def received(self, channel: str) -> None:
        self.events_received.labels(channel).inc()

    def result(self, channel: str, status: str) -> None:
        self.events_processed.labels(channel, status).inc()
        if status == "failed":
            self.events_failed.labels(channel).inc()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
access_log = structlog.get_logger("crmhub.http")
# Request ids: a per-process random prefix and a counter (uuid4 per request costs a syscall).
_RID_PREFIX = uuid.uuid4().hex[:8] + "-"
_rid_counter = itertools.count(1)


def request_context_middleware(
    metrics: Metrics | None,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request.headers.get("X-Request-Id") or f"{_RID_PREFIX}{next(_rid_counter):x}"
        structlog.contextvars.bind_contextvars(request_id=rid)
        started = time.perf_counter()
        status = 500
        try:
            resp = await handler(request)
            status = resp.status
            resp.headers["X-Request-Id"] = rid
            return resp
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            elapsed = time.perf_counter() - started
            info = request.match_info.route.resource
            route = info.canonical if info is not None else "unmatched"
            if metrics is not None:
                metrics.http.labels(route, str(status)).observe(elapsed)
            if route not in ("/healthz", "/metrics"):
                access_log.info(
                    "http_request",
                    method=request.method,
                    route=route,
                    status=status,
                    ms=round(elapsed * 1000, 1),
                )
            structlog.contextvars.unbind_contextvars("request_id")

    return middleware
