"""Pure step: a tracked call update -> :class:`InboundEvent` (``channel=call``).

``external_id`` is ``"{pbx_name}:{linkedid}"``; each kind is derived once per call,
so a redelivery (replay, reconnect) lands on the same inbox row.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from connectors.asterisk.model import CallRecord, CallUpdate
from crm_core.events import Channel, Direction, EventKind, InboundEvent, NormalizeError
from crm_core.identity import IdentityError, normalize_phone

__all__ = ["client_phone", "reconcile_event", "recording_url", "to_event", "to_summary"]

_KINDS = {
    "call_started": EventKind.CALL_STARTED,
    "call_answered": EventKind.CALL_ANSWERED,
    "call_missed": EventKind.CALL_MISSED,
    "call_ended": EventKind.CALL_ENDED,
}


def client_phone(rec: CallRecord, region: str = "RU") -> str | None:
    """The client's number in E.164 (inbound: the caller, outbound: who was dialled)."""
    raw = rec.caller_raw if rec.direction == "in" else rec.called_number
    if not raw or not any(ch.isdigit() for ch in raw):
        return None
    try:
        return normalize_phone(raw, region).e164
    except IdentityError:
        return None  # anonymous, <unknown>, an internal extension...


def recording_url(rec: CallRecord, template: str | None, pbx_name: str) -> str | None:
    """The templated URL of the call's recording, only when the PBX recorded it
    (MixMonitor's file seen, or ``MixMonitorStart``); ``{filename}``/``{basename}`` need
    the file's name, so without it there is no URL."""
    if not template or rec.outcome != "answered" or not rec.recording_started:
        return None
    fields = {"filename", "basename"}
    if rec.recording_file is None and any(f"{{{f}" in template for f in fields):
        return None
    start = datetime.fromtimestamp(rec.started_at, UTC)
    filename = rec.recording_file or ""
    try:
        return template.format(
            linkedid=rec.linkedid,
            uniqueid=rec.uniqueid,
            pbx=pbx_name,
            date=start.strftime("%Y/%m/%d"),
            year=start.strftime("%Y"),
            month=start.strftime("%m"),
            day=start.strftime("%d"),
            filename=filename,
            basename=PurePosixPath(filename).name,
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise NormalizeError(
            f"recording_url_template {template!r} is not usable: {exc}", "recording_url_template"
        ) from None


def to_event(
    update: CallUpdate,
    pbx_name: str,
    *,
    region: str = "RU",
    recording_url_template: str | None = None,
) -> InboundEvent:
    rec = update.record
    kind = _KINDS.get(update.kind)
    if kind is None:
        raise NormalizeError(f"unknown call event kind {update.kind!r}", "kind")
    if not rec.linkedid:
        raise NormalizeError("call without Linkedid", "Linkedid")
    phone = client_phone(rec, region)
    ended = update.kind in ("call_ended", "call_missed")
    meta: dict[str, Any] = {
        "pbx": pbx_name,
        "linkedid": rec.linkedid,
        "direction": rec.direction,
        "caller": phone,
        "caller_raw": rec.caller_raw if rec.direction == "in" else rec.called_number,
        "called_number": rec.called_number,
        "extensions_rung": list(rec.extensions_rung),
        "answered_by": rec.answered_by,
        "click_to_call": rec.click_to_call,
    }
    if rec.direction == "out":
        meta["operator"] = rec.operator
    if rec.crm_call_id:
        meta["crm_call_id"] = rec.crm_call_id
    if rec.queue:
        meta["queue"] = rec.queue
    if ended:
        meta.update(
            outcome=rec.outcome,
            ring_seconds=rec.ring_seconds,
            talk_seconds=rec.talk_seconds,
            hangup_side=rec.hangup_side,
            dial_status=rec.dial_status,
            disposition=rec.disposition,
            recording_url=recording_url(rec, recording_url_template, pbx_name),
            recording_file=rec.recording_file if rec.outcome == "answered" else None,
            queue_members=[dict(m) for m in rec.queue_members],
            transfers=[dict(t) for t in rec.transfers],
        )
        if rec.reconciled:
            meta["reconciled"] = True
    if rec.adopted:  # found up at a login: its start (and answer time) are estimates
        meta["adopted"] = True
    return InboundEvent(
        channel=Channel.CALL,
        kind=kind,
        external_id=f"{pbx_name}:{rec.linkedid}",
        occurred_at=datetime.fromtimestamp(update.at, UTC),
        identities=(f"phone:{phone}",) if phone else (),
        display_name=rec.caller_name or None if rec.direction == "in" else None,
        meta=meta,
        raw=None,
        direction=Direction.INBOUND if rec.direction == "in" else Direction.OUTBOUND,
        source=pbx_name,
    )


def reconcile_event(
    pbx_name: str,
    channels: list[dict[str, str]],
    asked_at: float,
    alive: Mapping[str, Any] | None = None,
) -> InboundEvent:
    """What the PBX said after a login (``CoreShowChannels``): the Linkedids still live.
    The pipeline closes the calls it saw start on this PBX before ``asked_at`` that are
    not among them (they ended while crmhub was down or disconnected).  ``alive`` is
    the connector's last persisted mark (``{"at": unix time, "linkedids": [...]}``): those
    calls were still up at ``at``, so their end is dated then, not at ``asked_at``."""
    live = sorted({c.get("Linkedid") or c.get("Uniqueid") or "" for c in channels} - {""})
    meta: dict[str, Any] = {"pbx": pbx_name, "live_linkedids": live, "asked_at": asked_at}
    if alive and isinstance(alive.get("at"), int | float):
        meta["alive"] = {
            "at": float(alive["at"]),
            "linkedids": [str(x) for x in alive.get("linkedids") or []],
        }
    return InboundEvent(
        channel=Channel.CALL,
        kind=EventKind.CALLS_RECONCILED,
        external_id=f"{pbx_name}:reconciled:{asked_at:.6f}",
        occurred_at=datetime.fromtimestamp(asked_at, UTC),
        meta=meta,
        direction=Direction.INBOUND,
        source=pbx_name,
    )


def to_summary(update: CallUpdate, region: str = "RU") -> dict[str, Any]:
    """The ``crmhub ingest ami FILE --dry-run`` line for one derived event."""
    rec = update.record
    ended = update.kind in ("call_ended", "call_missed")
    return {
        "kind": update.kind,
        "linkedid": rec.linkedid,
        "direction": rec.direction,
        "caller": client_phone(rec, region),
        "extensions_rung": list(rec.extensions_rung),
        "answered_by": rec.answered_by,
        "outcome": rec.outcome if ended else None,
        "ring_seconds": rec.ring_seconds if ended else None,
        "talk_seconds": rec.talk_seconds if ended else None,
        "hangup_side": rec.hangup_side if ended else None,
        "dial_status": rec.dial_status if ended else None,
        "disposition": rec.disposition if ended else None,
        "crm_call_id": rec.crm_call_id,
        "called_number": rec.called_number,
    }
