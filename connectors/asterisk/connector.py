"""The AMI link to one PBX: connect, log in, filter, track calls, hand events to ingest.

Structure (one ``run()`` task per PBX, cancel it to stop):

* a panoramisk ``Manager`` created inside the running loop (no ``loop=``), with its own
  reconnect logic switched off: we reconnect with capped exponential backoff + jitter;
* panoramisk event callbacks are plain functions that only enqueue (its coroutine
  callbacks lose their exceptions); one consumer task owns the :class:`CallTracker`,
  so events are handled strictly in arrival order;
* derived :class:`InboundEvent`\\ s go through one FIFO to ``await ingest(event)``; on
  :class:`IngestUnavailable` (or any error) the head event is retried with backoff,
  never dropped, so the events of one call stay in order;
* bytes are read by the connector's one AMI parser (``protocol.AMILinkProtocol``) and
  handed, with the ``CoreShowChannels`` answer and the loss of the link, to a
  :class:`LinkFeed` - the same path ``crmhub ingest ami --dry-run`` takes;
* after each login: ``Filter`` (server-side event filter), then ``CoreShowChannels`` to
  reconcile calls that ended while we were away and adopt calls already up;
* while the link is verified, every ``alive_mark_seconds`` the Linkedids of the live
  calls and when the link last spoke are persisted (``StateStore`` key
  ``asterisk:<name>:alive``); the next ``calls_reconciled`` report carries that mark, so
  the pipeline dates a call that ended while crmhub was down (a crash) no later than
  the last moment it was seen alive.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from panoramisk import Manager

from connectors.asterisk.config import AsteriskSettings
from connectors.asterisk.model import CallUpdate
from connectors.asterisk.normalize import reconcile_event, to_event
from connectors.asterisk.outbound import PBXUnavailable, build_originate, send_originate
from connectors.asterisk.protocol import AMILinkProtocol
from connectors.asterisk.tracking import CALL_ID_VARIABLE, MIXMONITOR_VARIABLE, CallTracker
from connectors.asterisk.tracking_link import LinkFeed, link_events
from crm_core.events import InboundEvent
from crm_core.ports import (
    ConnectorHealth,
    ConnectorState,
    Ingest,
    IngestUnavailable,
    StateStore,
)

__all__ = ["AsteriskConnector", "filter_expressions"]

log = logging.getLogger("crmhub.asterisk")
LiveCallback = Callable[[InboundEvent], Any]


def filter_expressions(events: list[str]) -> list[str]:
    """``Filter`` regexes (whitelist, OR-ed) = the ``eventfilter`` lines for manager.conf."""
    out = ["Event: (" + "|".join(sorted(set(events))) + ")"] if events else []
    out.append(f"Variable: {CALL_ID_VARIABLE}")
    # MixMonitor's file: VarSet MIXMONITOR_FILENAME, or Newexten running MixMonitor
    out.append(f"Variable: {MIXMONITOR_VARIABLE}")
    out.append("Application: MixMonitor")
    return out


class _Manager(Manager):
    """panoramisk Manager whose connection loss is reported to us instead of auto-reconnect."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    @property
    def last_rx(self) -> float | None:
        """When the link last received bytes (it was alive then)."""
        proto = getattr(self, "protocol", None)
        return proto.last_rx if isinstance(proto, AMILinkProtocol) else None

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            return  # the awaiting run() sees the exception
        super().connection_made(f)

    def connection_lost(self, exc: Any) -> None:
        self._connected = False
        self.authenticated = False
        pinger: Any = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            self.pinger = None
        while self.awaiting_actions:  # never resend an Originate on the next link
            action = self.awaiting_actions.popleft()
            if not action.future.done():
                action.future.set_exception(PBXUnavailable("connection lost"))
        if not self.lost.done():
            self.lost.set_result(str(exc) if exc else "connection closed by the PBX")


