"""Caller card latency (issue 15): a burst of recorded calls over a real AMI socket into
running hubs, timed from the ``DialBegin`` that rings an operator to the caller card on
that operator's live stream (SSE).

- SQLite: one ``crmhub serve``; the streams are on that process.
- PostgreSQL: two processes; the AMI link is led by one, the streams are on the OTHER
  (the card crosses processes through ``live_events`` + NOTIFY).
- Baseline in the same run: a bare AMI client reading each DialBegin of the same burst
  from the same test server (the transport floor), as ``bare_p99_ms``.

The calls are the recorded ``a_inbound_answered`` call, renumbered (ids, channels, the
caller's number) and spread over ten operators (extensions 101-110), starting every
``--gap`` seconds.  Last line: ``{"sqlite_p99_ms", "pg_cross_process_p99_ms", "calls",
...}``; the target is p99 < 200 ms on both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _load import drop_db, fresh_db  # noqa: E402

from connectors.asterisk.protocol import AMIParser  # noqa: E402
from tests.support.ami_server import AMIServer, load_transcript  # noqa: E402
from tests.support.ami_truth import AMI_FIXTURES  # noqa: E402
from tests.support.live_crmhub import Crmhub  # noqa: E402

CALL = AMI_FIXTURES / "a_inbound_answered.ami"
OPERATORS = [str(101 + i) for i in range(10)]


class _Pbx:
    def __init__(self, port: int) -> None:
        self.ami_port = port


def burst(n: int, gap: float) -> list[tuple[float, dict[str, str]]]:
    """``n`` renumbered copies of the recorded call, call i starting at ``i * gap``."""
    base = load_transcript(CALL)
    t0 = base[0][0]
    out: list[tuple[float, dict[str, str]]] = []
    for i in range(n):
        ext = OPERATORS[i % len(OPERATORS)]
        swaps = {
            "1795839552.": f"{1795839552 + 10 * (i + 1)}.",
            "trunk-00000003": f"trunk-{i:06x}03",
            "PJSIP/101-00000004": f"PJSIP/{ext}-{i:06x}04",
            "+74951234567": f"+7495{2000000 + i}",
        }
        for t, msg in base:
            if msg.get("Event") in ("FullyBooted", "SuccessfulAuth"):
                continue
            new = {}
            for k, v in msg.items():
                for a, b in swaps.items():
                    v = v.replace(a, b)
                if v == "101":
                    v = ext
                new[k] = v
            out.append((t - t0 + i * gap, new))
    out.sort(key=lambda x: x[0])
    return out


def ring_key(msg: dict[str, str]) -> tuple[str, str] | None:
    if msg.get("Event") != "DialBegin":
        return None
    return msg.get("CallerIDNum", ""), msg.get("DestChannel", "").split("/")[-1].split("-")[0]


async def sse(base: str, token: str, cards: dict[str, float], ready: asyncio.Event) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/v1/live/ticket", headers=auth, json={}) as r:
            ticket = (await r.json())["ticket"]
        async with http.get(
            f"{base}/live/sse", params={"ticket": ticket}, timeout=aiohttp.ClientTimeout(None)
        ) as r:
            kind = ""
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                    if kind == "hello":
                        ready.set()
                elif line.startswith("data: ") and kind == "caller_card":
                    card = json.loads(line[6:])["payload"]
                    cards.setdefault(card["caller"], time.perf_counter())


async def bare_floor(port: int, n: int, seen: dict[str, float]) -> None:
    """A raw AMI client: login, then note when each DialBegin arrives."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"Action: Login\r\nUsername: crm\r\nSecret: crmsecret\r\n\r\n")
    await writer.drain()
    parser = AMIParser()
    try:
        while len(seen) < n:
            data = await reader.read(65536)
            if not data:
                return
            for msg in parser.feed(data):
                if msg.get("Event") == "DialBegin":
                    seen.setdefault(msg.get("CallerIDNum", ""), time.perf_counter())
    finally:
        writer.close()


