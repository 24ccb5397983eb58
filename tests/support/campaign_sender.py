"""A campaign-sending process for crash tests: ``python -m tests.support.campaign_sender
DB_URL SMTP_PORT CONCURRENCY``.  Runs ``CampaignRunner`` (lease 1 s) until no campaign
is left to send; the test kills it with SIGKILL in the middle and starts it again."""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy import func, select

from connectors.email import SmtpSettings
from connectors.email.campaign_smtp import CampaignSmtp
from crm_core.campaigns import CampaignRunner
from crm_core.db import Database
from crm_core.models import Campaign
from crm_core.services.campaigns import CampaignPolicy


async def main(url: str, port: int, concurrency: int) -> None:
    db = Database(url)
    smtp = SmtpSettings(
        host="127.0.0.1",
        port=port,
        tls="none",
        from_address="news@crm.example",
        timeout=10,
        concurrency=concurrency,
    )
    runner = CampaignRunner(
        db, CampaignSmtp({"default": smtp}), CampaignPolicy(), lease_seconds=1.0
    )
    print("started", flush=True)
    try:
        while True:
            await runner.run_once()
            async with db.sessions() as s:
                left = await s.scalar(
                    select(func.count()).where(Campaign.status.in_(("sending", "scheduled")))
                )
            if not left:
                return
            await asyncio.sleep(0.2)
    finally:
        await runner.stop()
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
