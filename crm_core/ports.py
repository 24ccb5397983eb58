"""Ports: what connectors and the gateway may call in the core without touching storage.

Connectors receive implementations of these protocols from the gateway; unit tests use
fakes (``crm_core.fakes``).  Nothing here imports SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from crm_core.events import InboundEvent

__all__ = [
    "BatchIngest",
    "ConnectorHealth",
    "ConnectorState",
    "HealthRegistry",
    "Ingest",
    "IngestReceipt",
    "IngestUnavailable",
    "LivePublisher",
    "OutboundCommand",
    "OutboundExecutor",
    "OutboundResult",
    "OutboundStatus",
    "StateStore",
]


class IngestUnavailable(RuntimeError):
    """The event could not be made durable; the sender must retry (HTTP 503)."""


@dataclass(frozen=True, slots=True)
class IngestReceipt:
    event_id: int  # inbox row id
    duplicate: bool  # an earlier delivery of the same (channel, kind, external_id)
    status: str = "pending"  # pending | processed | failed
    lead_id: int | None = None
    client_id: int | None = None
    interaction_id: int | None = None
    error: str | None = None


class Ingest(Protocol):
    """Step 2 of the pipeline: make the event durable, then (maybe) wait for steps 3-6.

    Returns once the inbox row is committed.  With ``wait=True`` it also waits (bounded)
    for processing and returns the ids it produced.  Raises :class:`IngestUnavailable`
    when the write cannot commit.
    """

    async def __call__(self, event: InboundEvent, *, wait: bool = False) -> IngestReceipt: ...


class BatchIngest(Protocol):
    """An :class:`Ingest` that also takes a whole batch (a mailbox's initial sync):
    returns, one receipt per event in order, once every event is committed (and, on
    the hub, usually processed in the same transaction).  Raises
    :class:`IngestUnavailable` when not all of them could be made durable."""

    async def __call__(self, event: InboundEvent, *, wait: bool = False) -> IngestReceipt: ...

    async def ingest_batch(self, events: Sequence[InboundEvent]) -> list[IngestReceipt]: ...


class OutboundStatus(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # temporary failure: try again with backoff (or after retry_after)
    FAILED = "failed"  # permanent failure: stop, show the reason


@dataclass(frozen=True, slots=True)
class OutboundCommand:
    id: int
    channel: str  # call, email, telegram, vk
    kind: str  # originate, send_email, send_message
    idempotency_key: str
    payload: Mapping[str, Any]
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class OutboundResult:
    status: OutboundStatus
    external_id: str | None = None  # Message-ID, Telegram message_id, VK message id
    detail: str | None = None
    retry_after: float | None = None
    # e.g. {"unreachable": "telegram:123"} when the bot was blocked
    meta: Mapping[str, Any] = field(default_factory=dict)


class OutboundExecutor(Protocol):
    """Carries out one outbox command on its channel (connectors' ``outbound.py``)."""

    channel: str

    async def execute(self, command: OutboundCommand) -> OutboundResult: ...


class LivePublisher(Protocol):
    """Live events to operators (caller card, new lead, call state, SLA warnings).

    ``user_ids`` restricts who receives it; None means every user allowed to see
    ``client_id``/``lead_id`` in the payload.
    """

    async def publish(
        self, kind: str, payload: Mapping[str, Any], *, user_ids: list[int] | None = None
    ) -> None: ...


class StateStore(Protocol):
    """Small durable key/value state for connectors (IMAP UIDVALIDITY and last UID...)."""

    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def set(self, key: str, value: dict[str, Any]) -> None: ...


class ConnectorState(StrEnum):
    STARTING = "starting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    AUTH_FAILED = "auth_failed"
    DOWN = "down"
    STANDBY = "standby"  # another process holds the leader lock
    DISABLED = "disabled"


@dataclass(slots=True)
class ConnectorHealth:
    name: str
    channel: str
    state: ConnectorState = ConnectorState.STARTING
    reason: str | None = None
    since: datetime = field(default_factory=lambda: datetime.now(UTC))

    def set(self, state: ConnectorState, reason: str | None = None) -> None:
        if state != self.state or reason != self.reason:
            self.state = state
            self.reason = reason
            self.since = datetime.now(UTC)

    @property
    def ok(self) -> bool:
        return self.state in (
            ConnectorState.CONNECTED,
            ConnectorState.STANDBY,
            ConnectorState.DISABLED,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "channel": self.channel,
            "state": self.state.value,
            "reason": self.reason,
            "since": self.since.isoformat(),
        }


class HealthRegistry:
    """Where connectors report their link state; read by ``/readyz`` and ``/metrics``."""

    def __init__(self) -> None:
        self._items: dict[str, ConnectorHealth] = {}

    def register(self, name: str, channel: str) -> ConnectorHealth:
        key = f"{channel}:{name}"
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = ConnectorHealth(name=name, channel=channel)
        return item

    def all(self) -> list[ConnectorHealth]:
        return list(self._items.values())