def _rings(srv: AMIServer) -> dict[str, float]:
    """Caller number -> when the server wrote the DialBegin that rang an operator."""
    rings: dict[str, float] = {}
    for idx, (_t, msg) in enumerate(srv.events):
        key = ring_key(msg)
        if key is not None and idx in srv.written:
            rings.setdefault(key[0], srv.written[idx])
    return rings


async def floor_run(calls: int, gap: float, speed: float) -> float:
    """The baseline: the same burst read by a bare AMI client (the server feeds one
    session, so this is a run of its own)."""
    async with AMIServer(speed=speed) as srv:
        seen: dict[str, float] = {}
        bare = asyncio.create_task(bare_floor(srv.port, calls, seen))
        while srv.sessions < 1 or srv.logins_ok < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        srv.push(burst(calls, gap))
        deadline = time.monotonic() + 30 + calls * gap
        while len(seen) < calls and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        bare.cancel()
        floors = [(seen[c] - t) * 1000 for c, t in _rings(srv).items() if c in seen]
        return round(p99(floors), 2)


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]


async def run(kind: str, tmp: Path, calls: int, gap: float, speed: float) -> dict[str, Any]:
    url = await fresh_db(kind, tmp, "card")
    srv = AMIServer(speed=speed)
    await srv.start()
    hubs: list[Crmhub] = []
    readers: list[asyncio.Task[None]] = []
    try:
        pbx = cast(Any, _Pbx(srv.port))
        n_hubs = 2 if kind == "pg" else 1
        hubs = [Crmhub(tmp / f"{kind}{i}", url, pbx) for i in range(n_hubs)]
        tokens = [
            hubs[0].add_user(f"op{e}@example.ru", "manager", extension=e).token for e in OPERATORS
        ]
        for hub in hubs:
            hub.start(wait_connected=False)
        deadline = time.monotonic() + 60
        leader = None
        while leader is None:
            for hub in hubs:
                body = hub.readyz() or {}
                if any(c.get("state") == "connected" for c in body.get("connectors", [])):
                    leader = hub
            if time.monotonic() > deadline:
                raise RuntimeError("no hub connected to the AMI server")
            await asyncio.sleep(0.2)
        watched = next(h for h in hubs if h is not leader) if n_hubs > 1 else leader
        cards: dict[str, float] = {}
        readies = []
        for token in tokens:
            ready = asyncio.Event()
            readies.append(ready)
            readers.append(asyncio.create_task(sse(watched.base_url, token, cards, ready)))
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
        script = burst(calls, gap)
        srv.push(script)
        deadline = time.monotonic() + 60 + calls * gap / max(speed, 0.01)
        while len(cards) < calls and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        delays = [(cards[c] - t) * 1000 for c, t in _rings(srv).items() if c in cards]
        return {
            "calls": calls,
            "cards": len(delays),
            "p50_ms": round(statistics.median(delays), 1) if delays else None,
            "p99_ms": round(p99(delays), 1),
        }
    finally:
        for t in readers:
            t.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for hub in hubs:
            hub.stop()
        await srv.close()
        await drop_db(url)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--gap", type=float, default=0.2, help="seconds between call starts")
    ap.add_argument("--speed", type=float, default=0.25, help="recorded time x speed")
    args = ap.parse_args()
    out: dict[str, Any] = {}
    bare = await floor_run(args.calls, args.gap, args.speed)
    print(f"bare AMI client: p99 {bare} ms", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("sqlite", "pg"):
            res = await run(kind, Path(tmp), args.calls, args.gap, args.speed)
            print(f"{kind}: {res}", flush=True)
            out[kind] = res
    print(
        json.dumps(
            {
                "sqlite_p99_ms": out["sqlite"]["p99_ms"],
                "pg_cross_process_p99_ms": out["pg"]["p99_ms"],
                "calls": args.calls,
                "sqlite_cards": out["sqlite"]["cards"],
                "pg_cards": out["pg"]["cards"],
                "sqlite_p50_ms": out["sqlite"]["p50_ms"],
                "pg_p50_ms": out["pg"]["p50_ms"],
                "bare_p99_ms": bare,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
