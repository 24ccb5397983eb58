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

import math
from collections.abc import Callable, Iterable

from connectors.asterisk.model import CallUpdate
from connectors.asterisk.tracking_base import CALL_ID_VARIABLE, Msg
from connectors.asterisk.tracking_events import EventHandlers

__all__ = ["CALL_ID_VARIABLE", "CallTracker"]

_MAX_TIMESTAMP = 253_402_214_400.0  # 9999-12-31


class CallTracker(EventHandlers):
    def __init__(
        self,
        inbound_contexts: Iterable[str] = (),
        trunk_patterns: Iterable[str] = (),
        cdr_wait: float = 2.0,
    ) -> None:
        super().__init__(inbound_contexts, trunk_patterns, cdr_wait)
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
                stamp = float(ts)
            except ValueError:
                stamp = math.nan
            if 0 < stamp < _MAX_TIMESTAMP:  # not nan, inf, negative or past year 9999
                now = stamp
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
