"""Settings of the email connector: ``[[imap]]`` mailboxes and the ``[smtp]`` relay."""

from __future__ import annotations

import ssl
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ImapSettings", "SmtpSettings", "TlsMode", "make_ssl_context"]

TlsMode = Literal["implicit", "starttls", "none"]

MAX_BATCH = 500  # aioimaplib recurses once per response line: bigger batches crash it


def make_ssl_context(ca_file: str | None, verify: bool) -> ssl.SSLContext:
    """A client TLS context; ``ca_file`` adds a private CA (self-signed test servers)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ImapSettings(BaseModel):
    """One ``[[imap]]`` mailbox watched by :class:`connectors.email.ImapMailbox`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.@-]+$")
    host: str = "127.0.0.1"
    port: int = Field(default=993, ge=1, le=65535)
    tls: TlsMode = "implicit"
    tls_verify: bool = True
    ca_file: str | None = None
    username: str
    password: str = Field(default="", repr=False)
    folders: list[str] = Field(default_factory=lambda: ["INBOX"], min_length=1)
    sent_folder: str | None = None  # where SmtpOutbound appends a copy of what it sent
    owner_email: str | None = None  # owning user (by login email) ...
    team: str | None = None  # ... or owning team
    own_addresses: list[str] = Field(default_factory=list)  # company / managers' addresses
    region: str = "RU"  # default phone region for numbers found in signatures
    initial_sync_days: int = Field(default=30, ge=0, le=3650)
    idle_timeout: float = Field(default=25 * 60, gt=0, le=29 * 60)  # re-issue IDLE before 29 min
    poll_interval: float = Field(default=60, gt=0)  # without IDLE, and for extra folders
    batch_size: int = Field(default=200, ge=1, le=MAX_BATCH)
    # >0: parse in that many worker processes (parse must then be a module-level function);
    # 0: in the event loop; None (default): one worker process while a sync has at least
    # three batches to parse (an initial sync), in the loop otherwise
    parse_workers: int | None = Field(default=None, ge=0, le=32)
    command_timeout: float = Field(default=30, gt=0)
    connect_timeout: float = Field(default=15, gt=0)
    backoff_initial: float = Field(default=1.0, gt=0)
    backoff_max: float = Field(default=60.0, gt=0)

    @field_validator("own_addresses")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value if v.strip()]

    @property
    def own_address_set(self) -> frozenset[str]:
        extra = {self.username.lower()} if "@" in self.username else set()
        return frozenset(self.own_addresses) | extra

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.tls == "none":
            return None
        return make_ssl_context(self.ca_file, self.tls_verify)


class SmtpSettings(BaseModel):
    """The ``[smtp]`` relay used by :class:`connectors.email.SmtpOutbound`."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=587, ge=1, le=65535)
    tls: TlsMode = "starttls"
    tls_verify: bool = True
    ca_file: str | None = None
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    from_address: str
    from_name: str | None = None
    message_id_domain: str | None = None  # defaults to the domain of from_address
    timeout: float = Field(default=30, gt=0)
    # Campaigns: connections kept open at once, messages per minute / hour / day (0: no
    # limit).  A relay's own limits: exceeding them gets 4xx replies and a slower send.
    concurrency: int = Field(default=4, ge=1, le=50)
    rate_per_minute: int = Field(default=0, ge=0)
    rate_per_hour: int = Field(default=0, ge=0)
    rate_per_day: int = Field(default=0, ge=0)

    @property
    def msgid_domain(self) -> str:
        if self.message_id_domain:
            return self.message_id_domain
        return self.from_address.rpartition("@")[2] or "localhost"
