"""One IMAP connection on top of aioimaplib 2.0.3, made safe for a long-running mailbox.

aioimaplib does not report a dead connection to callers (commands just hang), crashes
on large responses (one recursion level per line) and has no STARTTLS.  This wrapper:

* races every command against ``conn_lost_cb`` and its own timeout
  (:class:`ConnectionLost`, :class:`ImapTimeout`);
* fetches in caller-sized batches with ``UID FETCH ... (UID BODY.PEEK[])`` (never
  marks a message read) and parses the flat response list;
* does STARTTLS itself through ``loop.start_tls`` on the protocol's transport.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import aioimaplib

from connectors.email.config import ImapSettings

__all__ = [
    "AuthFailed",
    "ConnectionLost",
    "Fetched",
    "FolderStatus",
    "ImapError",
    "ImapSession",
    "ImapTimeout",
    "imap_date",
    "parse_fetch",
    "quote_mailbox",
    "uid_set",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FETCH_RE = re.compile(rb"^(?:\* )?\d+ FETCH \(")
_UID_RE = re.compile(rb"\bUID (\d+)")
_DATE_RE = re.compile(rb'INTERNALDATE "([^"]+)"')
_CODE_RE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]")
_EXISTS_RE = re.compile(rb"^(?:\* )?(\d+) EXISTS")


class ImapError(Exception):
    """Something went wrong on the IMAP link; ``str()`` is the reason for health."""


class ConnectionLost(ImapError):
    pass


class ImapTimeout(ImapError):
    pass


class AuthFailed(ImapError):
    pass


@dataclass(frozen=True, slots=True)
class Fetched:
    uid: int
    raw: bytes
    internaldate: datetime | None = None


def _internaldate(line: bytes) -> datetime | None:
    m = _DATE_RE.search(line)
    if not m:
        return None
    try:
        return datetime.strptime(m.group(1).decode("ascii").strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class FolderStatus:
    name: str
    uidvalidity: int
    uidnext: int | None
    exists: int


def imap_date(day: date) -> str:
    """``01-Feb-2024``: the date format of SEARCH SINCE (English months, locale-free)."""
    return f"{day.day:02d}-{_MONTHS[day.month - 1]}-{day.year}"


def quote_mailbox(name: str) -> str:
    """Quote a mailbox name for the command line (spaces, quotes).  ASCII names only."""
    if name and re.fullmatch(r"[A-Za-z0-9_./&-]+", name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def uid_set(uids: Iterable[int]) -> str:
    """Compress sorted UIDs into an IMAP sequence set: ``1:5,7,9:12``."""
    parts: list[str] = []
    start = prev = -1
    for uid in sorted(set(uids)):
        if start < 0:
            start = prev = uid
        elif uid == prev + 1:
            prev = uid
        else:
            parts.append(f"{start}:{prev}" if prev > start else str(start))
            start = prev = uid
    if start >= 0:
        parts.append(f"{start}:{prev}" if prev > start else str(start))
    return ",".join(parts)


def parse_fetch(lines: Sequence[Any]) -> list[Fetched]:
    """Messages from aioimaplib's flat FETCH response, in server order.

    Shape: ``b'1 FETCH (UID 1 BODY[] {104}'``, the literal as a ``bytearray``, then
    ``b')'`` (or ``b' UID 1)'`` when the server puts UID after the body).  Messages
    expunged meanwhile (``BODY[] NIL``) or without a UID are left out.
    """
    out: list[Fetched] = []
    uid: int | None = None
    body: bytes | None = None
    when: datetime | None = None
    open_ = False

    def close() -> None:
        if uid is not None and body is not None:
            out.append(Fetched(uid, body, when))

    for item in lines:
        if isinstance(item, bytearray):
            if open_ and body is None:
                body = bytes(item)
            continue
        if not isinstance(item, bytes):
            continue
        if _FETCH_RE.match(item):
            if open_:
                close()
            open_, uid, body = True, None, None
            m = _UID_RE.search(item)
            if m:
                uid = int(m.group(1))
            when = _internaldate(item)
            continue
        if open_:
            m = _UID_RE.search(item)
            if m and uid is None:
                uid = int(m.group(1))
            if when is None:
                when = _internaldate(item)
            if item.rstrip().endswith(b")"):
                close()
                open_, uid, body = False, None, None
    if open_:
        close()
    return out


def _text(lines: Sequence[Any]) -> str:
    for line in reversed(lines):
        if isinstance(line, bytes) and line.strip():
            return line.decode("utf-8", "replace").strip()
    return ""


class ImapSession:
    """One logged-in IMAP connection.  Create, ``await connect()``, use, ``await close()``."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self._lost = asyncio.Event()
        self._lost_reason = "connection lost"
        self.client: aioimaplib.IMAP4 | None = None
        self.selected: str | None = None

    # -- plumbing -----------------------------------------------------------------

    def _on_lost(self, exc: Exception | None) -> None:
        self._lost_reason = f"connection lost: {exc}" if exc else "connection closed by server"
        self._lost.set()

    @property
    def alive(self) -> bool:
        return self.client is not None and not self._lost.is_set()

    async def _call(self, aw: Awaitable[T], limit: float | None = None) -> T:
        """Await ``aw`` unless the connection dies or ``limit`` seconds pass first."""
        if self._lost.is_set():
            if asyncio.iscoroutine(aw):
                aw.close()
            raise ConnectionLost(self._lost_reason)
        task: asyncio.Future[T] = asyncio.ensure_future(aw)
        lost: asyncio.Future[Any] = asyncio.ensure_future(self._lost.wait())
        if limit is None:
            limit = self.settings.command_timeout
        try:
            waiting: set[asyncio.Future[Any]] = {task, lost}
            done, _ = await asyncio.wait(
                waiting, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
        if task in done:
            try:
                return task.result()
            except aioimaplib.CommandTimeout:
                raise ImapTimeout("IMAP command timed out") from None
            except (aioimaplib.Abort, aioimaplib.Error) as exc:
                raise ImapError(f"IMAP protocol error: {exc}") from exc
            except ssl.SSLError as exc:
                raise ConnectionLost(f"TLS handshake failed: {exc}") from exc
            except (TimeoutError, OSError) as exc:
                raise ConnectionLost(f"connection failed: {exc!r}") from exc
        if lost in done:
            raise ConnectionLost(self._lost_reason)
        raise ImapTimeout(f"no answer from the IMAP server within {limit:g} s")

    def _proto(self) -> Any:
        if self.client is None:
            raise ConnectionLost("not connected")
        return self.client.protocol

    # -- session ------------------------------------------------------------------

    async def connect(self) -> None:
        s = self.settings
        ctx = s.ssl_context()
        self.client = aioimaplib.IMAP4(
            host=s.host,
            port=s.port,
            timeout=s.command_timeout,
            conn_lost_cb=self._on_lost,
            ssl_context=ctx if s.tls == "implicit" else None,
        )
        try:
            await self._call(self.client.wait_hello_from_server(), s.connect_timeout)
        except ssl.SSLError as exc:
            raise ConnectionLost(f"TLS handshake failed: {exc}") from exc
        if s.tls == "starttls":
            assert ctx is not None
            await self._starttls(ctx)
        proto = self._proto()
        resp = await self._call(proto.login(s.username, s.password))
        if resp.result != "OK":
            raise AuthFailed(f"login refused for {s.username!r}: {_text(resp.lines)}")

    async def _starttls(self, ctx: ssl.SSLContext) -> None:
        proto = self._proto()
        if "STARTTLS" not in proto.capabilities:
            raise ImapError("server does not offer STARTTLS")
        cmd = aioimaplib.Command("STARTTLS", proto.new_tag(), loop=proto.loop)
        resp = await self._call(proto.execute(cmd))
        if resp.result != "OK":
            raise ImapError(f"STARTTLS refused: {_text(resp.lines)}")
        loop = asyncio.get_running_loop()
        try:
            transport = await self._call(
                loop.start_tls(proto.transport, proto, ctx, server_hostname=self.settings.host),
                self.settings.connect_timeout,
            )
        except ssl.SSLError as exc:
            raise ConnectionLost(f"TLS handshake failed: {exc}") from exc
        proto.transport = transport
        await self._call(proto.capability())  # capabilities may change after TLS

    @property
    def has_idle(self) -> bool:
        return self.client is not None and self.client.has_capability("IDLE")

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        cancelled = False
        if not self._lost.is_set():
            try:
                await asyncio.wait_for(client.protocol.logout(), 2)
            except asyncio.CancelledError:
                # the caller is being stopped: finish closing, then let the stop through
                # (swallowing it kept a mailbox whose login is refused retrying forever)
                cancelled = True
            except Exception:  # best effort; never block shutdown
                pass
        transport = client.protocol.transport
        if transport is not None:
            transport.close()
        for task in (*client.tasks, *client.protocol.tasks):  # e.g. a pending IDLE
            task.cancel()
        if cancelled:
            raise asyncio.CancelledError

    # -- commands -----------------------------------------------------------------

    async def select(self, folder: str) -> FolderStatus:
        resp = await self._call(self._proto().select(quote_mailbox(folder)))
        if resp.result != "OK":
            raise ImapError(f"cannot select {folder!r}: {_text(resp.lines)}")
        codes: dict[bytes, int] = {}
        exists = 0
        for line in resp.lines:
            if not isinstance(line, bytes):
                continue
            for m in _CODE_RE.finditer(line):
                codes[m.group(1)] = int(m.group(2))
            em = _EXISTS_RE.match(line)
            if em:
                exists = int(em.group(1))
        if b"UIDVALIDITY" not in codes:
            raise ImapError(f"server sent no UIDVALIDITY for {folder!r}")
        self.selected = folder
        return FolderStatus(folder, codes[b"UIDVALIDITY"], codes.get(b"UIDNEXT"), exists)

    async def uid_search(self, *criteria: str) -> list[int]:
        resp = await self._call(self._proto().search(*criteria, charset=None, by_uid=True))
        if resp.result != "OK":
            raise ImapError(f"UID SEARCH {' '.join(criteria)} failed: {_text(resp.lines)}")
        # aioimaplib strips "* SEARCH " from the untagged line(s); the last line is the
        # tagged completion text.  Lines not made only of numbers are something else.
        uids: list[int] = []
        for line in resp.lines[:-1]:
            if not isinstance(line, bytes):
                continue
            tokens = line.split()
            if tokens and tokens[0].upper() == b"SEARCH":
                tokens = tokens[1:]
            if tokens and all(t.isdigit() for t in tokens):
                uids.extend(int(t) for t in tokens)
        return sorted(set(uids))

    async def fetch_bodies(self, uids: Sequence[int]) -> list[Fetched]:
        """Raw messages of ``uids`` (one batch: keep it <= 500), never marking them read."""
        if not uids:
            return []
        proto = self._proto()
        # aioimaplib's own per-line timer plus ours around the whole batch
        resp = await self._call(
            proto.fetch(
                uid_set(uids),
                "(UID INTERNALDATE BODY.PEEK[])",
                by_uid=True,
                timeout=self.settings.command_timeout,
            ),
            self.settings.command_timeout * 4,
        )
        if resp.result != "OK":
            raise ImapError(f"UID FETCH failed: {_text(resp.lines)}")
        return parse_fetch(resp.lines)

    async def append(self, folder: str, raw: bytes, flags: str = "(\\Seen)") -> None:
        resp = await self._call(
            self._proto().append(
                raw, quote_mailbox(folder), flags, None, timeout=self.settings.command_timeout
            )
        )
        if resp.result != "OK":
            raise ImapError(f"APPEND to {folder!r} failed: {_text(resp.lines)}")

    async def noop(self) -> None:
        await self._call(self._proto().simple_command("NOOP"))

    async def idle_wait(self, seconds: float) -> bool:
        """IDLE on the selected folder for up to ``seconds``.

        Returns True when the server announced something (new mail, expunge, flags),
        False when the timeout ended the IDLE.  Either way IDLE is finished on return.
        """
        client = self.client
        if client is None:
            raise ConnectionLost("not connected")
        queue = client.protocol.idle_queue
        while not queue.empty():  # leftovers of an earlier IDLE
            queue.get_nowait()
        idle = await self._call(client.idle_start(timeout=seconds))
        pushed = False
        try:
            while True:
                push = await self._call(client.wait_server_push(seconds + 5), seconds + 10)
                if push == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                if any(isinstance(x, bytes) and not x.startswith(b"OK Still") for x in push):
                    pushed = True
                    break
        finally:
            if client.has_pending_idle() and not self._lost.is_set():
                client.idle_done()
        resp = await self._call(idle)
        if resp.result != "OK":
            raise ImapError(f"IDLE ended with {resp.result}: {_text(resp.lines)}")
        return pushed
