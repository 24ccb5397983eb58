"""Spam complaints (ARF feedback reports) suppress the complained address.

The email connector recognises a mail provider's feedback report (RFC 5965) and hands
over the unsubscribe tokens found in the returned message's ``List-Unsubscribe``
header (``meta["complaint_tokens"]``).  Only an address named by a token crmhub signed
itself is suppressed: anybody can send a message that looks like a report, nobody can
forge a token, so a fake report cannot take an address out of campaigns.  The token
also names the campaign.
"""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.events import InboundEvent
from crm_core.services import consent

__all__ = ["COMPLAINT_TYPES", "apply_complaint"]

log = structlog.get_logger("crmhub.complaints")

# "not-spam" and "virus" reports are not the recipient refusing mail.
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "other", None})


async def apply_complaint(
    s: AsyncSession, event: InboundEvent, secret_key: str | None
) -> list[str]:
    """Suppress (``complained``) each address a valid token of the report names; the
    addresses suppressed.  Idempotent: a report delivered twice records one change."""
    tokens = event.meta.get("complaint_tokens") or []
    if not tokens or event.meta.get("feedback_type") not in COMPLAINT_TYPES:
        return []
    secret = await consent.signing_secret(s, secret_key)
    done: list[str] = []
    for token in tokens[:5]:
        try:
            email, campaign_id = consent.read_unsubscribe_token(secret, str(token))
        except consent.UnsubscribeTokenError as err:
            log.warning("complaint_token_refused", reason=err.reason)
            continue
        await consent.suppress(s, email, "complained", "arf", campaign_id=campaign_id)
        done.append(email)
    return done
