"""Email connector: IMAP mailboxes in, SMTP out (issue 4).

``parse_message`` and ``dry_run`` (the pure parser) are imported on first use, so the
transport works and imports cleanly on its own.
"""

from __future__ import annotations

from typing import Any

from connectors.email.config import ImapSettings, SmtpSettings
from connectors.email.connector import ImapMailbox, MailboxStats, state_key
from connectors.email.outbound import SEND_EMAIL, SmtpOutbound

__all__ = [
    "SEND_EMAIL",
    "ImapMailbox",
    "ImapSettings",
    "MailboxStats",
    "SmtpOutbound",
    "SmtpSettings",
    "dry_run",
    "parse_message",
    "state_key",
]


def __getattr__(name: str) -> Any:
    if name == "parse_message":
        from connectors.email.normalize import parse_message

        return parse_message
    if name == "dry_run":
        from connectors.email.dry_run import dry_run

        return dry_run
    raise AttributeError(f"module 'connectors.email' has no attribute {name!r}")
