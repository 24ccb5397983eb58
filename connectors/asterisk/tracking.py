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
from collections import defaultdict
from collections.abc import Callable, Iterable

from connectors.asterisk.model import CallUpdate
from connectors.asterisk.tracking_adopt import Adoption
from connectors.asterisk.tracking_base import CALL_ID_VARIABLE, MIXMONITOR_VARIABLE, Msg

__all__ = ["CALL_ID_VARIABLE", "MIXMONITOR_VARIABLE", "CallTracker"]

_MAX_TIMESTAMP = 253_402_214_400.0  # 9999-12-31


class CallTracker(Adoption):
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
            "Newexten": self._mixmonitor,
            "MixMonitorStart": self._mixmonitor,
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

    def link_lost(self, at: float) -> None:
        """The link to the PBX went down; it was last known alive at ``at``.  Calls found
        gone at the next :meth:`reconcile` end then, not when the link came back."""
        self._link_lost_at = at if self._link_lost_at is None else min(self._link_lost_at, at)

    def reconcile(
        self, channels: Iterable[Msg], now: float, asked_at: float | None = None
    ) -> list[CallUpdate]:
        """After a login: ``CoreShowChannel`` items = every live channel on the PBX.

        Tracked calls with no live channel left are ended (with what is known, marked
        ``reconciled``), dated when the link was last known alive (:meth:`link_lost`);
        tracked legs that are gone are marked hung up.  Live calls not tracked are
        adopted (``tracking_adopt``): their ``call_started``/``call_answered`` are derived
        from the list, so their end is logged like any other call's.  Calls with events
        received after ``asked_at`` (when ``CoreShowChannels`` was sent) are left alone:
        the list is older.
        """
        out: list[CallUpdate] = []
        self._rx = now
        asked = now if asked_at is None else asked_at
        lost, self._link_lost_at = self._link_lost_at, None
        live_by_uid = {c.get("Uniqueid", ""): c for c in channels}
        for lid, call in list(self.calls.items()):
            if call.last_rx > asked:
                continue
            end = now if lost is None else min(now, max(lost, call.last_seen))
            for uid in list(call.live):
                if uid not in live_by_uid:
                    call.live.discard(uid)
                    leg = call.legs[uid]
                    leg.hungup_at = leg.hungup_at or end
                    self._uid.pop(uid, None)
            if not call.live:
                call.reconciled = True
                self._end(call, end, out)
                self._pending.pop(lid, None)
                self._pending_rx.pop(lid, None)
                self._emit_end(call, out)
        unknown: dict[str, list[Msg]] = defaultdict(list)
        for uid, ch in live_by_uid.items():
            if uid and uid not in self._uid and uid not in self._finished_uid:
                unknown[ch.get("Linkedid") or uid].append(ch)
        for lid, items in unknown.items():
            if lid in self.calls:  # new legs of a tracked call (made while we were away)
                for ch in items:
                    self._newchannel(ch, now, out)
                    new = self._leg(ch.get("Uniqueid", ""))
                    if new is not None and ch.get("ChannelStateDesc") == "Up":
                        new.answered_at = now
            elif lid not in self._finished:
                self._adopt(lid, items, now, out)
        return out
