from __future__ import annotations

import pytest

from connectors.asterisk.protocol import (
    BANNER_KEY,
    AMIParser,
    AMIProtocolError,
    encode_message,
    parse_block,
)
from tests.support.ami_truth import AMI_FIXTURES

FILES = sorted(p.name for p in AMI_FIXTURES.glob("*.ami") if not p.name.endswith(".sent.ami"))


def _all(data: bytes, size: int) -> tuple[list[dict[str, str]], AMIParser]:
    p = AMIParser()
    out: list[dict[str, str]] = []
    for i in range(0, len(data), size):
        out.extend(p.feed(data[i : i + size]))
    out.extend(p.flush())
    return out, p


@pytest.mark.parametrize("name", FILES)
def test_any_chunking_gives_same_messages(name: str) -> None:
    data = (AMI_FIXTURES / name).read_bytes()
    whole, p = _all(data, len(data) + 1)
    assert p.version == "11.0.0"
    banners = [m for m in whole if BANNER_KEY in m]
    messages = [m for m in whole if BANNER_KEY not in m]
    assert banners and whole[0] == {BANNER_KEY: "11.0.0"}
    assert len(banners) == data.count(b"Asterisk Call Manager/")  # 2 in a reconnect
    assert messages and all(("Event" in m) or ("Response" in m) for m in messages)
    assert len(messages) == data.count(b"\r\n\r\n")
    for size in (1, 2, 7, 1000):
        assert _all(data, size)[0] == whole


def test_fields_and_repeated_keys() -> None:
    p = AMIParser()
    msgs = p.feed(
        b"Asterisk Call Manager/6.0.0\r\nResponse: Success\r\nActionID: x\r\n"
        b"Message: Authentication accepted\r\n\r\nEvent: VarSet\r\nVariable: A\r\nValue: a: b\r\n"
        b"ChanVariable: X=1\r\nChanVariable: Y=2\r\nEmpty: \r\n\r\nEvent: Hang"
    )
    assert p.version == "6.0.0"
    assert msgs.pop(0) == {BANNER_KEY: "6.0.0"}
    assert msgs[0] == {"Response": "Success", "ActionID": "x", "Message": "Authentication accepted"}
    assert msgs[1]["Value"] == "a: b"
    assert msgs[1]["ChanVariable"] == "X=1\nY=2"
    assert msgs[1]["Empty"] == ""
    assert p.pending == len(b"Event: Hang")
    assert p.feed(b"up\r\nCause: 16\r\n\r\n") == [{"Event": "Hangup", "Cause": "16"}]


def test_wanted_filter_skips_unwanted_events() -> None:
    p = AMIParser(wanted={"Hangup"})
    msgs = p.feed(
        b"Event: VarSet\r\nA: 1\r\n\r\nEvent: Hangup\r\nB: 2\r\n\r\nResponse: Success\r\n\r\n"
    )
    assert msgs == [{"Event": "Hangup", "B": "2"}, {"Response": "Success"}]
    assert (p.messages, p.skipped) == (3, 1)


def test_wanted_filter_keeps_list_answers() -> None:
    """Items of an action's list answer carry its ActionID: kept whatever their name."""
    p = AMIParser(wanted={"Hangup"})
    msgs = p.feed(
        b"Event: CoreShowChannel\r\nActionID: 7\r\nChannel: PJSIP/101-01\r\n\r\n"
        b"Event: CoreShowChannelsComplete\r\nActionID: 7\r\nListItems: 1\r\n\r\n"
        b"Event: Newexten\r\nChannel: PJSIP/101-01\r\n\r\n"
    )
    assert [m["Event"] for m in msgs] == ["CoreShowChannel", "CoreShowChannelsComplete"]


def test_second_banner_is_a_reconnect_marker() -> None:
    """A transcript of a reconnect: the old link's unfinished message is dropped, the new
    link's banner is a marker, its login answer a message of its own."""
    p = AMIParser()
    stream = (
        b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: 1\r\n\r\n"
        b"Event: Hangup\r\nUniqueid: 1.1\r\n\r\nEvent: Newstate\r\nChann"
        b"Asterisk Call Manager/11.0.1\r\nResponse: Success\r\nActionID: 2\r\n\r\n"
        b"Event: Hangup\r\nUniqueid: 1.2\r\n\r\n"
    )
    for size in (1, 5, len(stream)):
        p = AMIParser()
        msgs = [m for i in range(0, len(stream), size) for m in p.feed(stream[i : i + size])]
        assert msgs == [
            {BANNER_KEY: "11.0.0"},
            {"Response": "Success", "ActionID": "1"},
            {"Event": "Hangup", "Uniqueid": "1.1"},
            {BANNER_KEY: "11.0.1"},
            {"Response": "Success", "ActionID": "2"},
            {"Event": "Hangup", "Uniqueid": "1.2"},
        ], size
        assert p.version == "11.0.1"


def test_body_lines_without_colon() -> None:
    assert parse_block("Response: Follows\nline one\n--END COMMAND--") == {
        "Response": "Follows",
        "__body__": "line one\n--END COMMAND--",
    }


def test_garbage_without_message_end_is_an_error() -> None:
    p = AMIParser()
    with pytest.raises(AMIProtocolError) as err:
        p.feed(b"x" * 1_000_001)
    assert err.value.field == "stream"


def test_encode_roundtrip() -> None:
    fields: dict[str, str | list[str]] = {"Action": "Originate", "Variable": ["A=1", "B=2"]}
    raw = encode_message(fields)
    assert raw == b"Action: Originate\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n"
    assert AMIParser().feed(raw) == [{"Action": "Originate", "Variable": "A=1\nB=2"}]
