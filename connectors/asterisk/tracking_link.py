"""What one AMI link says, message by message, turned into call updates.

The live connector and ``crmhub ingest ami --dry-run`` both read AMI with the one parser
(``protocol.AMIParser``) and hand what it gives to a :class:`LinkFeed` around the one
:class:`CallTracker`, so a replay cannot pass where the live link fails:

* a banner after the first one (a transcript of a reconnect) is a lost link: the link
  was last alive at the previous message (:meth:`CallTracker.link_lost`); the live
  connector calls :meth:`lost` with the last time its socket received bytes;
* a ``CoreShowChannels`` answer (``CoreShowChannel`` items up to
  ``CoreShowChannelsComplete``, one ``ActionID``) reconciles the tracker: calls gone are
  ended, live calls not tracked are adopted.  The live connector receives the items as
  the action's answer and calls :meth:`channels` with them;
* every other event goes to :meth:`CallTracker.handle`.
"""

from __future__ import annotations

from collections.abc import Iterable

from connectors.asterisk.config import DEFAULT_EVENTS
from connectors.asterisk.model import CallUpdate
from connectors.asterisk.protocol import BANNER_KEY
from connectors.asterisk.tracking import CallTracker
from connectors.asterisk.tracking_base import Msg

__all__ = ["LinkFeed", "link_events"]


def link_events(tracker: CallTracker) -> frozenset[str]:
    """The events the parser keeps (list answers carrying an ActionID are always kept)."""
    return tracker.wanted | frozenset(DEFAULT_EVENTS)


class LinkFeed:
    def __init__(self, tracker: CallTracker) -> None:
        self.tracker = tracker
        self.links = 0  # banners seen
        self.last_rx: float | None = None  # when the current link last said something
        self._asked: dict[str, float] = {}  # ActionID -> when its list answer started
        self._items: dict[str, list[Msg]] = {}

    def message(self, msg: Msg, now: float) -> list[CallUpdate]:
        if BANNER_KEY in msg:
            if self.links and self.last_rx is not None:
                self.lost(self.last_rx)
            self.links += 1
            self.last_rx = now
            return []
        self.last_rx = now
        event = msg.get("Event")
        aid = msg.get("ActionID")
        if aid is not None:
            if event is None:
                if msg.get("EventList") == "start":
                    self._asked[aid] = now
                return []
            if event == "CoreShowChannel":
                self._items.setdefault(aid, []).append(msg)
                return []
            if event == "CoreShowChannelsComplete":
                asked = self._asked.pop(aid, now)
                return self.channels(self._items.pop(aid, []), now, asked)
        return self.tracker.handle(msg, now) if event else []

    def lost(self, at: float) -> None:
        """The link went down; it was last heard at ``at``."""
        self.tracker.link_lost(at)
        self._asked.clear()
        self._items.clear()

    def channels(self, items: Iterable[Msg], now: float, asked_at: float) -> list[CallUpdate]:
        """A complete ``CoreShowChannels`` answer asked at ``asked_at``."""
        return self.tracker.reconcile(list(items), now, asked_at)
