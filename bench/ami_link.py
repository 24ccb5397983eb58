"""The live link's parse: panoramisk's own ``AMIProtocol`` vs ``AMILinkProtocol`` (the
connector's, reading through ``AMIParser`` with the tracked events kept), on the same
recorded ``read=all`` traffic (bench/ami_events.py's buffer), each message dispatched to a
no-op callback as the connector's ``Manager`` does.  The last line is one JSON object;
``ratio`` > 1 means the connector's protocol is faster.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from panoramisk.ami_protocol import AMIProtocol  # noqa: E402

from bench.ami_events import CHUNK, build  # noqa: E402
from connectors.asterisk.protocol import AMILinkProtocol  # noqa: E402
from connectors.asterisk.tracking import CallTracker  # noqa: E402
from connectors.asterisk.tracking_link import link_events  # noqa: E402


class _Factory:
    def __init__(self) -> None:
        self.events = 0
        self.save_stream = None

    def dispatch(self, message: Any) -> None:
        self.events += 1


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def run(proto: AMIProtocol, buf: bytes) -> tuple[float, int]:
    proto.connection_made(_Transport())
    factory = _Factory()
    proto.factory = factory
    proto.encoding = "utf8"
    t0 = time.perf_counter()
    for i in range(0, len(buf), CHUNK):
        proto.data_received(buf[i : i + CHUNK])
    return time.perf_counter() - t0, factory.events


def main() -> None:
    copies = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    buf = build(copies)
    wanted = link_events(CallTracker())
    t_pano = min(run(AMIProtocol(), buf)[0] for _ in range(3))
    t_link = min(run(AMILinkProtocol(wanted), buf)[0] for _ in range(3))
    messages = buf.count(b"\r\n\r\n")
    print(f"panoramisk AMIProtocol : {messages / t_pano:12,.0f} messages/s")
    print(f"AMILinkProtocol        : {messages / t_link:12,.0f} messages/s")
    print(json.dumps({"ratio": round(t_pano / t_link, 3), "messages": messages}))


if __name__ == "__main__":
    main()
