"""``crmhub ingest ami TRANSCRIPT --dry-run``: a raw AMI byte stream -> call event dicts.

The bytes go through the live link's own parser and :class:`LinkFeed` (see
``tracking_link``): a later banner in the transcript is a reconnect, and the
``CoreShowChannels`` answer after it reconciles and adopts calls as the live link does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connectors.asterisk.model import CallUpdate
from connectors.asterisk.normalize import to_event, to_summary
from connectors.asterisk.protocol import BANNER_PREFIX, AMIParser, AMIProtocolError
from connectors.asterisk.tracking import CallTracker
from connectors.asterisk.tracking_link import LinkFeed, link_events
from crm_core.events import InboundEvent, NormalizeError

__all__ = ["derive_updates", "dry_run"]


def _timing(path: Path) -> list[tuple[float, int, int]] | None:
    """``X.timing.jsonl`` next to ``X.ami``: (t, offset, length) of each received chunk."""
    tpath = path.with_name(path.name.removesuffix(".ami") + ".timing.jsonl")
    if not path.name.endswith(".ami") or not tpath.is_file():
        return None
    out: list[tuple[float, int, int]] = []
    base = 0.0
    try:
        for line in tpath.read_text().splitlines():
            rec = json.loads(line)
            if "connected_at_unix" in rec:
                base = float(rec["connected_at_unix"])
            elif rec.get("dir") == "rx":
                out.append((base + float(rec["t"]), int(rec["off"]), int(rec["len"])))
    except (ValueError, KeyError, TypeError):
        return None
    return out or None


def _check_ami(data: bytes, source: str) -> None:
    head = data[:200].lstrip(b"\r\n").decode("utf-8", "replace")
    if not head:
        raise AMIProtocolError(f"{source}: empty, not an AMI stream", "file")
    first = head.split("\n", 1)[0].strip()
    key = first.partition(":")[0]
    if not (first.startswith(BANNER_PREFIX) or key in ("Event", "Response", "Action")):
        raise AMIProtocolError(
            f"{source}: not an AMI stream (starts with {first[:40]!r}, expected "
            f"{BANNER_PREFIX!r} or an 'Event:'/'Response:' line)",
            "file",
        )


def derive_updates(
    data: bytes,
    tracker: CallTracker,
    timing: list[tuple[float, int, int]] | None = None,
    source: str = "stream",
) -> list[CallUpdate]:
    _check_ami(data, source)
    parser = AMIParser(link_events(tracker))
    feed = LinkFeed(tracker)
    out: list[CallUpdate] = []
    chunks = [(t, data[o : o + n]) for t, o, n in timing] if timing else [(0.0, data)]
    for t, chunk in chunks:
        for msg in parser.feed(chunk):
            out.extend(feed.message(msg, t))
        out.extend(tracker.tick(t))
    for msg in parser.flush():
        out.extend(feed.message(msg, chunks[-1][0]))
    if parser.messages == 0:
        raise AMIProtocolError(f"{source}: no AMI message found", "file")
    out.extend(tracker.flush())
    return out


def dry_run(
    path: str | Path,
    *,
    inbound_contexts: list[str] | None = None,
    trunk_channel_patterns: list[str] | None = None,
    region: str = "RU",
) -> list[dict[str, Any]]:
    """One dict per derived call event of a recorded AMI stream (see ``to_summary``).

    Timing: the events' ``Timestamp`` headers if present, else ``X.timing.jsonl`` next to
    ``X.ami`` if present, else none (all durations then read 0).  Without
    ``inbound_contexts``/``trunk_channel_patterns`` a first leg whose caller id has 7+
    digits counts as inbound.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise NormalizeError(f"cannot read {p}: {exc.strerror}", "file") from None
    tracker = CallTracker(inbound_contexts or (), trunk_channel_patterns or ())
    updates = derive_updates(data, tracker, _timing(p), source=str(p))
    return [to_summary(u, region) for u in updates]


def events_from_transcript(
    path: str | Path,
    *,
    pbx_name: str = "pbx",
    inbound_contexts: list[str] | None = None,
    trunk_channel_patterns: list[str] | None = None,
    region: str = "RU",
    recording_url_template: str | None = None,
) -> list[InboundEvent]:
    """The ``InboundEvent``s a recorded AMI stream derives (``crmhub ingest ami`` without
    ``--dry-run`` sends them through the pipeline)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise NormalizeError(f"cannot read {p}: {exc.strerror}", "file") from None
    tracker = CallTracker(inbound_contexts or (), trunk_channel_patterns or ())
    updates = derive_updates(data, tracker, _timing(p), source=str(p))
    return [
        to_event(u, pbx_name, region=region, recording_url_template=recording_url_template)
        for u in updates
    ]
