"""A TCP server that plays back one recorded AMI connection as the PBX sent it.

Input: ``X.ami`` (from its banner), ``X.timing.jsonl`` and ``X.sent.ami`` of a recording
whose client logged in and sent ``CoreShowChannels`` (fixtures/ami/g2, h2, i2, k2).  To
the connecting client it sends the banner, the recorded answers to its ``Login`` and
``CoreShowChannels`` (the real ``CoreShowChannel`` items, Duration and BridgeId included)
with the client's own ActionIDs, ``Success`` to ``Filter``/``Ping``, and then the
recorded events at their recorded pace (times ``speed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from connectors.asterisk.protocol import BANNER_KEY, AMIParser, encode_message

__all__ = ["RecordedLink"]

Msg = dict[str, str]


def _messages(path: Path) -> list[tuple[float, Msg]]:
    data = path.read_bytes()
    tpath = path.with_name(path.name.removesuffix(".ami") + ".timing.jsonl")
    parser = AMIParser()
    out: list[tuple[float, Msg]] = []
    for line in tpath.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("dir") == "rx":
            chunk = data[rec["off"] : rec["off"] + rec["len"]]
            out.extend((float(rec["t"]), m) for m in parser.feed(chunk) if BANNER_KEY not in m)
    return out


@dataclass
class RecordedLink:
    path: Path
    speed: float = 1.0
    port: int = 0
    answers: dict[str, list[Msg]] = field(default_factory=dict)  # action -> recorded answer
    events: list[tuple[float, Msg]] = field(default_factory=list)  # after the list answer
    early: list[Msg] = field(default_factory=list)  # events before it (FullyBooted...)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        sent = AMIParser().feed(
            self.path.with_name(self.path.name.removesuffix(".ami") + ".sent.ami").read_bytes()
        )
        action_of = {m["ActionID"]: m["Action"].lower() for m in sent if "ActionID" in m}
        list_at: float | None = None
        for t, m in _messages(self.path):
            aid = m.get("ActionID")
            if aid in action_of:
                self.answers.setdefault(action_of[aid], []).append(m)
                if action_of[aid] == "coreshowchannels":
                    list_at = t
            elif "Event" in m:
                if list_at is None:
                    self.early.append(m)
                else:
                    self.events.append((t - list_at, m))

    async def __aenter__(self) -> RecordedLink:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        parser = AMIParser()
        w.write(b"Asterisk Call Manager/11.0.0\r\n")
        try:
            while data := await reader.read(65536):
                for act in parser.feed(data):
                    name, aid = act.get("Action", "").lower(), act.get("ActionID", "")
                    if name in self.answers:
                        for m in self.answers[name]:
                            w.write(encode_message({**m, "ActionID": aid}))
                        if name == "login":
                            for m in self.early:
                                w.write(encode_message(m))
                        if name == "coreshowchannels":
                            task = asyncio.create_task(self._replay(w))
                            self._tasks.add(task)
                    else:
                        ok = {"Response": "Success", "ActionID": aid}
                        w.write(encode_message({**ok, "Ping": "Pong"} if name == "ping" else ok))
                await w.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                w.close()

    async def _replay(self, w: asyncio.StreamWriter) -> None:
        prev = 0.0
        for t, m in self.events:
            if t > prev:
                await asyncio.sleep((t - prev) * self.speed)
                prev = t
            if w.is_closing():
                return
            w.write(encode_message(m))
        await w.drain()
