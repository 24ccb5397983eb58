from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from connectors.asterisk import (
    AsteriskOutbound,
    AsteriskSettings,
    CallTracker,
    OriginateRejected,
    PBXUnavailable,
    derive_updates,
    dial_string,
    to_event,
)
from crm_core.events import Channel, Direction, EventKind
from crm_core.ports import OutboundCommand, OutboundStatus
from tests.support.ami_truth import AMI_FIXTURES

SETTINGS = AsteriskSettings(
    name="office",
    username="crm",
    secret=SecretStr("s"),
    inbound_contexts=["from-pstn"],
    trunk_channel_patterns=["PJSIP/trunk-*"],
    recording_url_template="https://pbx/rec/{linkedid}.wav",
)


def _events(scenario: str) -> list[Any]:
    ups = derive_updates(
        (AMI_FIXTURES / f"{scenario}.ami").read_bytes(), CallTracker(["from-pstn"])
    )
    return [
        to_event(u, "office", recording_url_template=SETTINGS.recording_url_template) for u in ups
    ]


def test_inbound_answered_event() -> None:
    started, _answered, ended = _events("a_inbound_answered")
    assert started.kind is EventKind.CALL_STARTED and started.channel is Channel.CALL
    assert started.external_id == ended.external_id == "office:1795839552.3"
    assert started.identities == ("phone:+74951234567",)
    assert started.display_name == "Ivan Petrov"
    assert (
        started.meta["extensions_rung"] == ["101"]
        and started.meta["called_number"] == "74950000101"
    )
    assert ended.meta["outcome"] == "answered" and ended.meta["answered_by"] == "101"
    # the PBX recorded nothing (no MixMonitor): no recording, whatever the template says
    assert ended.meta["recording_url"] is None and ended.meta["recording_file"] is None
    assert ended.direction is Direction.INBOUND


def test_missed_event_has_no_recording() -> None:
    kinds = [e.kind for e in _events("b_inbound_missed_noanswer")]
    assert kinds == [EventKind.CALL_STARTED, EventKind.CALL_MISSED, EventKind.CALL_ENDED]
    assert _events("b_inbound_missed_noanswer")[-1].meta["recording_url"] is None


def test_outbound_event_direction_and_identity() -> None:
    ended = _events("d_click2call_answered")[-1]
    assert ended.direction is Direction.OUTBOUND
    assert ended.identities == ("phone:+79165551234",) and ended.meta["operator"] == "101"


@pytest.mark.parametrize(
    ("fmt", "number", "out"),
    [
        ("{national}", "+79165551234", "89165551234"),
        ("{e164}", "+79165551234", "+79165551234"),
        ("{e164_digits}", "+79165551234", "79165551234"),
        ("9{national_digits}", "+79165551234", "99165551234"),
        ("{national}", "+375291234567", "810375291234567"),
    ],
)
def test_dial_string(fmt: str, number: str, out: str) -> None:
    assert dial_string(number, fmt) == out


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="extension"):
        AsteriskSettings(
            name="x", username="u", secret=SecretStr("s"), operator_channel_template="PJSIP/101"
        )
    with pytest.raises(ValueError, match="unknown field"):
        AsteriskSettings(name="x", username="u", secret=SecretStr("s"), dial_format="{phone}")


class FakeConnector:
    def __init__(self, exc: Exception | None = None) -> None:
        self.exc = exc
        self.calls: list[dict[str, Any]] = []

    async def originate(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(kw)
        if self.exc:
            raise self.exc
        return {"Response": "Success", "Message": "Originate successfully queued"}


def cmd(**payload: Any) -> OutboundCommand:
    return OutboundCommand(
        id=1, channel="call", kind="originate", idempotency_key="ob-1", payload=payload
    )


async def test_outbound_sent() -> None:
    fake = FakeConnector()
    res = await AsteriskOutbound(fake, SETTINGS).execute(
        cmd(extension="101", number="8 916 555-12-34", crm_call_id="c-1")
    )
    assert res.status is OutboundStatus.SENT and res.external_id == "ob-1"
    assert res.meta["exten"] == "89165551234" and res.meta["channel"] == "PJSIP/101"
    assert fake.calls[0]["action_id"] == "ob-1" and fake.calls[0]["crm_call_id"] == "c-1"


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (PBXUnavailable("down"), OutboundStatus.RETRY),
        (OriginateRejected("Originate refused: x"), OutboundStatus.FAILED),
    ],
)
async def test_outbound_errors(exc: Exception, status: OutboundStatus) -> None:
    res = await AsteriskOutbound(FakeConnector(exc), SETTINGS).execute(
        cmd(extension="101", number="+79165551234")
    )
    assert res.status is status
    assert str(exc) in (res.detail or "")


@pytest.mark.parametrize(
    ("payload", "msg"),
    [({"extension": "101", "number": "abc"}, "number"), ({"number": "+79165551234"}, "extension")],
)
async def test_outbound_bad_payload(payload: dict[str, str], msg: str) -> None:
    fake = FakeConnector()
    res = await AsteriskOutbound(fake, SETTINGS).execute(cmd(**payload))
    assert res.status is OutboundStatus.FAILED and msg in (res.detail or "")
    assert fake.calls == []


async def test_outbound_manager_getter_down() -> None:
    res = await AsteriskOutbound(lambda: None, SETTINGS).execute(
        cmd(extension="101", number="+79165551234")
    )
    assert res.status is OutboundStatus.RETRY
