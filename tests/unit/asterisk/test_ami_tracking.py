"""Call tracking on hand-written event sequences (chan_sip, IAX2, Local, transfers...)."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.asterisk.model import channel_extension
from connectors.asterisk.tracking import CallTracker


def ev(name: str, **kw: str) -> dict[str, str]:
    return {"Event": name, **kw}


def leg(channel: str, uid: str, lid: str, **kw: str) -> dict[str, str]:
    return {"Channel": channel, "Uniqueid": uid, "Linkedid": lid, **kw}


class Run:
    def __init__(self, tracker: CallTracker | None = None) -> None:
        self.t = tracker or CallTracker(["from-trunk"], ["SIP/provider-*", "IAX2/trunk*"])
        self.out: list[Any] = []

    def __call__(self, when: float, msg: dict[str, str]) -> None:
        self.out.extend(self.t.handle(msg, when))

    @property
    def kinds(self) -> list[str]:
        return [u.kind for u in self.out]

    def last(self, kind: str = "call_ended") -> Any:
        return [u for u in self.out if u.kind == kind][-1].record


def inbound_sip(
    r: Run, lid: str, caller: str, ext: str, t0: float = 0.0, tech: str = "SIP"
) -> None:
    trunk = f"SIP/provider-{lid[-4:]}" if tech == "SIP" else f"IAX2/trunk-{lid[-4:]}"
    op = f"{tech}/{ext}-0000{lid[-2:]}"
    a, b = lid, lid + "1"
    r(
        t0,
        ev(
            "Newchannel",
            **leg(trunk, a, lid, Context="from-trunk", Exten="4950000", CallerIDNum=caller),
        ),
    )
    r(t0, ev("Newchannel", **leg(op, b, lid, Context="office", CallerIDNum=ext)))
    r(t0, ev("DialBegin", **leg(trunk, a, lid), DestChannel=op, DestUniqueid=b, DialString=ext))
    r(
        t0 + 4,
        ev("DialEnd", **leg(trunk, a, lid), DestChannel=op, DestUniqueid=b, DialStatus="ANSWER"),
    )
    r(t0 + 4, ev("BridgeEnter", **leg(op, b, lid)))


@pytest.mark.parametrize("tech", ["SIP", "IAX2"])
def test_inbound_answered_other_drivers(tech: str) -> None:
    r = Run()
    inbound_sip(r, "1700000000.10", "89161234567", "201", tech=tech)
    trunk = "SIP/provider-0.10" if tech == "SIP" else "IAX2/trunk-0.10"
    r(10, ev("HangupRequest", **leg(f"{tech}/201-000010", "1700000000.101", "1700000000.10")))
    r(10, ev("Hangup", **leg(f"{tech}/201-000010", "1700000000.101", "1700000000.10"), Cause="16"))
    r(10, ev("Hangup", **leg(trunk, "1700000000.10", "1700000000.10"), Cause="16"))
    assert r.kinds == ["call_started", "call_answered"]  # waits for the Cdr
    r(10.5, ev("Cdr", UniqueID="1700000000.10", Disposition="ANSWERED", DestinationChannel="x"))
    assert r.kinds == ["call_started", "call_answered", "call_ended"]
    rec = r.last()
    assert (rec.direction, rec.answered_by, rec.extensions_rung) == ("in", "201", ("201",))
    assert (rec.ring_seconds, rec.talk_seconds, rec.hangup_side) == (4, 6, "operator")
    assert rec.disposition == "ANSWERED"
    assert rec.caller_raw == "89161234567"


def test_missing_cdr_ends_after_wait_and_late_cdr_is_ignored() -> None:
    r = Run()
    inbound_sip(r, "1700000000.20", "+74950001122", "202")
    r(5, ev("Hangup", **leg("SIP/provider-0.20", "1700000000.20", "1700000000.20")))
    r(5, ev("Hangup", **leg("SIP/202-000020", "1700000000.201", "1700000000.20")))
    assert r.t.tick(6.0) == []
    ended = r.t.tick(7.1)
    assert [u.kind for u in ended] == ["call_ended"]
    assert ended[0].record.disposition is None
    assert ended[0].record.hangup_side == "pbx"
    assert r.t.handle(ev("Cdr", UniqueID="1700000000.20", Disposition="ANSWERED"), 8) == []


def test_overlapping_calls_never_mix() -> None:
    r = Run(CallTracker(["from-trunk"], ["SIP/provider-*"], cdr_wait=0))
    inbound_sip(r, "1700000000.30", "+74950000030", "301", t0=0)
    inbound_sip(r, "1700000000.40", "+74950000040", "302", t0=1)
    r(9, ev("Hangup", **leg("SIP/provider-0.40", "1700000000.40", "1700000000.40")))
    r(9, ev("Hangup", **leg("SIP/302-000040", "1700000000.401", "1700000000.40")))
    assert r.last().linkedid == "1700000000.40"
    assert r.last().answered_by == "302"
    assert r.t.live_linkedids() == {"1700000000.30"}


def test_local_virtual_operator_and_anonymous_caller() -> None:
    r = Run(CallTracker(["from-trunk"], ["SIP/provider-*"], cdr_wait=0))
    lid = "1700000000.50"
    r(
        0,
        ev(
            "Newchannel",
            **leg("SIP/provider-0050", lid, lid, Context="from-trunk", CallerIDNum="anonymous"),
        ),
    )
    r(0, ev("Newchannel", **leg("Local/201@virtual-00000001;1", lid + "1", lid)))
    r(0, ev("Newchannel", **leg("Local/201@virtual-00000001;2", lid + "2", lid)))
    r(
        0,
        ev(
            "DialBegin",
            **leg("SIP/provider-0050", lid, lid),
            DestChannel="Local/201@virtual-00000001;1",
            DestUniqueid=lid + "1",
            DialString="Local/201@virtual",
        ),
    )
    assert r.kinds == []
    r(
        0.1,
        ev(
            "Newstate",
            **leg("Local/201@virtual-00000001;1", lid + "1", lid),
            ChannelStateDesc="Ringing",
        ),
    )
    assert r.kinds == ["call_started"]
    r(
        8,
        ev(
            "DialEnd",
            **leg("SIP/provider-0050", lid, lid),
            DestUniqueid=lid + "1",
            DialStatus="NOANSWER",
        ),
    )
    for uid, ch in (
        (lid + "1", "Local/201@virtual-00000001;1"),
        (lid + "2", "Local/201@virtual-00000001;2"),
        (lid, "SIP/provider-0050"),
    ):
        r(8, ev("Hangup", **leg(ch, uid, lid)))
    assert r.kinds == ["call_started", "call_missed", "call_ended"]
    rec = r.last()
    assert (rec.extensions_rung, rec.outcome, rec.ring_seconds) == (("201",), "missed", 8)
    assert rec.caller_raw == "anonymous"


def test_blind_transfer_follows_the_new_operator() -> None:
    r = Run(CallTracker(["from-trunk"], ["SIP/provider-*"], cdr_wait=0))
    lid = "1700000000.60"
    inbound_sip(r, lid, "+74950000060", "101")
    r(
        6,
        ev(
            "BlindTransfer",
            TransfererChannel="SIP/101-000060",
            TransfererUniqueid=lid + "1",
            TransfereeUniqueid=lid,
            Extension="102",
            Context="transfer",
            Result="Success",
        ),
    )
    r(6, ev("Hangup", **leg("SIP/101-000060", lid + "1", lid)))
    r(6, ev("Newchannel", **leg("SIP/102-000061", lid + "2", lid)))
    r(
        6,
        ev(
            "DialBegin",
            **leg("SIP/provider-0.60", lid, lid),
            DestChannel="SIP/102-000061",
            DestUniqueid=lid + "2",
            DialString="SIP/102",
        ),
    )
    r(
        8,
        ev(
            "DialEnd",
            **leg("SIP/provider-0.60", lid, lid),
            DestUniqueid=lid + "2",
            DialStatus="ANSWER",
        ),
    )
    r(20, ev("HangupRequest", **leg("SIP/provider-0.60", lid, lid)))
    r(20, ev("Hangup", **leg("SIP/provider-0.60", lid, lid)))
    r(20, ev("Hangup", **leg("SIP/102-000061", lid + "2", lid)))
    rec = r.last()
    assert rec.extensions_rung == ("101", "102")
    assert rec.answered_by == "102"
    assert rec.transfers[0]["type"] == "blind" and rec.transfers[0]["to"] == "102"
    assert (rec.talk_seconds, rec.hangup_side) == (16, "client")


def test_attended_transfer_merges_consultation_call() -> None:
    """Asterisk 12+ propagates the older Linkedid onto the consultation legs."""
    r = Run(CallTracker(["from-trunk"], ["SIP/provider-*"], cdr_wait=0))
    lid, l2 = "1700000000.70", "1700000000.80"
    inbound_sip(r, lid, "+74950000070", "101")
    r(5, ev("Newchannel", **leg("SIP/101-000080", l2, l2, Context="office", CallerIDNum="101")))
    r(5, ev("Newchannel", **leg("SIP/103-000081", l2 + "1", l2)))
    r(
        5,
        ev(
            "DialBegin",
            **leg("SIP/101-000080", l2, l2),
            DestChannel="SIP/103-000081",
            DestUniqueid=l2 + "1",
            DialString="103",
        ),
    )
    assert r.kinds == ["call_started", "call_answered"]  # internal call: no events
    r(
        7,
        ev(
            "AttendedTransfer",
            OrigTransfererUniqueid=lid + "1",
            TransferTargetChannel="SIP/103-000081",
            Result="Success",
        ),
    )
    r(7, ev("Hangup", **leg("SIP/101-000080", l2, l2)))
    r(7, ev("Hangup", **leg("SIP/101-000070", lid + "1", lid)))
    r(7, ev("BridgeEnter", **leg("SIP/103-000081", l2 + "1", lid)))
    r(30, ev("Hangup", **leg("SIP/provider-0.70", lid, lid)))
    assert r.kinds == ["call_started", "call_answered"]
    r(31, ev("Hangup", **leg("SIP/103-000081", l2 + "1", lid)))
    assert r.kinds == ["call_started", "call_answered", "call_ended"]
    assert r.last().transfers[0]["to"] == "103"
    assert r.t.live_linkedids() == set()


def test_click_to_call_id_from_varset_and_originate_response() -> None:
    r = Run(CallTracker([], ["SIP/provider-*"], cdr_wait=0))
    r.t.expect_originate("act-1", "crm-42")
    lid = "1700000000.90"
    r(0, ev("Newchannel", **leg("SIP/101-000090", lid, lid, Context="office")))
    r(0, ev("DialBegin", DestChannel="SIP/101-000090", DestUniqueid=lid, DialString="SIP/101"))
    r(2, ev("OriginateResponse", ActionID="act-1", Uniqueid=lid, Response="Success"))
    r(2, ev("Newchannel", **leg("SIP/provider-000091", lid + "1", lid)))
    r(
        2,
        ev(
            "DialBegin",
            **leg("SIP/101-000090", lid, lid, Exten="89161234567"),
            DestChannel="SIP/provider-000091",
            DestUniqueid=lid + "1",
            DialString="provider/89161234567",
        ),
    )
    r(
        3,
        ev(
            "DialEnd",
            **leg("SIP/101-000090", lid, lid),
            DestUniqueid=lid + "1",
            DialStatus="NOANSWER",
        ),
    )
    r(3, ev("Hangup", **leg("SIP/provider-000091", lid + "1", lid)))
    r(3, ev("Hangup", **leg("SIP/101-000090", lid, lid)))
    rec = r.last()
    assert (rec.direction, rec.crm_call_id, rec.outcome) == ("out", "crm-42", "missed")
    assert rec.called_number == "89161234567"
    assert r.kinds == ["call_started", "call_ended"]


def test_reconcile_closes_calls_gone_while_disconnected() -> None:
    r = Run()
    inbound_sip(r, "1700000001.10", "+74950000110", "101")
    inbound_sip(r, "1700000001.20", "+74950000120", "102")
    live = [
        leg("SIP/provider-1.20", "1700000001.20", "1700000001.20"),
        leg("SIP/102-000020", "1700000001.201", "1700000001.20"),
        leg("SIP/104-000099", "1700000001.99", "1700000001.99", ChannelStateDesc="Up"),
    ]
    ups = r.t.reconcile(live, 50.0)
    assert [(u.kind, u.record.linkedid) for u in ups] == [("call_ended", "1700000001.10")]
    assert ups[0].record.reconciled and ups[0].record.outcome == "answered"
    assert r.t.live_linkedids() == {"1700000001.20", "1700000001.99"}
    assert r.t.reconcile(live, 51.0) == []  # nothing twice


@pytest.mark.parametrize(
    ("channel", "ext"),
    [
        ("PJSIP/101-0000000e", "101"),
        ("SIP/anna-0a1b2c3d", "anna"),
        ("IAX2/205-4321", "205"),
        ("Local/103@agents-00000000;1", "103"),
        ("Local/103@agents/n", "103"),
        ("PJSIP/103", "103"),
    ],
)
def test_channel_extension(channel: str, ext: str) -> None:
    assert channel_extension(channel) == ext
