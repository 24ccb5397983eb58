"""Settings of one PBX (one ``[[asterisk]]`` table in the TOML settings).

``CRMHUB_ASTERISK__0__HOST`` style variables are resolved by the gateway's settings
loader into this model; it only validates.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["DEFAULT_EVENTS", "AsteriskSettings"]

# What the call tracking listens to; everything else is filtered on the PBX side.
DEFAULT_EVENTS: tuple[str, ...] = (
    "Newchannel",
    "NewCallerid",
    "NewConnectedLine",
    "Newstate",
    "Rename",
    "DialBegin",
    "DialState",
    "DialEnd",
    "BridgeEnter",
    "BridgeLeave",
    "HangupRequest",
    "Hangup",
    "Cdr",
    "QueueCallerJoin",
    "QueueCallerLeave",
    "QueueCallerAbandon",
    "AgentCalled",
    "AgentConnect",
    "AgentComplete",
    "AgentRingNoAnswer",
    "BlindTransfer",
    "AttendedTransfer",
    "OriginateResponse",
    "MixMonitorStart",
    "FullyBooted",
    "Shutdown",
)

_FIELDS = ("e164", "e164_digits", "national", "national_digits")


class AsteriskSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    host: str = "127.0.0.1"
    port: int = Field(default=5038, ge=1, le=65535)
    username: str = Field(min_length=1)
    secret: SecretStr
    inbound_contexts: list[str] = Field(default_factory=list)
    trunk_channel_patterns: list[str] = Field(default_factory=list)  # fnmatch: "PJSIP/trunk-*"
    operator_channel_template: str = "PJSIP/{extension}"
    outbound_context: str = "click2call"
    # How the PBX wants the client's number: {e164} +79165551234, {e164_digits} 79165551234,
    # {national} 89165551234 (RU trunk prefix 8; other regions: the national significant number
    # with its trunk prefix), {national_digits} 9165551234.
    dial_format: str = "{national}"
    # URL of a call's recording, built only when the PBX recorded the call (MixMonitor):
    # {linkedid} {uniqueid} {pbx} {date} {year} {month} {day} {filename} {basename}
    recording_url_template: str | None = None
    # Local directory where this PBX's recordings are readable (e.g. its monitor directory
    # mounted read-only); GET /api/v1/interactions/{id}/recording serves files from it.
    recordings_dir: str | None = None
    callback_due_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    event_filter: list[str] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
    send_filter: bool = True  # send "Action: Filter" after login (needs write=system)
    reconnect_max_seconds: float = Field(default=30.0, gt=0, le=3600)
    ping_interval_seconds: float = Field(default=15.0, gt=0)
    action_timeout_seconds: float = Field(default=10.0, gt=0)
    cdr_wait_seconds: float = Field(default=2.0, ge=0, le=60)
    region: str = Field(default="RU", min_length=2, max_length=2)
    # how often the live calls are persisted as "still alive" (dates a call that ends
    # while crmhub is down no later than the last moment it was seen)
    alive_mark_seconds: float = Field(default=5.0, gt=0, le=3600)

    @field_validator("operator_channel_template")
    @classmethod
    def _has_extension(cls, v: str) -> str:
        if "{extension}" not in v:
            raise ValueError("operator_channel_template must contain {extension}")
        return v

    @field_validator("dial_format")
    @classmethod
    def _known_fields(cls, v: str) -> str:
        names = re.findall(r"{(\w*)}", v)
        if not names:
            raise ValueError(f"dial_format needs one of {{{'}, {'.join(_FIELDS)}}}")
        for n in names:
            if n not in _FIELDS:
                raise ValueError(f"dial_format: unknown field {{{n}}}; use {_FIELDS}")
        return v

    @field_validator("region")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()
