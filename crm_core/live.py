"""Live events for operators: in-process fan-out, across processes via PostgreSQL
(``gateway/live_bridge.py``: a row per event, NOTIFY with its id).

A subscriber gets the events it may see: each event carries the users it concerns
(``user_ids``) and the owner of the record; the gateway filters by role on top.

Each subscription knows whose it is (``user_id``) and with which credential it was
opened (``credential``: the hash of the user's API token), so the gateway can close
the streams of a deactivated user or a rotated token (:meth:`LiveHub.close`), and
close every stream cleanly on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LiveEvent", "LiveHub", "Subscription", "SubscriptionClosed"]

CHANNEL = "crmhub_live"


@dataclass(frozen=True, slots=True)
class LiveEvent:
    kind: str  # caller_card, call_state, new_lead, new_message, task_reminder, sla_warning ...
    payload: Mapping[str, Any]
    user_ids: tuple[int, ...] | None = None  # None: everyone allowed to see owner_id
    owner_id: int | None = None
    origin: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "payload": dict(self.payload),
            "user_ids": list(self.user_ids) if self.user_ids is not None else None,
            "owner_id": self.owner_id,
        }


class SubscriptionClosed(Exception):
    """The hub closed this subscription (``reason``: revoked, shutdown)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_CLOSED = LiveEvent(kind="", payload={})  # the sentinel put in a closed queue


@dataclass(eq=False)
class Subscription:
    queue: asyncio.Queue[LiveEvent] = field(default_factory=lambda: asyncio.Queue(1000))
    dropped: int = 0
    user_id: int | None = None
    credential: str | None = None
    closed_reason: str | None = None

    def offer(self, event: LiveEvent) -> None:
        if self.closed_reason is not None:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:  # a slow browser must not stall the hub
            self.dropped += 1

    def close(self, reason: str) -> None:
        """Wake the reader with :class:`SubscriptionClosed` (events still queued are dropped)."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(_CLOSED)

    async def next(self) -> LiveEvent:
        """The next event; raises :class:`SubscriptionClosed` once the hub closed it."""
        event = await self.queue.get()
        if event is _CLOSED:
            self.queue.put_nowait(_CLOSED)  # every later call raises too
            raise SubscriptionClosed(self.closed_reason or "closed")
        return event


class LiveHub:
    """Publish/subscribe.  ``publish`` is what the pipeline calls after commit."""

    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self.node_id = uuid.uuid4().hex[:12]
        # set by the PostgreSQL bridge (gateway/live_bridge.py): shares an event with the
        # other hub processes; an error there never fails the publisher
        self.forward: Callable[[LiveEvent], Awaitable[None]] | None = None
        self.closing: str | None = None  # set by close_all() at shutdown

    async def publish(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        user_ids: list[int] | None = None,
        owner_id: int | None = None,
    ) -> None:
        event = LiveEvent(
            kind=kind,
            payload=payload,
            user_ids=tuple(user_ids) if user_ids is not None else None,
            owner_id=owner_id,
            origin=self.node_id,
        )
        self.deliver(event)
        if self.forward is not None:
            with contextlib.suppress(Exception):
                await self.forward(event)

    def deliver(self, event: LiveEvent) -> None:
        for sub in list(self._subs):
            sub.offer(event)

    def deliver_remote(
        self,
        node: str,
        kind: str,
        payload: Mapping[str, Any],
        user_ids: list[int] | None,
        owner_id: int | None,
    ) -> bool:
        """An event another hub process published; False (and nothing delivered) when it
        was this process's own."""
        if node == self.node_id:
            return False
        self.deliver(
            LiveEvent(
                kind=kind,
                payload=payload or {},
                user_ids=tuple(user_ids) if user_ids is not None else None,
                owner_id=owner_id,
                origin=node,
            )
        )
        return True

    @contextlib.asynccontextmanager
    async def subscribe(
        self, *, user_id: int | None = None, credential: str | None = None
    ) -> AsyncIterator[Subscription]:
        sub = Subscription(user_id=user_id, credential=credential)
        if self.closing is not None:
            sub.close(self.closing)
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def streams(self) -> list[Subscription]:
        return list(self._subs)

    def close(self, reason: str, where: Callable[[Subscription], bool] | None = None) -> int:
        """Close the subscriptions ``where`` selects (all by default); how many."""
        n = 0
        for sub in list(self._subs):
            if where is None or where(sub):
                sub.close(reason)
                n += 1
        return n

    def close_all(self, reason: str = "shutdown") -> int:
        """Close every stream and refuse new ones (a new subscription starts closed)."""
        self.closing = reason
        return self.close(reason)
