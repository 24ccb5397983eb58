"""Call state machine keyed by ``Linkedid`` (every leg of a call shares its first leg's id).

``CallTracker.handle(message, now)`` takes one parsed AMI event and returns the call
events it implies (:class:`CallUpdate`): ``call_started`` when an inbound call first
rings an operator (or an outbound call starts dialling the client), ``call_answered``,
and at the end ``call_missed`` (inbound, not answered) then ``call_ended``.

Ending rule (deterministic): a call ends when its last live leg hangs up.  Its end
events are emitted at once if a ``Cdr`` of its first leg was already seen, otherwise
when that ``Cdr`` arrives or ``cdr_wait`` seconds later (``tick(now)``), whichever is
first; a later ``Cdr`` is ignored.  ``flush()`` ends what is pending (end of a file).
Times come from the event's ``Timestamp`` header (``timestampevents=yes``) when
present, else from ``now`` (receive time).
"""

from __future__ import annotations

import fnmatch
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from connectors.asterisk.model import (
    CallRecord,
    CallUpdate,
    Leg,
    LiveCall,
    channel_extension,
    is_local,
)

__all__ = ["CALL_ID_VARIABLE", "CallTracker"]

CALL_ID_VARIABLE = "CRMHUB_CALL_ID"
Msg = Mapping[str, str]
_LONG_DIGITS = re.compile(r"\d{7,}")
_FAILED = {"CHANUNAVAIL", "CONGESTION", "INVALIDARGS", "DONTCALL", "TORTURE"}
_KEEP_FINISHED = 20_000


