"""An in-process aiosmtpd server that records what it receives, for SMTP tests.

    server = SmtpTestServer(tls_cert=cert, tls_key=key, require_starttls=True)
    server.start(); ...; server.stop()

``server.messages`` holds :class:`Received` (envelope, exact DATA bytes, TLS state).
``refuse`` maps a recipient to the reply its RCPT gets (``"550 5.1.1 no such user"``),
``data_reply`` replaces the DATA answer (``"451 4.3.0 try later"``).
"""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.dovecot import free_port

__all__ = ["Received", "SmtpTestServer", "make_self_signed_cert"]


def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost made with the openssl CLI."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool


@dataclass
class _Handler:
    refuse: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    messages: list[Received] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        reply = self.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply:
            return self.data_reply
        self.messages.append(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                data=bytes(envelope.original_content or b""),
                tls=session.ssl is not None,
            )
        )
        return "250 2.0.0 queued as T1"


class SmtpTestServer:
    def __init__(
        self,
        *,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        require_starttls: bool = False,
    ) -> None:
        self.handler = _Handler()
        self.port = free_port()
        tls_context = None
        if tls_cert and tls_key:
            tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls_context.load_cert_chain(str(tls_cert), str(tls_key))
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=tls_context,
            require_starttls=require_starttls,
            decode_data=False,
        )

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    @property
    def refuse(self) -> dict[str, str]:
        return self.handler.refuse

    def set_data_reply(self, reply: str | None) -> None:
        self.handler.data_reply = reply

    def start(self) -> SmtpTestServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
