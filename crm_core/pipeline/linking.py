"""Linking identities: when one event carries contact points of two parties (a Telegram
chat of a lead and the phone of a known client), the chat joins the client."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.events import InboundEvent

if TYPE_CHECKING:
    from crm_core.pipeline.match import Match

__all__ = ["link_identities"]


async def link_identities(s: AsyncSession, event: InboundEvent, m: Match) -> None:
    """Called by ``process_event`` after ``match``; may change ``m`` in place."""
    return None
