"""What runs on a VK Callback body before it is authenticated (pure, non-recursive).

VK puts the community's secret inside the JSON body (``"secret": "..."``), so the body
has to be read before the secret can be checked; it is not parsed before.
:func:`scan_body` looks at the raw bytes with a few linear passes of C-speed bytes
operations (no Python loop per character or per token, no recursion):

1. escapes are blanked (``\\\\`` and ``\\"`` become two ``_``, same length), so the quotes
   left are exactly the string delimiters, and ``split(b'"')`` alternates between
   text outside strings (even parts) and string contents (odd parts);
2. the nesting depth is the running maximum over the brackets outside strings;
3. the top-level ``secret`` member is the string part ``secret`` at depth 1 followed by
   ``:`` and a string; only that one literal is decoded (``json.loads`` of a string).

The webhook reads at most ``max_body_bytes``, rejects a body nested deeper than
:data:`MAX_DEPTH`, compares the secret in constant time, and only then hands the body to
``json.loads``: an unauthenticated body never reaches a parser.  The scan never
decides validity; it reads valid JSON exactly, and anything it misreads is invalid JSON
(rejected by ``json.loads`` after the secret matched) or simply fails the check.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from itertools import accumulate

__all__ = ["MAX_DEPTH", "BodyScan", "scan_body", "secret_matches"]

MAX_DEPTH = 128  # VK bodies nest about 10 levels (forwarded messages add a few each)
_MAX_CANDIDATES = 1_000  # string literals equal to the key; more: refused (fail closed)
_STEP = {ord("{"): 1, ord("["): 1, ord("}"): -1, ord("]"): -1}
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _STEP)


@dataclass(frozen=True, slots=True)
class BodyScan:
    depth: int  # deepest nesting of objects/arrays outside strings (1 for a flat object)
    secret: str | None  # the top-level "secret" string; None: absent, not a string, twice


def _delta(outside: bytes) -> int:
    return outside.count(b"{") + outside.count(b"[") - outside.count(b"}") - outside.count(b"]")


def _depth(parts: list[bytes]) -> int:
    brackets = b"".join(parts[0::2]).translate(None, _NOT_BRACKETS)
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets)), default=0))


def _top_level_string(body: bytes, parts: list[bytes], key: bytes) -> str | None:
    if body.lstrip()[:1] != b"{":
        return None
    found: list[str | None] = []
    depth = offset = 0  # before parts[done]; offset: where parts[done] starts in body
    done = i = 0
    for _ in range(_MAX_CANDIDATES):
        try:
            i = parts.index(key, i)
        except ValueError:
            break
        depth += _delta(b"".join(parts[done + done % 2 : i : 2]))
        offset += sum(map(len, parts[done:i])) + (i - done)  # + one quote per part
        done = i
        i += 1
        if done % 2 == 0 or depth != 1 or done + 3 >= len(parts):
            continue  # not a string, not top level, or nothing after it
        if parts[done + 1].strip() != b":":
            continue  # a value "secret", or a key whose value is not a string
        start = offset + len(parts[done]) + 1 + len(parts[done + 1])  # the value's quote
        literal = body[start : start + len(parts[done + 2]) + 2]
        try:
            value = json.loads(literal)  # one string literal: not recursive
        except ValueError:
            value = None
        found.append(value if isinstance(value, str) else None)
        if len(found) > 1:
            return None
    else:
        return None
    return found[0] if found else None


def scan_body(body: bytes, key: str = "secret") -> BodyScan:
    """Nesting depth of ``body`` and its top-level ``key``'s string value (see above)."""
    blanked = body.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    parts = blanked.split(b'"')
    return BodyScan(_depth(parts), _top_level_string(body, parts, key.encode()))


def secret_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison; an empty expected secret never matches."""
    if not expected:
        return False
    return hmac.compare_digest((given or "").encode(), expected.encode())
