"""``/start <payload>`` deep links: UTM tags and deal references (pure)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["parse_start_payload"]

_DEAL_RE = re.compile(r"^deal[-_]?(\d{1,18})$", re.IGNORECASE)
_B64_RE = re.compile(r"^[A-Za-z0-9+/_-]{8,}={0,2}$")
_UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")


def _pieces(payload: str) -> dict[str, Any]:
    """``utm_source=x&utm_medium=y``, ``utm_source-x__utm_medium-y``, ``deal-123``, mixed."""
    utm: dict[str, str] = {}
    out: dict[str, Any] = {}
    if "=" in payload and "utm_" in payload:
        for key, value in parse_qsl(payload.replace("__", "&"), keep_blank_values=False):
            if key.lower().startswith("utm_") and value:
                utm[key.lower()] = value
    else:
        for piece in payload.split("__"):
            deal = _DEAL_RE.match(piece)
            if deal:
                out["deal_ref"] = deal.group(1)
                continue
            for key in _UTM_KEYS:
                if piece.lower().startswith(key) and len(piece) > len(key) + 1:
                    sep = piece[len(key)]
                    if sep in "-=:":
                        utm[key] = piece[len(key) + 1 :]
    if utm:
        out["utm"] = utm
    return out


def _decode_b64(payload: str) -> str | None:
    if not _B64_RE.match(payload):
        return None
    padded = payload + "=" * (-len(payload) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not text or not text.isprintable():
        return None
    return text


def parse_start_payload(payload: str) -> dict[str, Any]:
    """Meta derived from a deep-link payload: ``utm`` dict, ``deal_ref``, decoded text."""
    found = _pieces(payload)
    if found:
        return found
    decoded = _decode_b64(payload)
    if decoded is None:
        return {}
    return {"start_payload_decoded": decoded, **_pieces(decoded)}