class CallTracker:
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
        self._handlers: dict[str, Callable[[Msg, float, list[CallUpdate]], None]] = {
            "Newchannel": self._newchannel,
            "NewCallerid": self._touch,
            "NewConnectedLine": self._touch,
            "Newstate": self._newstate,
            "Rename": self._rename,
            "DialBegin": self._dialbegin,
            "DialEnd": self._dialend,
            "BridgeEnter": self._bridgeenter,
            "HangupRequest": self._hanguprequest,
            "Hangup": self._hangup,
            "Cdr": self._cdr,
            "QueueCallerJoin": self._queuejoin,
            "AgentCalled": self._agent,
            "AgentRingNoAnswer": self._agent,
            "AgentConnect": self._agent,
            "AgentComplete": self._agent,
            "QueueCallerAbandon": self._agent,
            "BlindTransfer": self._transfer,
            "AttendedTransfer": self._transfer,
            "OriginateResponse": self._originate_response,
            "VarSet": self._varset,
        }

    # ------------------------------------------------------------------ public
    @property
    def wanted(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def expect_originate(self, action_id: str, crm_call_id: str) -> None:
        """Our ``Originate`` ActionID -> our call id (matched on ``OriginateResponse``)."""
        self._originate_ids[action_id] = crm_call_id
        if len(self._originate_ids) > 10_000:
            self._originate_ids.pop(next(iter(self._originate_ids)))

    def handle(self, msg: Msg, now: float) -> list[CallUpdate]:
        handler = self._handlers.get(msg.get("Event", ""))
        if handler is None:
            return []
        rx = now
        ts = msg.get("Timestamp")
        if ts:
            try:
                now = float(ts)
            except ValueError:
                pass
        self._rx = rx
        out: list[CallUpdate] = []
        handler(msg, now, out)
        return out

    def tick(self, now: float) -> list[CallUpdate]:
        """End the calls whose Cdr did not come within ``cdr_wait`` seconds."""
        out: list[CallUpdate] = []
        for lid, call in list(self._pending.items()):
            if now - self._pending_rx.get(lid, now) >= self.cdr_wait:
                self._emit_end(call, out)
                del self._pending[lid]
                self._pending_rx.pop(lid, None)
        return out

    def flush(self) -> list[CallUpdate]:
        out: list[CallUpdate] = []
        for call in list(self._pending.values()):
            self._emit_end(call, out)
        self._pending.clear()
        self._pending_rx.clear()
        return out

    def live_linkedids(self) -> set[str]:
        return set(self.calls)

    def reconcile(
        self, channels: Iterable[Msg], now: float, asked_at: float | None = None
    ) -> list[CallUpdate]:
        """After a reconnect: ``CoreShowChannel`` items = every live channel on the PBX.

        Tracked calls with no live channel left are ended (with what is known, marked
        ``reconciled``); tracked legs that are gone are marked hung up; live channels of
        unknown calls are adopted so their end is seen.  Calls with events received after
        ``asked_at`` (when ``CoreShowChannels`` was sent) are left alone: the list is older.
        """
        out: list[CallUpdate] = []
        self._rx = now
        asked = now if asked_at is None else asked_at
        live_by_uid = {c.get("Uniqueid", ""): c for c in channels}
        for lid, call in list(self.calls.items()):
            if call.last_rx > asked:
                continue
            for uid in list(call.live):
                if uid not in live_by_uid:
                    call.live.discard(uid)
                    leg = call.legs[uid]
                    leg.hungup_at = leg.hungup_at or now
                    self._uid.pop(uid, None)
            if not call.live:
                call.reconciled = True
                self._end(call, now, out)
                self._pending.pop(lid, None)
                self._pending_rx.pop(lid, None)
                self._emit_end(call, out)
        for uid, ch in live_by_uid.items():
            if uid and uid not in self._uid and uid not in self._finished_uid:
                self._newchannel(ch, now, out)
                adopted = self._leg(uid)
                if adopted is not None and ch.get("ChannelStateDesc") == "Up":
                    adopted.answered_at = now
        return out

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

    # ---------------------------------------------------------------- events
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
        if cv and CALL_ID_VARIABLE in cv:
            for item in cv.split("\n"):
                k, _, v = item.partition("=")
                if k.strip() == CALL_ID_VARIABLE and v:
                    call.crm_call_id = v
                    call.click_to_call = True

    def _touch(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        self._call_of(m, now)

    def _rename(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        leg = self._leg(m.get("Uniqueid", ""))
        if leg is not None and m.get("Newname"):
            leg.channel = m["Newname"]

    def _varset(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        if m.get("Variable") != CALL_ID_VARIABLE or not m.get("Value"):
            return
        found = self._call_of(m, now)
        if found is not None:
            found[0].crm_call_id = m["Value"]
            found[0].click_to_call = True

    def _newstate(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        found = self._call_of(m, now)
        if found is None:
            return
        call, leg = found
        state = m.get("ChannelStateDesc", "")
        leg.state = state
        if state == "Up" and leg.answered_at is None:
            leg.answered_at = now
        elif state == "Ringing" and leg.role == "local" and leg.channel.endswith(";1"):
            if leg.extension and not leg.local_dialed_phone:
                self._rung(call, leg.extension, now, out)  # a Local "virtual operator" rings
        self._chanvars(call, m)

    def _rung(self, call: LiveCall, ext: str, now: float, out: list[CallUpdate]) -> None:
        if ext not in call.extensions_rung:
            call.extensions_rung.append(ext)
        if call.ring_started_at is None:
            call.ring_started_at = now
        if call.direction == "in" and "call_started" not in call.emitted:
            call.emitted.add("call_started")
            out.append(CallUpdate("call_started", now, self._record(call, None)))

    def _dialbegin(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        dest_uid = m.get("DestUniqueid", "")
        dest = self._leg(dest_uid)
        if dest is None:
            return
        call = self.calls[dest.linkedid]
        call.last_rx = self._rx
        dest.dialed_at = now
        src_uid = m.get("Uniqueid")
        if not src_uid:  # Originate: no calling channel, the PBX dials the operator first
            if dest.role == "first":
                call.click_to_call = True
                call.direction = "out"
                dest.role = "operator"
                dest.extension = channel_extension(dest.channel)
                if dest.extension not in call.extensions_rung:
                    call.extensions_rung.append(dest.extension)
            return
        src = self._leg(src_uid)
        if dest.role == "local":
            dest.extension = channel_extension(dest.channel)
            return
        if src is not None and src.role == "local" and src.channel.endswith(";2"):
            one = self._leg_by_channel(call, src.channel[:-1] + "1")
            if one is not None:
                one.local_dialed_phone = True
        digits = _LONG_DIGITS.search(m.get("DialString", ""))
        if dest.role == "external" or (self._trunk_re is None and digits):
            dest.role = "external"
            if call.direction is None and call.first is not None:
                call.direction = "out"
                call.first.extension = call.first.extension or channel_extension(call.first.channel)
            if call.direction == "out" and call.external_leg is None:
                call.external_leg = dest.uniqueid
                call.called_number = m.get("Exten") or m.get("DestExten") or ""
                if not _LONG_DIGITS.search(call.called_number):
                    call.called_number = m.get("DestCallerIDNum", "") or call.called_number
                call.ring_started_at = now
                if "call_started" not in call.emitted:
                    call.emitted.add("call_started")
                    out.append(CallUpdate("call_started", now, self._record(call, None)))
            return
        dest.role = "operator"
        dest.extension = channel_extension(dest.channel)
        self._rung(call, dest.extension, now, out)

    @staticmethod
    def _leg_by_channel(call: LiveCall, channel: str) -> Leg | None:
        for leg in call.legs.values():
            if leg.channel == channel:
                return leg
        return None

    def _dialend(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        dest = self._leg(m.get("DestUniqueid", ""))
        if dest is None:
            return
        call = self.calls[dest.linkedid]
        call.last_rx = self._rx
        status = m.get("DialStatus", "")
        dest.dial_status = status
        if dest.role == "external":
            call.dial_statuses.append(status)
        elif dest.role == "operator" or (dest.role == "local" and not dest.local_dialed_phone):
            if not (call.click_to_call and dest is call.first):
                call.dial_statuses.append(status)
        if status != "ANSWER":
            return
        if dest.answered_at is None:
            dest.answered_at = now
        if call.direction == "in" and dest.role in ("operator", "local"):
            if dest.role == "local" and dest.local_dialed_phone:
                return  # the real phone behind this Local half answered: already counted
            self._answered(call, dest.extension or channel_extension(dest.channel), now, out)
        elif call.direction == "out" and dest.role == "external":
            op = call.first.extension if call.first is not None else None
            self._answered(call, op, now, out)
        elif dest is call.first and call.click_to_call:
            call.operator_answered_at = now

    def _answered(self, call: LiveCall, ext: str | None, now: float, out: list[CallUpdate]) -> None:
        if call.answered_at is None:
            call.answered_at = now
            call.answered_by = ext
            call.emitted.add("call_answered")
            out.append(CallUpdate("call_answered", now, self._record(call, None)))
        elif ext and call.answered_by != ext:
            call.answered_by = ext  # transfer: the last operator who took the call

    def _bridgeenter(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        found = self._call_of(m, now)
        if found is not None and found[1].answered_at is None:
            found[1].answered_at = now

    def _hanguprequest(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        found = self._call_of(m, now, adopt=False)
        if found is None:
            return
        call, leg = found
        leg.hangup_requested_at = leg.hangup_requested_at or now
        if call.hangup_side is None and call.ended_at is None:
            if leg.role == "external" and leg.answered_at is None:
                return  # the client's side rejected the call (busy, unreachable): not a hang-up
            if leg.uniqueid == call.external_leg:
                call.hangup_side = "client"
            elif leg.role in ("operator", "first"):
                call.hangup_side = "operator"

    def _hangup(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        found = self._call_of(m, now, adopt=False)
        if found is None:
            return
        call, leg = found
        leg.hungup_at = now
        leg.cause = m.get("Cause", "")
        leg.cause_txt = m.get("Cause-txt", "")
        call.live.discard(leg.uniqueid)
        if not call.live:
            self._end(call, now, out)
            if self._first_cdr(call) is not None or self.cdr_wait <= 0:
                self._emit_end(call, out)
            else:
                self._pending[call.linkedid] = call
                self._pending_rx[call.linkedid] = self._rx

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

    def _cdr(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        uid = m.get("UniqueID") or m.get("Uniqueid") or ""
        lid = self._uid.get(uid) or self._finished_uid.get(uid)
        if lid is None:
            return
        call = self.calls.get(lid) or self._finished.get(lid)
        if call is None or "call_ended" in call.emitted:
            return
        call.cdrs.append(dict(m))
        if lid in self._pending and self._first_cdr(call) is not None:
            del self._pending[lid]
            self._pending_rx.pop(lid, None)
            self._emit_end(call, out)

    def _queuejoin(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        found = self._call_of(m, now)
        if found is not None:
            found[0].queue = m.get("Queue") or found[0].queue

    def _agent(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        found = self._call_of(m, now)
        if found is None:
            return
        call, _ = found
        ev = m.get("Event", "")
        if ev == "QueueCallerAbandon":
            call.queue_members.append({"event": "abandon", "queue": m.get("Queue")})
            return
        if ev == "AgentComplete":  # Asterisk's own talk time of the queue member (seconds)
            call.queue_talk_seconds = _int(m.get("TalkTime"))
            return
        iface = m.get("Interface", "")
        entry: dict[str, Any] = {
            "event": {"AgentCalled": "called", "AgentRingNoAnswer": "no_answer"}.get(
                ev, "connected"
            ),
            "queue": m.get("Queue"),
            "member": m.get("MemberName"),
            "interface": iface,
            "extension": channel_extension(iface) if iface else None,
        }
        if ev == "AgentRingNoAnswer":  # RingTime in milliseconds here
            entry["ring_ms"] = _int(m.get("RingTime"))
        elif ev == "AgentConnect":  # ... and in seconds here
            entry["ring_ms"] = _int(m.get("RingTime")) * 1000
            entry["hold_s"] = _int(m.get("HoldTime"))
        call.queue_members.append(entry)
        call.queue = m.get("Queue") or call.queue

    def _transfer(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        if m.get("Event") == "BlindTransfer":
            uid = m.get("TransfererUniqueid", "")
            item = {"type": "blind", "to": m.get("Extension"), "context": m.get("Context")}
        else:
            uid = m.get("OrigTransfererUniqueid", "")
            item = {"type": "attended", "to": channel_extension(m.get("TransferTargetChannel", ""))}
        leg = self._leg(uid) or self._leg(m.get("TransfereeUniqueid", ""))
        if leg is None:
            return
        call = self.calls[leg.linkedid]
        item["from"] = leg.extension or channel_extension(leg.channel)
        item["result"] = m.get("Result")
        call.transfers.append(item)

    def _originate_response(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        crm_id = self._originate_ids.pop(m.get("ActionID", ""), None)
        leg = self._leg(m.get("Uniqueid", ""))
        if leg is None:
            return
        call = self.calls[leg.linkedid]
        call.click_to_call = True
        if crm_id and not call.crm_call_id:
            call.crm_call_id = crm_id

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
            if call.ring_started_at is not None:
                ring = _secs((call.answered_at or end) - call.ring_started_at)
            elif call.direction == "in":
                ring = 0
            if call.answered_at is not None:
                ext = call.legs.get(call.external_leg or "")
                stop = end if ext is None or ext.hungup_at is None else ext.hungup_at
                if ext is not None and ext.hangup_requested_at is not None:
                    stop = min(stop, ext.hangup_requested_at)
                talk = _secs(stop - call.answered_at)
                if call.queue_talk_seconds is not None and not call.transfers:
                    talk = call.queue_talk_seconds
            else:
                talk = 0
            outcome = self._outcome(call)
            cdr = self._first_cdr(call)
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


def _int(v: str | None) -> int:
    try:
        return int(float(v or 0))
    except ValueError:
        return 0


def _secs(v: float) -> int:
    return max(0, int(v + 0.5))
