"""An asyncio TCP server speaking AMI, replaying recorded transcripts (fixtures/ami/*.ami).

Speaks the real protocol: banner, ``Login`` (success, or ``Authentication failed`` and
close), responses carrying the ActionID, ``Permission denied`` before login, ``Ping``,
``Filter``, ``CoreShowChannels`` (the channels live at the current replay position),
``Originate`` (async: queued), ``Logoff``; unknown actions get the real error text.

Events are replayed with their recorded timing multiplied by ``speed`` (0 = all at
once) and carry a ``Timestamp`` header (as with ``timestampevents=yes``) at the
original pace, so durations stay true.  ``drop_after=N`` closes the link after the N-th
replayed event; events up to ``resume_at`` are then "lost" (they happened while the
client was away) and the next session replays from there.

Click-to-call: each accepted ``Originate`` takes the next transcript of
``originate_scripts`` (if any) and replays it on that connection, with the recorded
``OriginateResponse`` answering the received ActionID (as the PBX would).
``written[i]`` is when replayed event ``i`` was written (``time.perf_counter()``).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from connectors.asterisk.protocol import AMIParser, encode_message

__all__ = ["AMIServer", "load_transcript"]

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def load_transcript(path: Path) -> list[tuple[float, dict[str, str]]]:
    """Events of ``X.ami`` with their receive time from ``X.timing.jsonl`` (seconds)."""
    data = path.read_bytes()
    tpath = path.with_name(path.name.removesuffix(".ami") + ".timing.jsonl")
    chunks: list[tuple[float, bytes]] = []
    if tpath.is_file():
        for line in tpath.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("dir") == "rx":
                chunks.append((float(rec["t"]), data[rec["off"] : rec["off"] + rec["len"]]))
    else:
        chunks = [(0.0, data)]
    parser = AMIParser()
    out: list[tuple[float, dict[str, str]]] = []
    for t, chunk in chunks:
        out.extend((t, m) for m in parser.feed(chunk) if "Event" in m)
    return out


@dataclass
class AMIServer:
    events: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    username: str = "crm"
    secret: str = "crmsecret"
    speed: float = 0.0
    drop_after: int | None = None
    resume_at: int | None = None
    originate_error: str | None = None
    originate_silent: bool = False  # a stuck PBX: Originate is read but never answered
    host: str = "127.0.0.1"
    port: int = 0
    position: int = 0
    actions: list[dict[str, str]] = field(default_factory=list)
    sessions: int = 0
    logins_ok: int = 0
    originate_scripts: list[list[tuple[float, dict[str, str]]]] = field(default_factory=list)
    written: dict[int, float] = field(default_factory=dict)
    _replays: dict[asyncio.StreamWriter, asyncio.Task[None]] = field(default_factory=dict)
    _server: asyncio.Server | None = None
    _conns: set[asyncio.StreamWriter] = field(default_factory=set)
    _base: float = field(default_factory=time.time)

    @classmethod
    def from_files(cls, *paths: Path, gap: float = 1.0, **kw: object) -> AMIServer:
        events: list[tuple[float, dict[str, str]]] = []
        offset = 0.0
        for p in paths:
            ev = load_transcript(p)
            events.extend((offset + t, m) for t, m in ev)
            offset += (ev[-1][0] if ev else 0.0) + gap
        return cls(events=events, **kw)  # type: ignore[arg-type]

    async def start(self) -> AMIServer:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        for w in list(self._conns):
            w.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> AMIServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def finished(self) -> bool:
        return self.position >= len(self.events)

    def live_channels(self) -> list[dict[str, str]]:
        live: dict[str, dict[str, str]] = {}
        for _, m in self.events[: self.position]:
            ev, uid = m.get("Event"), m.get("Uniqueid", "")
            if ev == "Newchannel":
                live[uid] = dict(m)
            elif ev in ("Newstate", "NewCallerid", "NewConnectedLine") and uid in live:
                live[uid].update(m)
            elif ev == "Hangup":
                live.pop(uid, None)
        return list(live.values())

    # ----------------------------------------------------------------- session
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        self._conns.add(writer)
        parser = AMIParser()
        replay: asyncio.Task[None] | None = None
        authed = False
        writer.write(BANNER)
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for act in parser.feed(data):
                    self.actions.append(act)
                    name = act.get("Action", "").lower()
                    aid = act.get("ActionID", "")
                    if name == "login":
                        if (
                            act.get("Username") == self.username
                            and act.get("Secret") == self.secret
                        ):
                            authed = True
                            self.logins_ok += 1
                            self._send(writer, _resp(aid, "Success", "Authentication accepted"))
                            replay = asyncio.create_task(self._replay(writer))
                            self._replays[writer] = replay
                        else:
                            self._send(writer, _resp(aid, "Error", "Authentication failed"))
                            await writer.drain()
                            await asyncio.sleep(0.01)
                            return
                    elif not authed:
                        self._send(writer, _resp(aid, "Error", "Permission denied"))
                    elif name == "logoff":
                        self._send(writer, _resp(aid, "Goodbye", "Thanks for all the fish."))
                        await writer.drain()
                        return
                    else:
                        self._answer(writer, name, aid)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if replay is not None:
                replay.cancel()
            task = self._replays.pop(writer, None)
            if task is not None:
                task.cancel()
            self._conns.discard(writer)
            writer.close()

    def _answer(self, w: asyncio.StreamWriter, name: str, aid: str) -> None:
        if name == "ping":
            self._send(
                w, {**_resp(aid, "Success"), "Ping": "Pong", "Timestamp": f"{time.time():.6f}"}
            )
        elif name == "filter":
            self._send(w, _resp(aid, "Success", "Filter Added Successfully"))
        elif name == "coreshowchannels":
            chans = self.live_channels()
            self._send(w, {**_resp(aid, "Success", "Channels will follow"), "EventList": "start"})
            for c in chans:
                item = {"Event": "CoreShowChannel", "ActionID": aid}
                for k in ("Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum"):
                    item[k] = c.get(k, "")
                for k in ("CallerIDName", "ConnectedLineNum", "Context", "Exten"):
                    item[k] = c.get(k, "")
                item.update(Uniqueid=c.get("Uniqueid", ""), Linkedid=c.get("Linkedid", ""))
                self._send(w, item)
            self._send(
                w,
                {
                    "Event": "CoreShowChannelsComplete",
                    "ActionID": aid,
                    "EventList": "Complete",
                    "ListItems": str(len(chans)),
                },
            )
        elif name == "originate":
            if self.originate_silent:
                pass
            elif self.originate_error:
                self._send(w, _resp(aid, "Error", self.originate_error))
            else:
                self._send(w, _resp(aid, "Success", "Originate successfully queued"))
                if self.originate_scripts:
                    self.push(self.originate_scripts.pop(0), aid)
        else:
            self._send(
                w,
                _resp(
                    aid,
                    "Error",
                    f"Invalid/unknown command: {name}. Use Action: ListCommands to show "
                    "available commands.",
                ),
            )

    def push(
        self, script: list[tuple[float, dict[str, str]]], action_id: str | None = None
    ) -> None:
        """Append a recorded call (happening now) and replay it on the logged-in links;
        with ``action_id`` its ``OriginateResponse`` answers that Originate."""
        shift = time.time() - self._base - (script[0][0] if script else 0.0)
        for t, msg in script:
            if action_id is not None and msg.get("Event") == "OriginateResponse":
                msg = {**msg, "ActionID": action_id}
            self.events.append((t + shift, msg))
        for w, running in list(self._replays.items()):
            if running.done() and not w.is_closing():
                self._replays[w] = asyncio.create_task(self._replay(w))

    async def _replay(self, w: asyncio.StreamWriter) -> None:
        sent = 0
        prev_t = self.events[self.position][0] if not self.finished else 0.0
        while not self.finished:
            t, msg = self.events[self.position]
            if self.speed > 0 and t > prev_t:
                await asyncio.sleep((t - prev_t) * self.speed)
            prev_t = t
            self._send(w, {**msg, "Timestamp": f"{self._base + t:.6f}"})
            self.written[self.position] = time.perf_counter()
            self.position += 1
            sent += 1
            if self.speed == 0 and sent % 50 == 0:
                await w.drain()
            if self.drop_after is not None and sent >= self.drop_after:
                self.drop_after = None
                if self.resume_at is not None:
                    self.position = max(self.position, self.resume_at)
                await w.drain()
                w.close()
                return
        await w.drain()

    @staticmethod
    def _send(w: asyncio.StreamWriter, fields: dict[str, str]) -> None:
        if not w.is_closing():
            w.write(encode_message(fields))


def _resp(aid: str, response: str, message: str | None = None) -> dict[str, str]:
    out = {"Response": response, "ActionID": aid}
    if message is not None:
        out["Message"] = message
    return out
