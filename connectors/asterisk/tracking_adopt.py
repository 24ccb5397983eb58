"""Adopting calls that were already up when the link came (``CoreShowChannels`` after a
login): who called whom, which operator's leg is bridged with the client's, and since
when (each item's ``Duration``), so that such a call ends ``answered`` with its talk time
instead of ``missed``.

What a ``CoreShowChannel`` item cannot say is when the operator answered: the estimate
is when the operator's leg was created (an upper bound of the talk time); at the end the
PBX's own figure replaces it when there is one (``BillableSeconds`` of the ``Cdr`` of a
``Dial``, ``TalkTime`` of a queue's ``AgentComplete``).
"""

from __future__ import annotations

from connectors.asterisk.model import CallUpdate, Leg, LiveCall, channel_extension, is_local
from connectors.asterisk.tracking_base import _LONG_DIGITS, Msg
from connectors.asterisk.tracking_events import EventHandlers

__all__ = ["Adoption", "parse_duration"]


def parse_duration(v: str | None) -> int:
    """``HH:MM:SS`` (hours may exceed 99) or plain seconds -> seconds; 0 if unreadable."""
    try:
        parts = [int(p) for p in (v or "").strip().split(":")]
    except ValueError:
        return 0
    secs = 0
    for p in parts:
        secs = secs * 60 + p
    return max(0, secs)


class Adoption(EventHandlers):
    def _adopt(self, lid: str, items: list[Msg], now: float, out: list[CallUpdate]) -> None:
        items = sorted(
            items,
            key=lambda c: (c.get("Uniqueid") != lid, -parse_duration(c.get("Duration"))),
        )
        for item in items:
            self._newchannel(item, now - parse_duration(item.get("Duration")), [])
        call = self.calls.get(lid)
        if call is None:
            return
        call.adopted = True
        call.last_seen = now
        call.last_rx = self._rx
        legs = {uid: leg for uid, leg in call.legs.items() if uid in call.live}
        info = {c.get("Uniqueid", ""): c for c in items}
        call.started_at = min(leg.created_at for leg in legs.values())
        for leg in legs.values():
            leg.state = info[leg.uniqueid].get("ChannelStateDesc", "")
            if leg.state == "Up":
                leg.answered_at = leg.created_at
        if call.first is None:  # the first leg is gone (a transfer): take the client's
            self._adopt_first(call, legs)
        first = call.first
        if first is None:
            return
        if call.direction is None:
            self._adopt_direction(call, first, legs, info)
        if call.direction == "in":
            self._adopt_inbound(call, first, legs, info, out)
        elif call.direction == "out":
            self._adopt_outbound(call, first, legs, info, out)

    def _adopt_first(self, call: LiveCall, legs: dict[str, Leg]) -> None:
        ordered = sorted(legs.values(), key=lambda g: g.created_at)
        for leg in ordered:
            if leg.context in self.inbound_contexts or self._is_trunk(leg.channel):
                break
        else:
            if not ordered:
                return
            leg = ordered[0]
        leg.role = "first"
        call.first = leg
        self._classify(call, leg)

    def _adopt_direction(
        self, call: LiveCall, first: Leg, legs: dict[str, Leg], info: dict[str, Msg]
    ) -> None:
        """Not inbound by context/trunk: outbound if another leg is the client's (a trunk
        leg, or without trunk settings a dialled leg with a long number)."""
        for leg in legs.values():
            if leg is first or is_local(leg.channel):
                continue
            item = info[leg.uniqueid]
            digits = _LONG_DIGITS.search(item.get("CallerIDNum", "")) or _LONG_DIGITS.search(
                item.get("ConnectedLineNum", "")
            )
            if leg.role == "external" or (self._trunk_re is None and digits):
                leg.role = "external"
                call.direction = "out"
                first.extension = first.extension or channel_extension(first.channel)
                return

    def _adopt_inbound(
        self,
        call: LiveCall,
        first: Leg,
        legs: dict[str, Leg],
        info: dict[str, Msg],
        out: list[CallUpdate],
    ) -> None:
        halves = {leg.channel: leg for leg in legs.values() if is_local(leg.channel)}
        rung: list[Leg] = []
        for leg in sorted(legs.values(), key=lambda g: g.created_at):
            if leg is first or leg.role == "external":
                continue
            leg.extension = channel_extension(leg.channel)
            if not is_local(leg.channel):
                leg.role = "operator"
                rung.append(leg)
            elif leg.channel.endswith(";1"):
                two = halves.get(leg.channel[:-1] + "2")
                leg.local_dialed_phone = (
                    two is not None and info[two.uniqueid].get("Application") == "Dial"
                )
                if not leg.local_dialed_phone:
                    rung.append(leg)  # a "virtual operator" behind a Local channel
        for leg in rung:
            if leg.extension and leg.extension not in call.extensions_rung:
                call.extensions_rung.append(leg.extension)
        if rung:  # a queue rang members since the caller joined it (HoldTime counts so)
            queued = info[first.uniqueid].get("Application") == "Queue"
            since = first.created_at if queued else rung[0].created_at
            self._rung(call, rung[0].extension or "", since, out)
        who = self._answerer(first, legs, info, halves)
        if who is not None and call.answered_at is None:
            call.answer_estimated = True
            self._answered(call, who.extension, max(who.created_at, first.created_at), out)

    def _adopt_outbound(
        self,
        call: LiveCall,
        first: Leg,
        legs: dict[str, Leg],
        info: dict[str, Msg],
        out: list[CallUpdate],
    ) -> None:
        first.role = "operator"
        first.extension = first.extension or channel_extension(first.channel)
        if first.extension not in call.extensions_rung:
            call.extensions_rung.append(first.extension)
        client = next((g for g in legs.values() if g.role == "external"), None)
        if client is None:
            return
        call.external_leg = client.uniqueid
        item = info[client.uniqueid]
        for number in (first.exten, item.get("ConnectedLineNum"), item.get("CallerIDNum")):
            if number and _LONG_DIGITS.search(number):
                call.called_number = number
                break
        item_first = info[first.uniqueid]
        bridge = item.get("BridgeId")
        call.ring_started_at = client.created_at
        if "call_started" not in call.emitted:
            call.emitted.add("call_started")
            out.append(CallUpdate("call_started", client.created_at, self._record(call, None)))
        if client.state == "Up" and bridge and bridge == item_first.get("BridgeId"):
            call.answer_estimated = True
            self._answered(call, first.extension, client.created_at, out)

    @staticmethod
    def _answerer(
        first: Leg, legs: dict[str, Leg], info: dict[str, Msg], halves: dict[str, Leg]
    ) -> Leg | None:
        """The operator's leg bridged with the client's (through Local channel pairs)."""
        if first.state != "Up":
            return None
        here, seen = first, {first.uniqueid}
        for _ in range(8):
            bridge = info[here.uniqueid].get("BridgeId")
            if not bridge:
                return None
            peers = [
                g
                for g in legs.values()
                if g.uniqueid not in seen and info[g.uniqueid].get("BridgeId") == bridge
            ]
            if not peers:
                return None
            peer = peers[0]
            seen.add(peer.uniqueid)
            if not is_local(peer.channel):
                return peer
            other = halves.get(peer.channel[:-1] + ("2" if peer.channel.endswith(";1") else "1"))
            if other is None or not info[other.uniqueid].get("BridgeId"):
                return peer  # a Local "virtual operator" answered itself
            seen.add(other.uniqueid)
            here = other
        return None
