"""Property tests (issue 10 item 18): any AMI traffic, recorded calls with hostile
mutations included, goes through the parser, the call tracker and ``to_event`` to events
or a NormalizeError naming the field, never another exception."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.asterisk import AMIParser, CallTracker, to_event
from connectors.asterisk.normalize import reconcile_event
from crm_core.events import NormalizeError
from tests.support.hostile import HOSTILE_STRINGS, assert_event_ok

DIR = Path(__file__).parents[2] / "fixtures" / "ami"
RAW = {p.name: p.read_bytes() for p in sorted(DIR.glob("*.ami")) if ".sent." not in p.name}


def _messages(data: bytes) -> list[dict[str, str]]:
    parser = AMIParser()
    out = parser.feed(data)
    out.extend(parser.flush())
    return [m for m in out if "Event" in m]


CALLS = {name: _messages(data) for name, data in RAW.items()}
CALLS = {name: msgs for name, msgs in CALLS.items() if msgs}
KEYS = sorted({k for msgs in CALLS.values() for m in msgs for k in m} | {"Timestamp"})
EVENTS = sorted({m["Event"] for msgs in CALLS.values() for m in msgs})
VALUES = st.sampled_from(HOSTILE_STRINGS) | st.text(max_size=20) | st.sampled_from(
    ["1e308", "-1e308", "nan", "inf", "99999999999999999999", "-5", "1795839552.6",
     "ANSWER", "NOANSWER", "Up", "Ringing", "from-pstn", "PJSIP/101-00000001", "101"]
)  # fmt: skip
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def _mutate(
    messages: list[dict[str, str]], edits: list[tuple[str, int, str, str]]
) -> list[dict[str, str]]:
    out = [dict(m) for m in messages]
    for op, where, key, value in edits:
        if not out:
            break
        msg = out[where % len(out)]
        if op == "set":
            msg[key] = value
        elif op == "set_existing" and msg:
            msg[sorted(msg)[where % len(msg)]] = value
        elif op == "delete":
            msg.pop(key, None)
        elif op == "event":
            msg["Event"] = EVENTS[where % len(EVENTS)]
        elif op == "swap":
            j = (where // 7) % len(out)
            out[where % len(out)], out[j] = out[j], out[where % len(out)]
        elif op == "duplicate":
            out.insert(where % len(out), dict(msg))
        elif op == "timestamps":  # a PBX clock gone wrong: every message
            out = [m | {"Timestamp": value} for m in out]
    return out


def run_calls(messages: list[dict[str, str]], reconcile: list[dict[str, str]]) -> None:
    tracker = CallTracker(["from-pstn", "from-trunk"], ["PJSIP/trunk*"], cdr_wait=1.0)
    updates = []
    now = 1_795_839_552.0
    for i, msg in enumerate(messages):
        now += 0.25
        updates += tracker.handle(msg, now)
        if i % 5 == 0:
            updates += tracker.tick(now)
    updates += tracker.reconcile(reconcile, now + 1, now)
    updates += tracker.flush()
    for update in updates:
        try:
            event = to_event(update, "pbx", recording_url_template="rec/{date}/{uniqueid}.wav")
        except NormalizeError as exc:
            assert exc.field, str(exc)
            continue
        assert_event_ok(event)
    assert_event_ok(reconcile_event("pbx", reconcile, now))


EDITS = st.lists(
    st.tuples(
        st.sampled_from(["set", "set_existing", "set_existing", "delete", "event", "swap",
                         "duplicate", "timestamps"]),
        st.integers(min_value=0, max_value=100_000),
        st.sampled_from(KEYS),
        VALUES,
    ),
    max_size=10,
)  # fmt: skip


@PROPS
@given(name=st.sampled_from(sorted(CALLS)), edits=EDITS)
def test_mutated_recorded_calls(name: str, edits: list[tuple[str, int, str, str]]) -> None:
    messages = _mutate(CALLS[name], edits)
    run_calls(messages, [m for m in messages if m.get("Event") == "Newchannel"][:2])


@PROPS
@given(
    st.lists(
        st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8).map(
            lambda d: d | {"Event": d.get("Event", "Newchannel")}
        ),
        max_size=30,
    ),
    st.lists(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5), max_size=3),
)
def test_random_ami_messages(messages: list[dict[str, str]], live: list[dict[str, str]]) -> None:
    run_calls(messages, live)


@PROPS
@given(
    name=st.sampled_from(sorted(RAW)),
    cuts=st.lists(st.tuples(st.floats(0, 1), st.binary(max_size=10)), max_size=5),
)
def test_mutated_byte_streams(name: str, cuts: list[tuple[float, bytes]]) -> None:
    data = bytearray(RAW[name])
    for where, chunk in cuts:
        i = int(where * len(data))
        data[i : i + len(chunk)] = chunk
    parser = AMIParser()
    messages: list[Any] = []
    try:
        for i in range(0, len(data), 97):
            messages += parser.feed(bytes(data[i : i + 97]))
        messages += parser.flush()
    except NormalizeError as exc:
        assert exc.field, str(exc)
        return
    assert all(isinstance(m, dict) for m in messages)
    run_calls([m for m in messages if "Event" in m][:400], [])


@pytest.mark.parametrize("stamp", ["1e308", "-1e308", "inf", "nan", "9" * 20, "-5", "x"])
def test_bad_timestamps_fall_back_to_receive_time(stamp: str) -> None:
    # Found by the property tests: OverflowError/ValueError from datetime.fromtimestamp.
    run_calls([m | {"Timestamp": stamp} for m in CALLS["a_inbound_answered.ami"]], [])
