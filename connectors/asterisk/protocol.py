"""A fast incremental AMI message parser: bytes in, ``dict[str, str]`` messages out.

AMI (Asterisk Manager Interface) is a line protocol: after a one-line banner
(``Asterisk Call Manager/11.0.0``) the server sends messages made of ``Key: Value``
lines ended by CRLF, each message ended by an empty line.  Chunks from the socket
may cut a message (or a CRLF) anywhere; :class:`AMIParser` keeps the incomplete tail.

Repeated keys (``Variable``, ``ChanVariable``, ``Output``) are joined with ``"\\n"``.
Lines without a colon (the body of old ``Response: Follows`` commands) are kept
under ``"__body__"``.  Given ``wanted`` event names, events with other names are
counted but not split into fields at all (this is what keeps the tracking fast on a
``read=all`` AMI user that receives hundreds of ``VarSet``/``CEL`` events per call).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from crm_core.events import NormalizeError

__all__ = [
    "BANNER_PREFIX",
    "AMIParser",
    "AMIProtocolError",
    "encode_message",
    "parse_block",
    "raise_if_binary",
]

BANNER_PREFIX = "Asterisk Call Manager/"
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
                buf = buf[nl + 1 :]
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
        self.messages += len(blocks)
        wanted = self._wanted
        if wanted is not None:
            n = len(blocks)
            blocks = [
                b for b in blocks if not b.startswith("Event: ") or b[7 : b.find(eol)] in wanted
            ]
            self.skipped += n - len(blocks)
        return [parse_block(b, eol) for b in blocks]

    def flush(self) -> list[dict[str, str]]:
        """End of stream: a last message without its blank line is still a message."""
        buf, self._buf = self._buf, b""
        text = buf.decode("utf-8", "replace").strip("\r\n")
        return self._blocks(text) if text else []


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
