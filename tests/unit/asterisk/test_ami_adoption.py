"""Calls already up when the link comes (issue 10, item 13), on recordings of a real
Asterisk 22 (fixtures/ami/g*-k*, see the README there) and hand-written lists.

``X`` = the link dropped mid-call and came back (a second banner in the transcript);
``X2`` = the second connection alone: crmhub started while the call was up.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.asterisk import dry_run, events_from_transcript
from connectors.asterisk.tracking import CallTracker
from connectors.asterisk.tracking_adopt import parse_duration
from tests.support.ami_truth import AMI_FIXTURES, TRUNK

ANSWERED_101 = dict(
    direction="in",
    caller="+79161234567",
    called_number="74950000101",
    answered_by="101",
    extensions_rung=["101"],
    outcome="answered",
    kinds=["call_started", "call_answered", "call_ended"],
)
# what each recording must give (ring/talk: the PBX's own figures, see each X.json)
ADOPTED: dict[str, dict[str, Any]] = {
    "g_inbound_adopted_after_reconnect": dict(ANSWERED_101, ring_seconds=3, talk_seconds=14),
    "g2_inbound_up_when_crmhub_starts": dict(ANSWERED_101, ring_seconds=3, talk_seconds=14),
    "i_inbound_ringing_adopted": dict(ANSWERED_101, ring_seconds=8, talk_seconds=4),
    "i2_inbound_ringing_when_crmhub_starts": dict(ANSWERED_101, ring_seconds=8, talk_seconds=4),
    "h_queue_adopted_after_reconnect": dict(
        ANSWERED_101,
        called_number="74950000200",
        answered_by="102",
        extensions_rung=["103", "102"],
        ring_seconds=9,
        talk_seconds=5,
    ),
    "h2_queue_up_when_crmhub_starts": dict(
        ANSWERED_101,
        called_number="74950000200",
        answered_by="102",
        extensions_rung=["102"],  # 103's unanswered ring happened before crmhub came
        ring_seconds=9,  # AgentComplete HoldTime
        talk_seconds=5,  # AgentComplete TalkTime
    ),
    "k2_click2call_up_when_crmhub_starts": dict(
        ANSWERED_101,
        direction="out",
        called_number="89161234567",
        # the client's answer time is not in CoreShowChannels, and a click-to-call's
        # BillableSeconds count from the operator's answer: talk counted from the
        # client's leg creation (5 s talk + 2 s ringing), ring unknown (0)
        ring_seconds=0,
        talk_seconds=7,
    ),
    # the call ended while the link was down (its Hangup never came): reconciled at the
    # second login, dated when the first link last spoke (right after the answer)
    "j_call_ended_while_link_down": dict(ANSWERED_101, ring_seconds=3, talk_seconds=0),
}


def _rows(name: str) -> list[dict[str, Any]]:
    return dry_run(AMI_FIXTURES / f"{name}.ami", **TRUNK)


@pytest.mark.parametrize("name", sorted(ADOPTED))
def test_adopted_call_is_logged_answered_by_its_operator(name: str) -> None:
    exp = dict(ADOPTED[name])
    rows = _rows(name)
    assert [r["kind"] for r in rows] == exp.pop("kinds")  # never call_missed
    ended = rows[-1]
    for key, value in exp.items():
        assert ended[key] == value, (key, ended)


@pytest.mark.parametrize("name", sorted(n for n in ADOPTED if n[1] == "2"))
def test_adopted_call_starts_duration_seconds_before_the_login(name: str) -> None:
    events = events_from_transcript(AMI_FIXTURES / f"{name}.ami", pbx_name="office", **TRUNK)
    truth = json.loads((AMI_FIXTURES / f"{name}.json").read_text())
    started, answered, ended = events
    assert started.occurred_at.timestamp() == pytest.approx(truth["call_started_unix"], abs=1.6)
    assert started.occurred_at <= answered.occurred_at <= ended.occurred_at
    assert all(e.meta["adopted"] is True for e in events)
    assert ended.meta["answered_by"] == ended.meta["extensions_rung"][-1]
    assert "reconciled" not in ended.meta  # its end was seen: a real call_ended


def test_second_banner_reconciles_like_the_live_link() -> None:
    """j: the call's Hangup happened while the link was down; after the second banner
    the CoreShowChannels answer is empty, so the call ends - dated when the old link
    last spoke, before the reconnect, not at it."""
    (ended,) = [
        e
        for e in events_from_transcript(AMI_FIXTURES / "j_call_ended_while_link_down.ami", **TRUNK)
        if e.kind.value == "call_ended"
    ]
    truth = json.loads((AMI_FIXTURES / "j_call_ended_while_link_down.json").read_text())
    assert ended.meta["reconciled"] is True and ended.meta["outcome"] == "answered"
    assert ended.occurred_at.timestamp() < truth["link_dropped_unix"]
    assert ended.occurred_at.timestamp() > truth["call_started_unix"] + 3  # after the answer


def test_without_a_banner_between_no_reconcile_happens() -> None:
    """The same bytes with the reconnect cut out (one link): the call was never seen to
    end, so nothing is derived for its end."""
    raw = (AMI_FIXTURES / "j_call_ended_while_link_down.ami").read_bytes()
    first_link = raw[: raw.index(b"Asterisk Call Manager/", 10)]
    tracker = CallTracker(TRUNK["inbound_contexts"], TRUNK["trunk_channel_patterns"])
    from connectors.asterisk.dry_run import derive_updates

    kinds = [u.kind for u in derive_updates(first_link, tracker)]
    assert kinds == ["call_started", "call_answered"]


def chan(name: str, uid: str, lid: str, **kw: str) -> dict[str, str]:
    return {"Event": "CoreShowChannel", "Channel": name, "Uniqueid": uid, "Linkedid": lid, **kw}


def test_virtual_operator_behind_a_local_channel() -> None:
    """Local/201@virtual-operators answers itself (its ;2 half runs no Dial)."""
    t = CallTracker(["from-pstn"], ["PJSIP/trunk-*"], cdr_wait=0)
    up = dict(ChannelStateDesc="Up", BridgeId="b1")
    ups = t.reconcile(
        [
            chan("PJSIP/trunk-01", "9.1", "9.1", Context="from-pstn", Exten="74950000201",
                 CallerIDNum="+74951234567", Application="Dial", Duration="00:00:20", **up),
            chan("Local/201@virtual-operators-01;1", "9.2", "9.1", Application="AppDial",
                 Duration="00:00:19", **up),
            chan("Local/201@virtual-operators-01;2", "9.3", "9.1", Application="Wait",
                 Duration="00:00:19", ChannelStateDesc="Up", BridgeId=""),
        ],
        1000.0,
    )  # fmt: skip
    assert [u.kind for u in ups] == ["call_started", "call_answered"]
    rec = ups[-1].record
    assert (rec.answered_by, rec.extensions_rung, rec.started_at) == ("201", ("201",), 980.0)
    for uid in ("9.3", "9.2", "9.1"):
        ups = t.handle({"Event": "Hangup", "Uniqueid": uid, "Linkedid": "9.1"}, 1010.0)
    assert [u.kind for u in ups] == ["call_ended"]
    assert (ups[0].record.outcome, ups[0].record.talk_seconds) == ("answered", 29)


def test_up_but_not_bridged_is_not_answered() -> None:
    """The client's leg answered by the PBX (an IVR, a queue still waiting): not answered
    by anyone, so its end is a missed call."""
    t = CallTracker(["from-pstn"], ["PJSIP/trunk-*"], cdr_wait=0)
    ups = t.reconcile(
        [chan("PJSIP/trunk-01", "8.1", "8.1", Context="from-pstn", Exten="74950000200",
              CallerIDNum="+74951234567", ChannelStateDesc="Up", Application="Queue",
              Duration="00:01:05", BridgeId="")],
        500.0,
    )  # fmt: skip
    assert ups == []  # nobody rings yet: nothing to say
    (missed, ended) = t.handle({"Event": "Hangup", "Uniqueid": "8.1", "Linkedid": "8.1"}, 510.0)
    assert (missed.kind, ended.record.outcome, ended.record.started_at) == (
        "call_missed",
        "missed",
        435.0,
    )


def test_reconcile_dates_a_vanished_call_when_the_link_was_last_alive() -> None:
    t = CallTracker(["from-pstn"], ["PJSIP/trunk-*"], cdr_wait=0)
    t.handle(
        {"Event": "Newchannel", "Channel": "PJSIP/trunk-1", "Uniqueid": "7.1", "Linkedid": "7.1",
         "Context": "from-pstn", "Exten": "74950000101", "CallerIDNum": "+74951234567"},
        100.0,
    )  # fmt: skip
    t.handle(
        {"Event": "Newchannel", "Channel": "PJSIP/101-1", "Uniqueid": "7.2", "Linkedid": "7.1"},
        100.0,
    )
    t.handle({"Event": "DialBegin", "Uniqueid": "7.1", "DestUniqueid": "7.2"}, 100.0)
    t.handle(
        {"Event": "DialEnd", "Uniqueid": "7.1", "DestUniqueid": "7.2", "DialStatus": "ANSWER"},
        103.0,
    )
    t.link_lost(130.0)
    (ended,) = t.reconcile([], 200.0, 199.0)
    assert (ended.at, ended.record.talk_seconds, ended.record.answered_by) == (130.0, 27, "101")


@pytest.mark.parametrize(
    ("text", "secs"), [("00:00:08", 8), ("01:02:03", 3723), ("120:00:00", 432000), ("", 0)]
)
def test_parse_duration(text: str, secs: int) -> None:
    assert parse_duration(text) == secs


def test_a_new_leg_of_a_tracked_call_is_not_adopted_as_a_call() -> None:
    t = CallTracker(["from-pstn"], ["PJSIP/trunk-*"], cdr_wait=0)
    first = chan(
        "PJSIP/trunk-01",
        "6.1",
        "6.1",
        Context="from-pstn",
        Exten="74950000101",
        ChannelStateDesc="Up",
    )
    t.handle({**first, "Event": "Newchannel"}, 100.0)
    ups = t.reconcile([first, chan("PJSIP/102-07", "6.7", "6.1", ChannelStateDesc="Up")], 130.0)
    assert ups == [] and t.live_linkedids() == {"6.1"}