class AsteriskConnector:
    def __init__(
        self,
        settings: AsteriskSettings,
        ingest: Ingest,
        health: ConnectorHealth,
        on_live: LiveCallback | None = None,
        state: StateStore | None = None,
    ) -> None:
        self.settings = settings
        self.ingest = ingest
        self.health = health
        self.on_live = on_live
        self.state = state
        self.tracker = CallTracker(
            settings.inbound_contexts, settings.trunk_channel_patterns, settings.cdr_wait_seconds
        )
        self.feed = LinkFeed(self.tracker)
        self._verified = False  # the current link's CoreShowChannels answer was applied
        self._mark: dict[str, Any] | None = None  # the last "alive" mark persisted
        self._consumed_at = 0.0  # receive time of the last event the tracker has applied
        self._received = 0  # events received (the tracker has applied self.events_in)
        self.manager: _Manager | None = None
        self.connects = 0  # successful logins (metrics)
        self.events_in = 0
        self.delivered = 0
        self._queue: asyncio.Queue[tuple[str, float, Any]] = asyncio.Queue()
        self._out: asyncio.Queue[InboundEvent] = asyncio.Queue()

    # ----------------------------------------------------------------- public
    @property
    def pending_events(self) -> int:
        """Derived events not yet accepted by ingest."""
        return self._out.qsize()

    @property
    def alive_key(self) -> str:
        return f"asterisk:{self.settings.name}:alive"

    async def run(self) -> None:
        await self._load_mark()
        tasks = [
            asyncio.create_task(self._consume(), name=f"ami-consume-{self.settings.name}"),
            asyncio.create_task(self._deliver(), name=f"ami-deliver-{self.settings.name}"),
            asyncio.create_task(self._ticker(), name=f"ami-tick-{self.settings.name}"),
            asyncio.create_task(self._marks(), name=f"ami-alive-{self.settings.name}"),
        ]
        attempt = 0
        try:
            while True:
                try:
                    logged_in = await self._session()
                except Exception as exc:  # never let the link task die
                    log.exception("asterisk %s: session failed", self.settings.name)
                    self._close()
                    self.health.set(ConnectorState.DOWN, f"internal error: {exc!r}")
                    logged_in = False
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    # Python 3.11's wait_for can turn our cancellation into the inner
                    # future's error (a refused connect): never keep reconnecting then.
                    raise asyncio.CancelledError
                attempt = 0 if logged_in else min(attempt + 1, 30)
                cap = self.settings.reconnect_max_seconds
                delay = min(cap, 0.5 * 2.0**attempt) * random.uniform(0.5, 1.0)
                await asyncio.sleep(delay)
        finally:
            self._close()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def originate(
        self,
        *,
        extension: str,
        number: str,
        crm_call_id: str,
        action_id: str,
        caller_id: str | None = None,
    ) -> Mapping[str, Any]:
        """Send an async ``Originate``; raises ``PBXUnavailable``/``OriginateRejected``."""
        action = build_originate(
            self.settings,
            extension=extension,
            number=number,
            crm_call_id=crm_call_id,
            action_id=action_id,
            caller_id=caller_id,
        )
        self.tracker.expect_originate(action_id, crm_call_id)
        return await send_originate(self.manager, action, self.settings.action_timeout_seconds)

    # ---------------------------------------------------------------- session
    def _close(self) -> None:
        m, self.manager = self.manager, None
        if m is not None:
            m.close()

    async def _session(self) -> bool:
        """One connection; returns when it is lost.  True if the login succeeded."""
        s = self.settings
        where = f"{s.host}:{s.port}"
        m = _Manager(
            host=s.host,
            port=s.port,
            username=s.username,
            secret=s.secret.get_secret_value(),
            events="on",
            ping_delay=10**6,  # our own keepalive below
            ping_interval=10**6,
            log=log,
            protocol_factory=functools.partial(AMILinkProtocol, link_events(self.tracker)),
        )
        m.register_event("*", self._on_event)
        self.manager = m
        try:
            await asyncio.wait_for(m.connect(), s.action_timeout_seconds)
            fut = m.authenticated_future
            if fut is None:
                raise ConnectionError("no login sent")
            resp = await asyncio.wait_for(asyncio.shield(fut), s.action_timeout_seconds)
        except (OSError, TimeoutError) as exc:
            self._close()
            reason = f"cannot reach AMI at {where}: {exc or type(exc).__name__}"
            self.health.set(ConnectorState.DOWN, reason)
            log.warning("asterisk %s: %s", s.name, reason)
            return False
        if not resp.success:
            self._close()
            reason = f"AMI login as {s.username!r} refused: {resp.get('Message') or 'error'}"
            self.health.set(ConnectorState.AUTH_FAILED, reason)
            log.error("asterisk %s: %s", s.name, reason)
            return False
        self.connects += 1
        self.health.set(ConnectorState.CONNECTED, None)
        try:
            await self._after_login(m)
        except (OSError, TimeoutError, PBXUnavailable) as exc:
            self._lost(m)
            self._close()
            self.health.set(ConnectorState.RECONNECTING, f"lost during start-up: {exc}")
            return True
        log.info("asterisk %s: connected to %s", s.name, where)
        reason = await self._keepalive(m)
        self._lost(m)
        self._close()
        self.health.set(ConnectorState.RECONNECTING, f"link to {where} lost: {reason}")
        log.warning("asterisk %s: link lost: %s", s.name, reason)
        return True

    async def _action(self, m: _Manager, action: dict[str, Any], as_list: bool | None) -> Any:
        return await asyncio.wait_for(
            m.send_action(action, as_list=as_list), self.settings.action_timeout_seconds
        )

    async def _after_login(self, m: _Manager) -> None:
        s = self.settings
        if s.send_filter and s.event_filter:
            for expr in filter_expressions(s.event_filter):
                resp = await self._action(
                    m, {"Action": "Filter", "Operation": "Add", "Filter": expr}, False
                )
                if not resp.success:
                    log.warning(
                        "asterisk %s: Filter refused (%s); set eventfilter in manager.conf",
                        s.name,
                        resp.get("Message"),
                    )
                    break
        asked_at = time.time()
        resp = await self._action(m, {"Action": "CoreShowChannels"}, True)
        items = resp if isinstance(resp, list) else [resp]
        channels = [dict(_plain(i)) for i in items if i.get("Event") == "CoreShowChannel"]
        self._queue.put_nowait(("reconcile", time.time(), (channels, asked_at)))

    async def _keepalive(self, m: _Manager) -> str:
        s = self.settings
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(m.lost), s.ping_interval_seconds)
            except TimeoutError:
                pass
            try:
                await self._action(m, {"Action": "Ping"}, False)
            except (TimeoutError, PBXUnavailable):
                if m.lost.done():
                    return m.lost.result()
                return f"no answer to Ping within {s.action_timeout_seconds:g} s"

    def _lost(self, m: _Manager) -> None:
        """The link is gone: calls found ended at the next login end when it last spoke."""
        self._queue.put_nowait(("lost", time.time(), m.last_rx or time.time()))

    def _on_event(self, manager: Any, event: Any) -> None:
        """panoramisk callback: plain function, only enqueues."""
        if event.get("Event") == "Shutdown":
            self.health.set(ConnectorState.RECONNECTING, "the PBX is shutting down")
        self._received += 1
        self._queue.put_nowait(("event", time.time(), _plain(event)))

    # ------------------------------------------------------------- pipeline
    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._queue.put_nowait(("tick", time.time(), None))

    async def _consume(self) -> None:
        tracker, feed = self.tracker, self.feed
        while True:
            kind, now, payload = await self._queue.get()
            try:
                updates: list[CallUpdate] = []
                if kind == "event":
                    self.events_in += 1
                    self._consumed_at = now
                    updates = feed.message(payload, now)
                elif kind == "tick":
                    updates = tracker.tick(now)
                elif kind == "lost":
                    self._verified = False
                    feed.lost(payload)
                else:
                    updates = feed.channels(payload[0], now, payload[1])
                for u in updates:
                    await self._emit(u)
                if kind == "reconcile":  # after the calls it ended, in the same order
                    channels, asked_at = payload
                    report = reconcile_event(self.settings.name, channels, asked_at, self._mark)
                    self._out.put_nowait(report)
                    self._verified = True
            except Exception:  # a tracking bug must not stop the link
                log.exception("asterisk %s: cannot handle %s %r", self.settings.name, kind, payload)

    async def _emit(self, update: CallUpdate) -> None:
        s = self.settings
        event = to_event(
            update, s.name, region=s.region, recording_url_template=s.recording_url_template
        )
        if self.on_live is not None:
            try:
                res = self.on_live(event)
                if inspect.isawaitable(res):
                    await res
            except Exception:
                log.exception("asterisk %s: live callback failed", s.name)
        self._out.put_nowait(event)

    # ------------------------------------------------------------ alive marks
    async def _load_mark(self) -> None:
        """The mark a previous process left: what it last saw alive (it may have crashed)."""
        if self.state is None:
            return
        try:
            self._mark = await self.state.get(self.alive_key)
        except Exception:
            log.exception("asterisk %s: cannot read %s", self.settings.name, self.alive_key)

    async def _marks(self) -> None:
        while True:
            await asyncio.sleep(self.settings.alive_mark_seconds)
            await self.mark_alive()

    async def mark_alive(self) -> None:
        """Persist the live calls and when the verified link last spoke (the calls were
        alive then: their Hangup had not come)."""
        m = self.manager
        if self.state is None or m is None or not self._verified:
            return
        live = sorted(self.tracker.live_linkedids())
        if not live and not (self._mark or {}).get("linkedids"):
            return
        if live and time.time() - (m.last_rx or 0.0) > 1.0:
            try:  # a quiet link: make it speak, so "alive at" is now
                await self._action(m, {"Action": "Ping"}, False)
            except (TimeoutError, PBXUnavailable, OSError):
                return  # not known alive now: keep the previous mark
        if m is not self.manager or not self._verified:
            return
        live = sorted(self.tracker.live_linkedids())  # as of the Ping's answer
        at = m.last_rx or time.time()
        if self.events_in < self._received:  # the tracker has not applied all it received
            at = min(at, self._consumed_at)
        mark = {"at": at, "linkedids": live}
        try:
            await self.state.set(self.alive_key, mark)
            self._mark = mark
        except Exception:
            log.exception("asterisk %s: cannot write %s", self.settings.name, self.alive_key)

    async def _deliver(self) -> None:
        while True:
            event = await self._out.get()
            delay = 0.2
            while True:
                try:
                    await self.ingest(event)
                    self.delivered += 1
                    break
                except IngestUnavailable as exc:
                    log.warning("asterisk: ingest unavailable (%s); retry in %.1fs", exc, delay)
                except Exception:
                    log.exception("asterisk: ingest failed for %s; will retry", event.external_id)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 30.0)


def _plain(msg: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in msg.items():
        if k == "content":
            continue
        out[k] = "\n".join(v) if isinstance(v, list) else str(v)
    return out
