"""AMI events/s through parse + call tracking + normalization, vs a bare split-on-blank-line.

The path measured is the one the live link and ``crmhub ingest ami --dry-run`` share:
``AMIParser`` (keeping the tracked events and list answers) -> ``LinkFeed`` -> tracker.

The buffer repeats the recorded scenarios (fixtures/ami/*.ami, the ``read=all`` user,
so most events are VarSet/CEL noise as on a real PBX), rewriting Uniqueid/Linkedid per
copy so every copy is a distinct call.  Pipeline writes are excluded.  Both parses run
on the same buffer in the same process; the last line is one JSON object.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.asterisk.normalize import to_event  # noqa: E402
from connectors.asterisk.protocol import AMIParser  # noqa: E402
from connectors.asterisk.tracking import CallTracker  # noqa: E402
from connectors.asterisk.tracking_link import LinkFeed, link_events  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "ami"
SCENARIOS = [
    "a_inbound_answered",
    "b_inbound_missed_noanswer",
    "b2_inbound_missed_abandoned",
    "c_inbound_queue_second_member",
    "d_click2call_answered",
    "e_click2call_customer_busy",
    "f_inbound_overlapping",
]
ID_RE = re.compile(rb"(?<=[: ])(1795839\d{3})\.(\d+)")
CHUNK = 64 * 1024
T = TypeVar("T")


def build(copies: int) -> bytes:
    bodies = []
    for name in SCENARIOS:
        raw = (FIXTURES / f"{name}.ami").read_bytes()
        bodies.append(raw[raw.index(b"\r\n") + 2 :])  # without the banner
    out = [b"Asterisk Call Manager/11.0.0\r\n"]
    for i in range(copies):
        base = str(1_700_000_000 + i * 100).encode()
        for body in bodies:
            prefix = base + b"."

            def repl(m: re.Match[bytes], p: bytes = prefix) -> bytes:
                return p + m.group(2)

            out.append(ID_RE.sub(repl, body))
    return b"".join(out)


def bare(buf: bytes) -> int:
    text = buf.decode("utf-8", "replace")
    return len([m for m in text.split("\r\n\r\n") if m])


def full(buf: bytes) -> tuple[int, int]:
    tracker = CallTracker(["from-pstn"], ["PJSIP/trunk-*"], cdr_wait=0)
    parser = AMIParser(link_events(tracker))  # what the live link and --dry-run both use
    feed = LinkFeed(tracker)
    events = 0
    now = 1_700_000_000.0
    for i in range(0, len(buf), CHUNK):
        for msg in parser.feed(buf[i : i + CHUNK]):
            for u in feed.message(msg, now):
                to_event(u, "bench")
                events += 1
        now += 0.01
    for msg in parser.flush():
        feed.message(msg, now)
    for u in tracker.flush():
        to_event(u, "bench")
        events += 1
    return parser.messages, events


def best(fn: Callable[[bytes], T], buf: bytes, runs: int = 3) -> tuple[float, T]:
    times: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        res = fn(buf)
        times.append(time.perf_counter() - t0)
    return min(times), res


def main() -> None:
    copies = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    buf = build(copies)
    t_bare, n_bare = best(bare, buf)
    t_full, (n_msgs, n_derived) = best(full, buf)
    bare_eps = n_bare / t_bare
    eps = n_msgs / t_full
    print(f"buffer: {len(buf) / 1e6:.1f} MB, {n_msgs} AMI messages, {copies * 8} calls")
    print(f"bare split on blank lines : {bare_eps:12,.0f} events/s")
    print(f"parse + track + normalize : {eps:12,.0f} events/s ({n_derived} call events derived)")
    print(f"ratio                     : {eps / bare_eps:.3f}")
    print(
        json.dumps(
            {
                "ratio": round(eps / bare_eps, 4),
                "events_per_s": round(eps),
                "bare_events_per_s": round(bare_eps),
                "messages": n_msgs,
                "call_events": n_derived,
            }
        )
    )


if __name__ == "__main__":
    main()
