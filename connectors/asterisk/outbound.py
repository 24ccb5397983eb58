"""Click-to-call: the outbox's ``originate`` command -> AMI ``Originate`` (async).

The PBX rings the operator's extension first (``operator_channel_template``), then,
once answered, continues in ``outbound_context`` at ``Exten`` = the client's number in
the PBX's ``dial_format``.  ``Variable: CRMHUB_CALL_ID=...`` and the ActionID (our
idempotency key) let the call tracking tie the resulting call to our call id.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import phonenumbers

from connectors.asterisk.config import AsteriskSettings
from connectors.asterisk.tracking import CALL_ID_VARIABLE
from crm_core.identity import IdentityError, normalize_phone
from crm_core.ports import OutboundCommand, OutboundResult, OutboundStatus

__all__ = [
    "AsteriskOutbound",
    "OriginateRejected",
    "OriginateUnconfirmed",
    "PBXUnavailable",
    "build_originate",
    "dial_string",
]


class PBXUnavailable(ConnectionError):
    """No authenticated AMI link right now (retry later)."""


class OriginateRejected(RuntimeError):
    """The PBX answered ``Response: Error`` (bad channel, no permission...)."""


class OriginateUnconfirmed(RuntimeError):
    """``Originate`` was sent but the PBX did not answer in time: it may be ringing the
    operator already, so it is not sent again (a retry could dial the client twice)."""


# AMI is a line protocol ("Key: value" lines): a CR or LF in a value starts a new header.
# Asterisk splits a channel variable's value on commas (and older versions on "|"), so a
# variable carries a plain token only.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = re.compile(r"[A-Za-z0-9._:@+-]{1,128}")


def _token(value: str, field: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError(
            f"{field} {value!r} is not safe for AMI: use 1-128 characters of "
            "A-Z a-z 0-9 . _ : @ + -"
        )
    return value


def _refuse_control(action: Mapping[str, Any]) -> None:
    for key, value in action.items():
        for item in value if isinstance(value, list) else [value]:
            if _CONTROL.search(str(item)):
                raise ValueError(f"{key} contains a line break or a control character")


def dial_string(e164: str, dial_format: str, region: str = "RU") -> str:
    """``+79165551234`` -> ``89165551234`` (``{national}``), ``+79165551234`` (``{e164}``)..."""
    num = phonenumbers.parse(e164, region)
    national = "".join(
        ch for ch in phonenumbers.format_out_of_country_calling_number(num, region) if ch.isdigit()
    )
    return dial_format.format(
        e164=e164,
        e164_digits=e164.lstrip("+"),
        national=national,
        national_digits=str(num.national_number),
    )


def build_originate(
    settings: AsteriskSettings,
    *,
    extension: str,
    number: str,
    crm_call_id: str,
    action_id: str,
    caller_id: str | None = None,
    timeout_s: int = 30,
) -> dict[str, Any]:
    """The ``Originate`` action fields.  Raises ``ValueError`` naming a bad field: the
    ActionID and the call id must be safe tokens, and no value may hold a line break."""
    _token(str(action_id), "ActionID")
    _token(str(crm_call_id), CALL_ID_VARIABLE)
    ext = str(extension).strip()
    if not ext or not all(ch.isalnum() or ch in "_-." for ch in ext):
        raise ValueError(f"extension {extension!r} is not a valid extension")
    try:
        e164 = normalize_phone(str(number), settings.region).e164
    except IdentityError as exc:
        raise ValueError(f"number: {exc}") from None
    action: dict[str, Any] = {
        "Action": "Originate",
        "ActionID": action_id,
        "Channel": settings.operator_channel_template.format(extension=ext),
        "Context": settings.outbound_context,
        "Exten": dial_string(e164, settings.dial_format, settings.region),
        "Priority": "1",
        "Async": "true",
        "Timeout": str(timeout_s * 1000),
        "Variable": [f"{CALL_ID_VARIABLE}={crm_call_id}"],
    }
    if caller_id:
        action["CallerID"] = caller_id.replace("\r", " ").replace("\n", " ")
    _refuse_control(action)
    return action


class _Originator(Protocol):
    async def originate(
        self,
        *,
        extension: str,
        number: str,
        crm_call_id: str,
        action_id: str,
        caller_id: str | None = None,
    ) -> Mapping[str, Any]: ...


ManagerGetter = Callable[[], Any]


class AsteriskOutbound:
    """``OutboundExecutor`` for ``channel="call"``, command kind ``originate``.

    ``source`` is the :class:`AsteriskConnector` (preferred: it also registers the
    ActionID with the call tracking) or a callable returning a logged-in panoramisk
    ``Manager`` (or None when the PBX is down).
    """

    channel = "call"

    def __init__(self, source: _Originator | ManagerGetter, settings: AsteriskSettings) -> None:
        self.source = source
        self.settings = settings

    async def execute(self, command: OutboundCommand) -> OutboundResult:
        if command.kind != "originate":
            return OutboundResult(OutboundStatus.FAILED, detail=f"unknown command {command.kind!r}")
        p = command.payload
        crm_call_id = str(p.get("crm_call_id") or command.idempotency_key)
        try:
            action = build_originate(
                self.settings,
                extension=str(p.get("extension") or ""),
                number=str(p.get("number") or ""),
                crm_call_id=crm_call_id,
                action_id=command.idempotency_key,
                caller_id=p.get("caller_id"),
            )
        except ValueError as exc:
            return OutboundResult(OutboundStatus.FAILED, detail=str(exc))
        try:
            resp = await self._send(action, p, crm_call_id)
        except (PBXUnavailable, ConnectionError, OSError, TimeoutError) as exc:
            return OutboundResult(
                OutboundStatus.RETRY, detail=f"PBX {self.settings.name} unavailable: {exc}"
            )
        except (OriginateRejected, OriginateUnconfirmed) as exc:
            return OutboundResult(OutboundStatus.FAILED, detail=str(exc))
        return OutboundResult(
            OutboundStatus.SENT,
            external_id=command.idempotency_key,
            detail=str(resp.get("Message") or "Originate queued"),
            meta={
                "crm_call_id": crm_call_id,
                "channel": action["Channel"],
                "exten": action["Exten"],
            },
        )

    async def _send(
        self, action: dict[str, Any], p: Mapping[str, Any], crm_call_id: str
    ) -> Mapping[str, Any]:
        src = self.source
        if hasattr(src, "originate"):
            return await src.originate(
                extension=str(p.get("extension")),
                number=str(p.get("number")),
                crm_call_id=crm_call_id,
                action_id=str(action["ActionID"]),
                caller_id=p.get("caller_id"),
            )
        manager = src()
        return await send_originate(manager, action, self.settings.action_timeout_seconds)


async def send_originate(manager: Any, action: dict[str, Any], wait_s: float) -> Mapping[str, Any]:
    if manager is None or not getattr(manager, "authenticated", False):
        raise PBXUnavailable("not connected")
    fut: Awaitable[Any] = manager.send_action(action, as_list=False)
    try:
        resp = await asyncio.wait_for(fut, wait_s)
    except TimeoutError:
        raise OriginateUnconfirmed(
            f"the PBX did not confirm the call within {wait_s:g} s; not retried so that "
            "the client is not dialled twice (the phone may still ring)"
        ) from None
    if isinstance(resp, list):
        resp = resp[0]
    if str(resp.get("Response", "")).lower() != "success":
        raise OriginateRejected(f"Originate refused: {resp.get('Message') or resp.get('Response')}")
    return {k: v for k, v in resp.items() if k != "content"}
