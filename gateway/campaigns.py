"""The campaign runner and its SMTP transport in the app's ``cleanup_ctx``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from connectors.email.campaign_smtp import CampaignSmtp
from crm_core.campaigns import CampaignRunner
from gateway.api.campaigns import CAMPAIGN_RUNNER, CAMPAIGN_TRANSPORT, policy_of
from gateway.api.keys import DB
from gateway.keys import SETTINGS

__all__ = ["setup_campaigns", "smtp_accounts"]


def smtp_accounts(app: web.Application) -> CampaignSmtp:
    """``[smtp]`` as account ``default`` plus the named ``[smtp_accounts.<name>]``."""
    settings = app[SETTINGS]
    accounts = dict(settings.smtp_accounts)
    if settings.smtp is not None:
        accounts.setdefault("default", settings.smtp)
    return CampaignSmtp(accounts)


async def _campaigns(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    transport = smtp_accounts(app)
    app[CAMPAIGN_TRANSPORT] = transport
    runner = CampaignRunner(
        app[DB],
        transport,
        policy_of(app),
        lease_seconds=settings.campaign_lease_seconds,
        poll_interval=max(settings.poll_interval, 0.5) * 2,
    )
    app[CAMPAIGN_RUNNER] = runner
    if settings.run_workers:
        runner.start()  # also resumes campaigns a previous process left unfinished
    yield
    await runner.stop()


def setup_campaigns(app: web.Application) -> None:
    app.cleanup_ctx.append(_campaigns)
