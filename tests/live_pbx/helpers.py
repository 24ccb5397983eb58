"""Small helpers shared by the live PBX tests: caller numbers, waiting for sipp and for
calls to show up in crmhub, the PBX's view of a call."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import datetime
from typing import Any

from tests.support.live_crmhub import Api, LiveFrames, poll
from tests.support.live_pbx import Pbx

SETTLE_S = 1.5  # after a call is logged: time for a (wrong) duplicate to show up too


def number(n: int) -> tuple[str, str]:
    """A mobile caller: (as the PSTN presents it, 89XXXXXXXXX; its E.164 form)."""
    return f"8916{n:07d}", f"+7916{n:07d}"


async def finished(proc: subprocess.Popen[bytes], limit_s: float = 120.0) -> int:
    """The sipp process's exit code, once it is done."""
    return await asyncio.to_thread(proc.wait, limit_s)


async def logged_calls(api: Api, phone: str, count: int = 1, limit_s: float = 60) -> list[Any]:
    """The call interactions on the timeline of ``phone``'s lead(s), once ``count`` of them
    are ``call_ended`` (and a moment later, so that a duplicate would be seen too)."""

    async def ended() -> bool:
        calls = await api.calls_of(phone)
        return len([c for c in calls if c["kind"] == "call_ended"]) >= count

    await poll(ended, f"{count} ended call(s) of {phone} on the timeline", limit_s)
    await asyncio.sleep(SETTLE_S)
    return await api.calls_of(phone)


async def live_has(live: LiveFrames, kind: str, limit_s: float = 30, **match: Any) -> list[Any]:
    async def seen() -> list[Any]:
        return live.of(kind, **match)

    found: list[Any] = await poll(seen, f"live {kind} {match}", limit_s, every=0.1)
    return found


def up_channel(pbx: Pbx, ext: str, caller: str) -> str | None:
    """The operator leg of ``ext`` bridged with a call from ``caller``, else None
    (``core show channels concise``: name!context!exten!prio!state!app!data!callerid!
    ...!bridgeid!uniqueid)."""
    rows = [line.split("!") for line in pbx.cli("core show channels concise").splitlines()]
    rows = [r for r in rows if len(r) > 12 and r[4] == "Up" and r[12]]
    bridges = {r[12] for r in rows if r[7] == caller}
    for r in rows:
        if r[0].startswith(f"PJSIP/{ext}-") and r[12] in bridges:
            return r[0]
    return None


async def wait_up(pbx: Pbx, ext: str, caller: str, limit_s: float = 30) -> str:
    async def probe() -> str | None:
        return await asyncio.to_thread(up_channel, pbx, ext, caller)

    channel: str = await poll(probe, f"phone {ext} up on the PBX", limit_s, every=0.2)
    return channel


def when(iso: str | None) -> datetime:
    assert iso is not None
    return datetime.fromisoformat(iso)
