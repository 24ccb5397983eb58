"""Test helpers for the website-form connector: fixtures, a recording fake ingest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from crm_core.events import InboundEvent
from crm_core.ports import IngestReceipt, IngestUnavailable

__all__ = ["FIXTURES", "RecordingIngest", "fixture_bytes"]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "forms"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class RecordingIngest:
    """Fake ``Ingest``: unique on (channel, kind, external_id) like the real inbox."""

    events: list[InboundEvent] = field(default_factory=list)
    seen: dict[tuple[str, str, str], int] = field(default_factory=dict)
    unavailable: bool = False
    calls: int = 0

    async def __call__(self, event: InboundEvent, *, wait: bool = False) -> IngestReceipt:
        self.calls += 1
        if self.unavailable:
            raise IngestUnavailable("database is down")
        key = (event.channel.value, event.kind.value, event.external_id)
        if key in self.seen:
            return IngestReceipt(
                event_id=self.seen[key],
                duplicate=True,
                status="processed",
                lead_id=100 + self.seen[key],
                client_id=None,
            )
        self.events.append(event)
        self.seen[key] = len(self.events)
        return IngestReceipt(
            event_id=len(self.events),
            duplicate=False,
            status="processed" if wait else "pending",
            lead_id=100 + len(self.events),
            client_id=None,
        )
