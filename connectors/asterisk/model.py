"""Plain data of the call tracking: legs, calls, and the frozen snapshot handed to ``normalize``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CallRecord",
    "CallUpdate",
    "Leg",
    "LiveCall",
    "channel_extension",
    "is_local",
]

_SUFFIX_RE = re.compile(r"-[0-9A-Fa-f]+$")


def is_local(channel: str) -> bool:
    return channel.startswith("Local/")


def channel_extension(channel: str) -> str:
    """``PJSIP/101-0000000e``, ``SIP/101-0a1b``, ``IAX2/101-4321``, ``Local/103@agents-00;1``,
    queue interfaces ``Local/103@agents/n`` and ``PJSIP/103`` -> ``101``/``103``."""
    if ";" in channel:
        channel = channel.rsplit(";", 1)[0]
    tech, sep, rest = channel.partition("/")
    if not sep:
        return channel
    if tech == "Local":
        return rest.split("@", 1)[0]
    rest = rest.split("/", 1)[0]
    return _SUFFIX_RE.sub("", rest) or rest


@dataclass(slots=True)
class Leg:
    uniqueid: str
    channel: str
    linkedid: str
    created_at: float
    context: str = ""
    exten: str = ""
    caller_num: str = ""
    caller_name: str = ""
    state: str = ""
    role: str = "other"  # first | operator | local | external | other
    extension: str | None = None
    dialed_at: float | None = None
    answered_at: float | None = None
    hangup_requested_at: float | None = None
    hungup_at: float | None = None
    cause: str = ""
    cause_txt: str = ""
    dial_status: str = ""  # DialEnd status of the dial that targeted this leg
    local_dialed_phone: bool = False  # a Local ;1 whose ;2 half dialed a real phone


@dataclass(slots=True)
class LiveCall:
    linkedid: str
    started_at: float
    direction: str | None = None  # "in" | "out" | None (internal: no events)
    first: Leg | None = None
    legs: dict[str, Leg] = field(default_factory=dict)
    live: set[str] = field(default_factory=set)
    caller_num: str = ""
    caller_name: str = ""
    called_number: str = ""
    click_to_call: bool = False
    crm_call_id: str | None = None
    extensions_rung: list[str] = field(default_factory=list)
    ring_started_at: float | None = None
    answered_at: float | None = None
    answered_by: str | None = None
    external_leg: str | None = None  # uniqueid of the client's leg (inbound: first)
    operator_answered_at: float | None = None
    dial_statuses: list[str] = field(default_factory=list)
    hangup_side: str | None = None
    queue: str | None = None
    queue_talk_seconds: int | None = None
    queue_hold_seconds: int | None = None  # AgentComplete HoldTime: the caller's wait
    queue_members: list[dict[str, Any]] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    cdrs: list[dict[str, str]] = field(default_factory=list)
    emitted: set[str] = field(default_factory=set)
    ended_at: float | None = None
    reconciled: bool = False
    adopted: bool = False  # found live in CoreShowChannels: its start was not seen
    answer_estimated: bool = False  # answered before it was adopted: answered_at is a guess
    last_seen: float = 0.0
    last_rx: float = 0.0  # receive time of its last event (local clock)
    recording_file: str | None = None  # MixMonitor's file, as the PBX names it
    recording_started: bool = False  # MixMonitorStart seen (the file name may be hidden)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What is known about one call when an event is derived (input of ``normalize``)."""

    linkedid: str
    uniqueid: str
    direction: str  # in | out
    started_at: float
    caller_raw: str
    caller_name: str
    called_number: str
    extensions_rung: tuple[str, ...]
    answered_by: str | None
    operator: str | None  # outbound: the operator's extension
    outcome: str | None  # answered | missed | busy | failed (None before the end)
    ring_seconds: int | None
    talk_seconds: int | None
    hangup_side: str | None
    dial_status: str | None
    disposition: str | None
    crm_call_id: str | None
    click_to_call: bool
    queue: str | None
    queue_members: tuple[dict[str, Any], ...]
    transfers: tuple[dict[str, Any], ...]
    ended_at: float | None
    reconciled: bool = False
    adopted: bool = False
    recording_file: str | None = None
    recording_started: bool = False


@dataclass(frozen=True, slots=True)
class CallUpdate:
    kind: str  # call_started | call_answered | call_missed | call_ended
    at: float
    record: CallRecord
