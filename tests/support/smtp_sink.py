"""An aiosmtpd sink for campaign tests and the campaign benchmark: records every
message it accepts (envelope recipients and the Message-ID), optionally slowly.

In process: ``sink = SmtpSink(delay=0.01).start(); ...; sink.stop()``.
As a process (the benchmark, kill tests): ``python -m tests.support.smtp_sink PORT
OUT.jsonl [DELAY]`` appends one JSON line per accepted message to ``OUT.jsonl``.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.dovecot import free_port

__all__ = ["SinkHandler", "SmtpSink", "message_id_of"]

_MSGID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)


def message_id_of(data: bytes) -> str | None:
    m = _MSGID.search(data.split(b"\r\n\r\n", 1)[0])
    return m.group(1).decode() if m else None


@dataclass
class SinkHandler:
    delay: float = 0.0
    out: Any = None  # a file: one JSON line per message
    record_data: bool = True
    data_reply: dict[str, str] = field(default_factory=dict)  # rcpt -> reply to its DATA
    received: list[tuple[list[str], str | None, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        rcpts = [str(r).lower() for r in envelope.rcpt_tos]
        for r in rcpts:
            reply = self.data_reply.get(r)
            if reply:
                return reply
        data = bytes(envelope.original_content or b"")
        msgid = message_id_of(data)
        with self.lock:
            self.received.append((rcpts, msgid, data if self.record_data else b""))
            if self.out is not None:
                self.out.write(json.dumps({"to": rcpts, "message_id": msgid}) + "\n")
                self.out.flush()
        return "250 2.0.0 queued"

    def count_by_rcpt(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self.lock:
            for rcpts, _m, _d in self.received:
                for r in rcpts:
                    out[r] = out.get(r, 0) + 1
        return out


class SmtpSink:
    def __init__(self, *, delay: float = 0.0, port: int | None = None, out: Any = None) -> None:
        self.handler = SinkHandler(delay=delay, out=out, record_data=out is None)
        self.port = port or free_port()
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, decode_data=False
        )

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller.server is not None:
            self.controller.stop()


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    with open(path, "a", encoding="utf-8") as out:
        sink = SmtpSink(delay=delay, port=port, out=out).start()
        print("ready", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            sink.stop()


if __name__ == "__main__":
    main()
