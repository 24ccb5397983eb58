"""The pydantic schema of ``routing.yaml`` (validation only; compiled by ``conditions``)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "CHANNELS",
    "EVENT_KINDS",
    "STRATEGIES",
    "WEEKDAYS",
    "AssignSpec",
    "ConditionSpec",
    "FileSpec",
    "RuleSpec",
    "TargetSpec",
    "TaskSpecModel",
]

STRATEGIES = ("round_robin", "least_loaded", "weighted", "sticky_owner", "answered_by")
# The pipeline's channels and event kinds (crm_core.events; this package stays pure, a
# test keeps the two in step): a rule naming another one would never match.
CHANNELS = ("call", "email", "webform", "telegram", "vk")
EVENT_KINDS = (
    "call_started",
    "call_answered",
    "call_missed",
    "call_ended",
    "email_received",
    "email_sent",
    "message_received",
    "message_edited",
    "message_sent",
    "callback_query",
    "form_submitted",
    "lead_form_submitted",
    "subscription_changed",
    "ignored",
)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-4]):([0-5]\d)$")


def _listify(value: Any) -> Any:
    if value is None:
        return value
    if isinstance(value, str | int | float | bool):
        return [value]
    return value


def _num_to_str(v: Any) -> Any:
    return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


def _str_items(value: Any) -> Any:
    value = _listify(value)
    if isinstance(value, list):
        return [_num_to_str(v) for v in value]
    return value


StrList = Annotated[list[Annotated[str, Field(min_length=1)]], BeforeValidator(_str_items)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeywordsSpec(_Strict):
    words: StrList = Field(min_length=1)
    fields: list[Literal["subject", "text"]] = Field(default=["subject", "text"], min_length=1)


def _keywords(value: Any) -> Any:
    if isinstance(value, str | list):
        return {"words": value}
    return value


class ConditionSpec(_Strict):
    """One condition; several keys in one mapping must all hold."""

    channel: StrList | None = None
    kind: StrList | None = None
    source: StrList | None = None
    called_number: StrList | None = None
    utm_source: StrList | None = None
    utm_medium: StrList | None = None
    utm_campaign: StrList | None = None
    country: StrList | None = None
    region: StrList | None = None
    email_domain: StrList | None = None
    keywords: Annotated[KeywordsSpec, BeforeValidator(_keywords)] | None = None
    client_segment: StrList | None = None
    client_status: StrList | None = None
    client_kind: list[Literal["company", "person"]] | None = None
    new_client: bool | None = None
    weekday: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None
    time: str | None = None
    any: list[ConditionSpec] | None = Field(default=None, min_length=1)
    all: list[ConditionSpec] | None = Field(default=None, min_length=1)
    not_: ConditionSpec | None = Field(default=None, alias="not")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("client_kind", "weekday", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [v.lower() if isinstance(v, str) else v for v in value]
        return value

    @field_validator("channel", "kind")
    @classmethod
    def _known(cls, value: list[str] | None, info: Any) -> list[str] | None:
        known = CHANNELS if info.field_name == "channel" else EVENT_KINDS
        for v in value or []:
            want = v.strip().lower()
            ok = (
                any(k.startswith(want[:-1]) for k in known) if want.endswith("*") else want in known
            )
            if not ok:
                raise ValueError(f"unknown {info.field_name} {v!r}: use one of {', '.join(known)}")
        return value

    @field_validator("time")
    @classmethod
    def _time_window(cls, value: str | None) -> str | None:
        if value is not None and not _TIME_RE.match(value.strip()):
            raise ValueError("time must be a window 'HH:MM-HH:MM', e.g. '09:00-18:00'")
        return value

    @field_validator("country")
    @classmethod
    def _iso2(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for v in value:
                if len(v) != 2 or not v.isalpha():
                    raise ValueError(f"country {v!r} is not an ISO 3166 alpha-2 code (RU, KZ)")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> ConditionSpec:
        if not self.model_fields_set:
            raise ValueError("empty condition: give at least one key")
        return self


class TargetSpec(_Strict):
    """Who may get the lead: exactly one of user / users / team / list / role."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    user: int | None = None
    users: list[int] | None = Field(default=None, min_length=1)
    team: str | None = None
    list_: str | None = Field(default=None, alias="list")
    role: Literal["manager", "supervisor", "admin"] | None = None
    roles: list[Literal["manager", "supervisor", "admin"]] | None = None
    strategy: Literal["round_robin", "least_loaded", "weighted", "sticky_owner", "answered_by"] = (
        "round_robin"
    )

    @model_validator(mode="after")
    def _one_target(self) -> TargetSpec:
        given = [
            k.rstrip("_")
            for k in ("user", "users", "team", "list_", "role")
            if getattr(self, k) is not None
        ]
        if self.strategy in ("sticky_owner", "answered_by") and not given:
            return self
        if len(given) != 1:
            raise ValueError(
                "give exactly one of user, users, team, list, role"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class AssignSpec(TargetSpec):
    fallback: list[TargetSpec] = Field(default_factory=list)
    queue: str | None = None


class TaskSpecModel(_Strict):
    kind: str = Field(min_length=1)
    title: str = Field(min_length=1)
    due_in_minutes: int | None = Field(default=None, ge=0, le=525600)


class RuleSpec(_Strict):
    id: str = Field(min_length=1, max_length=100)
    description: str | None = None
    when: ConditionSpec | None = None
    assign: AssignSpec
    priority: Literal["low", "normal", "high", "urgent"] | None = None
    tags: StrList = Field(default_factory=list)
    sla_minutes: int | None = Field(default=None, ge=1, le=525600)
    task: TaskSpecModel | None = None
    enabled: bool = True


def _check_tz(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name, e.g. Europe/Moscow)"
        ) from None
    return value


class FileSpec(_Strict):
    version: Literal[1] = 1
    timezone: str = "Europe/Moscow"
    lists: dict[str, list[int]] = Field(default_factory=dict)
    rules: list[RuleSpec] = Field(default_factory=list)
    default: AssignSpec | None = None
    # Who gets a new caller's lead once the call is answered (default: who answered).
    answered_calls: AssignSpec | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _check_tz(value)
