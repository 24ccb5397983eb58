"""The call tracking's state and shared steps: legs by Uniqueid, calls by Linkedid,
classification, the end of a call and the snapshot (:class:`CallRecord`) it yields.

Split from ``tracking.py``: :class:`TrackerBase` holds the state and the steps every
event handler needs; ``tracking_events.py`` has the per-event handlers and
``tracking.py`` the public :class:`CallTracker`.
"""

from __future__ import annotations

import fnmatch
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from connectors.asterisk.model import (
    CallRecord,
    CallUpdate,
    Leg,
    LiveCall,
    is_local,
)

__all__ = ["CALL_ID_VARIABLE", "MIXMONITOR_VARIABLE", "Msg", "TrackerBase"]

CALL_ID_VARIABLE = "CRMHUB_CALL_ID"
MIXMONITOR_VARIABLE = "MIXMONITOR_FILENAME"
Msg = Mapping[str, str]
_LONG_DIGITS = re.compile(r"\d{7,}")
_KEEP_FINISHED = 20_000


class TrackerBase:
    def __init__(
        self,
        inbound_contexts: Iterable[str] = (),
        trunk_patterns: Iterable[str] = (),
        cdr_wait: float = 2.0,
    ) -> None:
        self.inbound_contexts = frozenset(inbound_contexts)
        pats = [fnmatch.translate(p) for p in trunk_patterns]
        self._trunk_re = re.compile("|".join(pats)) if pats else None
        self.cdr_wait = cdr_wait
        self.calls: dict[str, LiveCall] = {}
        self._uid: dict[str, str] = {}  # uniqueid -> linkedid (live legs)
        self._finished: OrderedDict[str, LiveCall] = OrderedDict()  # ended, kept for late Cdrs
        self._finished_uid: OrderedDict[str, str] = OrderedDict()
        self._pending: dict[str, LiveCall] = {}  # ended, waiting for the Cdr
        self._originate_ids: dict[str, str] = {}  # ActionID -> crm call id
        self._pending_rx: dict[str, float] = {}  # linkedid -> receive time of its last Hangup
        self._rx = 0.0
        self._link_lost_at: float | None = None

    # --------------------------------------------------------------- helpers
    def _is_trunk(self, channel: str) -> bool:
        return self._trunk_re is not None and self._trunk_re.match(channel) is not None

    def _leg(self, uid: str) -> Leg | None:
        lid = self._uid.get(uid)
        if lid is None:
            return None
        call = self.calls.get(lid)
        return None if call is None else call.legs.get(uid)

    def _call_of(self, msg: Msg, now: float, adopt: bool = True) -> tuple[LiveCall, Leg] | None:
        uid = msg.get("Uniqueid", "")
        lid = self._uid.get(uid)
        if lid is None:
            if not adopt or not uid or uid in self._finished_uid:
                return None
            self._newchannel(msg, now, [])
            lid = self._uid.get(uid)
            if lid is None:
                return None
        call = self.calls[lid]
        leg = call.legs[uid]
        new_lid = msg.get("Linkedid")
        if new_lid and new_lid != lid:  # linkedid propagated through a bridge (transfer)
            self._move(leg, call, new_lid, now)
            call = self.calls[new_lid]
        call.last_seen = now
        call.last_rx = self._rx
        return call, leg

    def _move(self, leg: Leg, old: LiveCall, new_lid: str, now: float) -> None:
        old.legs.pop(leg.uniqueid, None)
        old.live.discard(leg.uniqueid)
        new = self.calls.get(new_lid)
        if new is None:
            new = self.calls[new_lid] = LiveCall(linkedid=new_lid, started_at=now)
        leg.linkedid = new_lid
        new.legs[leg.uniqueid] = leg
        new.live.add(leg.uniqueid)
        self._uid[leg.uniqueid] = new_lid
        if not old.live:  # a consultation call merged into the client's call
            self.calls.pop(old.linkedid, None)
            for uid in old.legs:
                self._uid.pop(uid, None)

    def _classify(self, call: LiveCall, first: Leg) -> None:
        ch = first.channel
        if first.context in self.inbound_contexts or self._is_trunk(ch):
            call.direction = "in"
        elif not self.inbound_contexts and self._trunk_re is None:
            call.direction = "in" if _LONG_DIGITS.search(first.caller_num) else None
        call.caller_num = first.caller_num if call.direction == "in" else ""
        call.caller_name = first.caller_name if call.direction == "in" else ""
        call.called_number = first.exten if call.direction == "in" else ""
        if call.direction == "in":
            call.external_leg = first.uniqueid

    def _newchannel(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        uid = m.get("Uniqueid", "")
        lid = m.get("Linkedid") or uid
        if not uid or uid in self._uid:
            return
        call = self.calls.get(lid)
        if call is None:
            if lid in self._finished:
                return
            call = self.calls[lid] = LiveCall(linkedid=lid, started_at=now)
        ch = m.get("Channel", "")
        leg = Leg(
            uniqueid=uid,
            channel=ch,
            linkedid=lid,
            created_at=now,
            context=m.get("Context", ""),
            exten=m.get("Exten", ""),
            caller_num=m.get("CallerIDNum", ""),
            caller_name=m.get("CallerIDName", ""),
            state=m.get("ChannelStateDesc", ""),
        )
        call.legs[uid] = leg
        call.live.add(uid)
        call.last_seen = now
        call.last_rx = self._rx
        self._uid[uid] = lid
        if uid == lid and call.first is None:
            leg.role = "first"
            call.first = leg
            self._classify(call, leg)
        elif is_local(ch):
            leg.role = "local"
        elif self._is_trunk(ch):
            leg.role = "external"
        self._chanvars(call, m)

    def _chanvars(self, call: LiveCall, m: Msg) -> None:
        cv = m.get("ChanVariable")
        if cv and (CALL_ID_VARIABLE in cv or MIXMONITOR_VARIABLE in cv):
            for item in cv.split("\n"):
                k, _, v = item.partition("=")
                if k.strip() == CALL_ID_VARIABLE and v:
                    call.crm_call_id = v
                    call.click_to_call = True
                elif k.strip() == MIXMONITOR_VARIABLE and v.strip():
                    call.recording_file = v.strip()  # manager.conf channelvars=MIXMONITOR_FILENAME

    def _end(self, call: LiveCall, now: float, out: list[CallUpdate]) -> None:
        call.ended_at = now
        self.calls.pop(call.linkedid, None)
        for uid in call.legs:
            self._uid.pop(uid, None)
            self._finished_uid[uid] = call.linkedid
        self._finished[call.linkedid] = call
        while len(self._finished) > _KEEP_FINISHED:
            self._finished.popitem(last=False)
        while len(self._finished_uid) > 4 * _KEEP_FINISHED:
            self._finished_uid.popitem(last=False)

    def _first_cdr(self, call: LiveCall) -> dict[str, str] | None:
        uid = call.first.uniqueid if call.first is not None else call.linkedid
        best = None
        for cdr in call.cdrs:
            if cdr.get("UniqueID") == uid:
                if (
                    best is None
                    or cdr.get("DestinationChannel")
                    or not best.get("DestinationChannel")
                ):
                    best = cdr
        return best

    # ---------------------------------------------------------------- output
    def _emit_end(self, call: LiveCall, out: list[CallUpdate]) -> None:
        if "call_ended" in call.emitted or call.direction is None:
            call.emitted.add("call_ended")
            return
        at = call.ended_at or call.last_seen
        rec = self._record(call, at)
        if call.direction == "in" and call.answered_at is None:
            call.emitted.add("call_missed")
            out.append(CallUpdate("call_missed", at, rec))
        call.emitted.add("call_ended")
        out.append(CallUpdate("call_ended", at, rec))

    def _record(self, call: LiveCall, end: float | None) -> CallRecord:
        first = call.first
        ring = talk = None
        outcome = disposition = None
        if end is not None:
            cdr = self._first_cdr(call)
            answered_at, stop = call.answered_at, end
            if answered_at is not None:
                ext = call.legs.get(call.external_leg or "")
                stop = end if ext is None or ext.hungup_at is None else ext.hungup_at
                if ext is not None and ext.hangup_requested_at is not None:
                    stop = min(stop, ext.hangup_requested_at)
                if call.answer_estimated:
                    answered_at = _pbx_answer(call, cdr, answered_at, stop)
            if call.ring_started_at is not None:
                ring = _secs((answered_at or end) - call.ring_started_at)
            elif call.direction == "in":
                ring = 0
            if call.answer_estimated and call.queue_hold_seconds is not None:
                ring = call.queue_hold_seconds  # its wait in the queue, by the PBX
            if answered_at is not None:
                talk = _secs(stop - answered_at)
                if call.queue_talk_seconds is not None and not call.transfers:
                    talk = call.queue_talk_seconds
            else:
                talk = 0
            outcome = self._outcome(call)
            disposition = cdr.get("Disposition") if cdr else None
        side = call.hangup_side
        if end is not None and side is None:
            side = "pbx"
        operator = first.extension if call.direction == "out" and first is not None else None
        return CallRecord(
            linkedid=call.linkedid,
            uniqueid=first.uniqueid if first is not None else call.linkedid,
            direction=call.direction or "in",
            started_at=call.started_at,
            caller_raw=call.caller_num,
            caller_name=call.caller_name,
            called_number=call.called_number,
            extensions_rung=tuple(call.extensions_rung),
            answered_by=call.answered_by,
            operator=operator,
            outcome=outcome,
            ring_seconds=ring,
            talk_seconds=talk,
            hangup_side=side,
            dial_status=call.dial_statuses[-1] if call.dial_statuses else None,
            disposition=disposition,
            crm_call_id=call.crm_call_id,
            click_to_call=call.click_to_call,
            queue=call.queue,
            queue_members=tuple(call.queue_members),
            transfers=tuple(call.transfers),
            ended_at=end,
            reconciled=call.reconciled,
            adopted=call.adopted,
            recording_file=call.recording_file,
            recording_started=call.recording_started or call.recording_file is not None,
        )

    @staticmethod
    def _outcome(call: LiveCall) -> str:
        if call.answered_at is not None:
            return "answered"
        if call.direction == "in":
            return "missed"
        status = call.dial_statuses[-1] if call.dial_statuses else ""
        if status == "BUSY":
            return "busy"
        if status in ("NOANSWER", "CANCEL"):
            return "missed"
        return "failed"


def _pbx_answer(call: LiveCall, cdr: Mapping[str, str] | None, guess: float, stop: float) -> float:
    """An adopted inbound call's answer time from the PBX's own talk time, if it has one:
    a queue member's ``TalkTime``, or the ``BillableSeconds`` of a ``Dial`` (which answers
    the caller when the operator answers).  Never before the guess (the operator's leg
    did not exist before it)."""
    talk: int | None = call.queue_talk_seconds
    if call.direction != "in":
        return guess  # a click-to-call's BillableSeconds count from the operator's answer
    if talk is None and cdr is not None and cdr.get("LastApplication") == "Dial":
        billable = cdr.get("BillableSeconds")
        talk = _int(billable) if billable else None
    return guess if talk is None else max(guess, stop - talk)


def _int(v: str | None) -> int:
    try:
        return int(float(v or 0))
    except ValueError:
        return 0


def _secs(v: float) -> int:
    return max(0, int(v + 0.5))
