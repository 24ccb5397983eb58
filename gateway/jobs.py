"""The background job runner (mass operations) in the app's ``cleanup_ctx``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from crm_core.jobs import JobRunner
from gateway.api.bulk import JOB_RUNNER
from gateway.api.keys import DB
from gateway.keys import SETTINGS

__all__ = ["setup_jobs"]


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    runner = JobRunner(app[DB], poll_interval=max(settings.poll_interval, 0.5) * 4)
    app[JOB_RUNNER] = runner
    if settings.run_workers:
        runner.start()  # also resumes jobs a previous process left unfinished
    yield
    await runner.stop()


def setup_jobs(app: web.Application) -> None:
    app.cleanup_ctx.append(_jobs)
