"""Nothing a client sends can add AMI headers or channel variables to an Originate:
unsafe ids are refused, line breaks anywhere are refused (issue 10, item 2)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from connectors.asterisk import AsteriskOutbound
from connectors.asterisk.config import AsteriskSettings
from connectors.asterisk.outbound import build_originate
from crm_core.ports import OutboundCommand, OutboundStatus

SETTINGS = AsteriskSettings(name="office", username="crm", secret=SecretStr("s"))
OK: dict[str, Any] = {
    "extension": "101",
    "number": "+79165551234",
    "crm_call_id": "c-1",
    "action_id": "c-1",
}


def originate(**kw: Any) -> dict[str, Any]:
    return build_originate(SETTINGS, **{**OK, **kw})


def test_a_safe_originate_is_built() -> None:
    action = originate(crm_call_id="call-0f3a:1", action_id="call-0f3a:1")
    assert action["Variable"] == ["CRMHUB_CALL_ID=call-0f3a:1"]
    assert action["ActionID"] == "call-0f3a:1"


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("crm_call_id", "k1,CDR(userfield)=x,__EVIL=1", "CRMHUB_CALL_ID"),
        ("crm_call_id", "k1;x", "CRMHUB_CALL_ID"),
        ("crm_call_id", "k1|__EVIL=1", "CRMHUB_CALL_ID"),
        ("crm_call_id", "", "CRMHUB_CALL_ID"),
        ("action_id", "k1\r\nAction: Hangup", "ActionID"),
        ("action_id", "k 1", "ActionID"),
        ("extension", "101,1", "extension"),
        ("extension", "101\nChannel: x", "extension"),
        ("number", "+7916555\r\n1234", "number"),
    ],
)
def test_unsafe_values_are_refused_naming_the_field(field: str, value: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        originate(**{field: value})


def test_caller_id_cannot_add_a_header() -> None:
    action = originate(caller_id='"Sales" <100>\r\nAction: Hangup')
    assert "\r" not in action["CallerID"] and "\n" not in action["CallerID"]


def test_a_control_character_from_the_settings_is_refused_too() -> None:
    bad = SETTINGS.model_copy(update={"outbound_context": "click2call\r\nAction: Hangup"})
    with pytest.raises(ValueError, match="Context contains a line break"):
        build_originate(bad, **OK)


async def test_the_executor_fails_an_unsafe_command_without_sending() -> None:
    sent: list[Any] = []

    def manager() -> Any:
        sent.append("asked for the AMI link")
        return None

    ex = AsteriskOutbound(manager, SETTINGS)
    cmd = OutboundCommand(
        id=1,
        channel="call",
        kind="originate",
        idempotency_key="k1,CDR(userfield)=x,__EVIL=1",
        payload={"extension": "101", "number": "+79165551234"},
    )
    result = await ex.execute(cmd)
    assert result.status is OutboundStatus.FAILED
    assert "is not safe for AMI" in (result.detail or "")
    assert sent == []
