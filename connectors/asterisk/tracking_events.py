"""Per-event handlers of the call tracking (one method per AMI event it listens to)."""

from __future__ import annotations

from typing import Any

from connectors.asterisk.model import CallUpdate, Leg, LiveCall, channel_extension
from connectors.asterisk.tracking_base import (
    _LONG_DIGITS,
    CALL_ID_VARIABLE,
    MIXMONITOR_VARIABLE,
    Msg,
    TrackerBase,
    _int,
)

__all__ = ["EventHandlers"]


class EventHandlers(TrackerBase):
    """``_<event>(message, now, out)``: update the state, append derived updates to ``out``."""

    def _touch(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        self._call_of(m, now)

    def _rename(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        leg = self._leg(m.get("Uniqueid", ""))
        if leg is not None and m.get("Newname"):
            leg.channel = m["Newname"]

    def _varset(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        var = m.get("Variable")
        if var not in (CALL_ID_VARIABLE, MIXMONITOR_VARIABLE) or not m.get("Value"):
            return
        found = self._call_of(m, now)
        if found is None:
            return
        if var == MIXMONITOR_VARIABLE:
            found[0].recording_file = m["Value"].strip()
            return
        found[0].crm_call_id = m["Value"]
        found[0].click_to_call = True

    def _mixmonitor(self, m: Msg, now: float, out: list[CallUpdate]) -> None:
        """``Newexten`` running ``MixMonitor(file,options,command)`` (read class dialplan)
        and ``MixMonitorStart`` (class call, without the file name)."""
        if m.get("Event") == "Newexten":
            if m.get("Application", "").lower() != "mixmonitor":
                return
            name = m.get("AppData", "").split(",", 1)[0].strip()
            found = self._call_of(m, now)
            if found is not None and name and found[0].recording_file is None:
                found[0].recording_file = name  # MIXMONITOR_FILENAME, when seen, wins
            return
        found = self._call_of(m, now)
        if found is not None:
            found[0].recording_started = True

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
            call.queue_hold_seconds = _int(m.get("HoldTime"))
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
