"""A fast incremental AMI message parser: bytes in, ``dict[str, str]`` messages out.

AMI (Asterisk Manager Interface) is a line protocol: after a one-line banner
(``Asterisk Call Manager/11.0.0``) the server sends messages made of ``Key: Value``
lines ended by CRLF, each message ended by an empty line.  Chunks from the socket
may cut a message (or a CRLF) anywhere; :class:`AMIParser` keeps the incomplete tail.

Repeated keys (``Variable``, ``ChanVariable``, ``Output``) are joined with ``"\\n"``.
Lines without a colon (the body of old ``Response: Follows`` commands) are kept
under ``"__body__"``.  Given ``wanted`` event names, events with other names are
counted but not split into fields at all (this is what keeps the tracking fast on a
``read=all`` AMI user that receives hundreds of ``VarSet``/``CEL`` events per call);
events carrying an ``ActionID`` (the items of a list response such as
``CoreShowChannel``) are always kept.

Each banner gives a ``{"__banner__": version}`` marker in the message sequence: the
first one of a connection, and in a recorded transcript every later one (a reconnect:
what the old connection left unfinished is dropped).  This is the one parser of the
connector: the live link (:class:`AMILinkProtocol`, panoramisk's protocol fed by it) and
``crmhub ingest ami --dry-run`` both read AMI through it.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from crm_core.events import NormalizeError

__all__ = [
    "BANNER_KEY",
    "BANNER_PREFIX",
    "AMILinkProtocol",
    "AMIParser",
    "AMIProtocolError",
    "encode_message",
    "parse_block",
    "raise_if_binary",
]

BANNER_PREFIX = "Asterisk Call Manager/"
BANNER_KEY = "__banner__"
_BANNER_B = BANNER_PREFIX.encode()
MAX_MESSAGE_BYTES = 1_000_000  # a message larger than this is not AMI


class AMIProtocolError(NormalizeError):
    """The byte stream is not AMI (or is corrupted beyond recovery)."""


def parse_block(block: str, eol: str = "\n") -> dict[str, str]:
    """One message (lines joined by ``eol``, no trailing blank line) -> fields."""
    lines = block.split(eol)
    try:  # fast path: every line is "Key: Value", no repeated key
        fast = dict([line.split(": ", 1) for line in lines])
    except ValueError:
        fast = None
    if fast is not None and len(fast) == len(lines):
        return fast
    return _parse_slow(lines)


def _parse_slow(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
            if not sep or not key or " " in key:
                if line:
                    prev = out.get("__body__")
                    out["__body__"] = line if prev is None else prev + "\n" + line
                continue
        prev = out.get(key)
        out[key] = value if prev is None else prev + "\n" + value
    return out


class AMIParser:
    """Incremental parser.  ``feed(chunk)`` returns the messages completed by it.

    Line ends are CRLF (what Asterisk sends); a stream whose first line ends with a bare
    LF is read with LF line ends (transcripts edited by hand).
    """

    __slots__ = ("_buf", "_eol", "_eom", "_started", "_wanted", "messages", "skipped", "version")

    def __init__(self, wanted: Collection[str] | None = None) -> None:
        self._buf = b""
        self._eol = "\r\n"
        self._eom = b"\r\n\r\n"
        self._started = False  # banner handled (or known absent)
        self._wanted = frozenset(wanted) if wanted is not None else None
        self.version: str | None = None
        self.messages = 0  # complete messages seen (wanted or not)
        self.skipped = 0  # events dropped because their name is not wanted

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message kept for the next chunk."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[dict[str, str]]:
        buf = self._buf + data if self._buf else data
        if not self._started:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) >= len(_BANNER_B) and not buf.startswith(_BANNER_B):
                    raise_if_binary(buf)
                if len(buf) > MAX_MESSAGE_BYTES:
                    self._buf = b""
                    raise AMIProtocolError(
                        f"no line end in {len(buf)} bytes: not an AMI stream", "stream"
                    )
                self._buf = buf
                return []
            self._started = True
            if nl == 0 or buf[nl - 1 : nl] != b"\r":
                self._eol, self._eom = "\n", b"\n\n"
            if buf.startswith(_BANNER_B):
                self.version = buf[len(_BANNER_B) : nl].decode("ascii", "replace").strip()
                self._buf = b""
                return [{BANNER_KEY: self.version}, *self.feed(buf[nl + 1 :])]
        eom = self._eom
        end = buf.rfind(eom)
        if end < 0:
            if len(buf) > MAX_MESSAGE_BYTES:
                self._buf = b""
                raise AMIProtocolError(
                    f"no message end in {len(buf)} bytes: not an AMI stream", "stream"
                )
            self._buf = buf
            return []
        self._buf = buf[end + len(eom) :]
        text = buf[:end].decode("utf-8", "replace")
        return self._blocks(text)

    def _blocks(self, text: str) -> list[dict[str, str]]:
        eol = self._eol
        blocks = text.split(eol + eol)
        if eol + eol + eol in text or not blocks[0]:  # stray extra blank lines
            blocks = [b.lstrip("\r\n") for b in blocks]
            blocks = [b for b in blocks if b]
        if BANNER_PREFIX in text:
            return self._with_banners(blocks)
        return self._parse(blocks)

    def _parse(self, blocks: list[str]) -> list[dict[str, str]]:
        eol = self._eol
        self.messages += len(blocks)
        wanted = self._wanted
        if wanted is not None:
            n = len(blocks)
            aid = eol + "ActionID: "
            blocks = [
                b
                for b in blocks
                if not b.startswith("Event: ") or b[7 : b.find(eol)] in wanted or aid in b
            ]
            self.skipped += n - len(blocks)
        return [parse_block(b, eol) for b in blocks]

    def _with_banners(self, blocks: list[str]) -> list[dict[str, str]]:
        """A later banner in the same stream: a transcript of a reconnect."""
        eol = self._eol
        out: list[dict[str, str]] = []
        for block in blocks:
            at = block.find(BANNER_PREFIX)  # anywhere: a dropped link may end mid-line
            if at < 0:
                out.extend(self._parse([block]))
                continue
            # what precedes the banner is the old connection's unfinished message: dropped
            line, _, rest = block[at:].partition(eol)
            self.version = line[len(BANNER_PREFIX) :].strip()
            out.append({BANNER_KEY: self.version})
            if rest:
                out.extend(self._blocks(rest))
        return out

    def flush(self) -> list[dict[str, str]]:
        """End of stream: a last message without its blank line is still a message."""
        buf, self._buf = self._buf, b""
        text = buf.decode("utf-8", "replace").strip("\r\n")
        return self._blocks(text) if text else []


class AMILinkProtocol(AMIProtocol):
    """panoramisk's protocol reading through :class:`AMIParser` (the parser the replay
    uses too).  Action responses still complete panoramisk's futures; events go to the
    manager's ``dispatch``.  ``wanted`` drops other events before they become panoramisk
    messages.  ``last_rx`` is when bytes last arrived: the link was alive then."""

    def __init__(self, wanted: Collection[str] | None = None) -> None:
        self.wanted = wanted
        self.last_rx = time.time()

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.parser = AMIParser(self.wanted)
        self.last_rx = time.time()

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.time()
        try:
            messages = self.parser.feed(data)
        except AMIProtocolError as exc:
            self.log.error("not AMI: %s", exc)
            self.transport.close()
            return
        for fields in messages:
            if BANNER_KEY in fields:
                self.version = fields[BANNER_KEY]
                continue
            body = fields.pop("__body__", "")
            headers: dict[str, Any] = dict(fields)
            for key, value in fields.items():
                if "\n" in value:  # a repeated key: panoramisk's shape is a list
                    headers[key] = value.split("\n")
            self.handle_message(Message(headers, body))


def raise_if_binary(buf: bytes) -> None:
    if b"\x00" in buf[:4096]:
        raise AMIProtocolError("binary data: not an AMI stream", "stream")


def encode_message(fields: Mapping[str, str | list[str]] | Iterable[tuple[str, str]]) -> bytes:
    """Fields -> one AMI message (CRLF lines, blank line at the end).  Lists repeat the key."""
    items = fields.items() if isinstance(fields, Mapping) else fields
    lines: list[str] = []
    for key, value in items:
        if isinstance(value, list):
            lines.extend(f"{key}: {v}" for v in value)
        else:
            lines.append(f"{key}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
