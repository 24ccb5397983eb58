"""Attachment metadata of a VK message (pure): photos, documents, voice messages."""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from typing import Any

from crm_core.events import Attachment

__all__ = ["message_attachments"]

_OLD_PHOTO_KEYS = ("photo_2560", "photo_1280", "photo_807", "photo_604", "photo_130", "photo_75")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _photo(photo: Mapping[str, Any]) -> Attachment | None:
    url: str | None = None
    sizes = photo.get("sizes")
    if isinstance(sizes, list):
        good = [s for s in sizes if isinstance(s, Mapping) and isinstance(s.get("url"), str)]
        if good:
            best = max(good, key=lambda s: _int(s.get("width")) * _int(s.get("height")))
            url = best["url"]
    if url is None:  # API < 5.77: photo_75 ... photo_2560
        url = next((photo[k] for k in _OLD_PHOTO_KEYS if isinstance(photo.get(k), str)), None)
    if url is None:
        return None
    return Attachment(
        filename=f"photo{photo.get('owner_id', '')}_{photo.get('id', '')}.jpg",
        content_type="image/jpeg",
        size=0,
        url=url,
    )


def _doc(doc: Mapping[str, Any]) -> Attachment | None:
    url = doc.get("url")
    if not isinstance(url, str):
        return None
    ext = str(doc.get("ext") or "")
    title = str(doc.get("title") or f"doc{doc.get('owner_id', '')}_{doc.get('id', '')}")
    if ext and not title.lower().endswith("." + ext.lower()):
        title = f"{title}.{ext}"
    content_type = mimetypes.guess_type(title)[0] or "application/octet-stream"
    return Attachment(
        filename=title, content_type=content_type, size=_int(doc.get("size")), url=url
    )


def _voice(audio: Mapping[str, Any]) -> Attachment | None:
    for key, ctype, ext in (("link_ogg", "audio/ogg", "ogg"), ("link_mp3", "audio/mpeg", "mp3")):
        url = audio.get(key)
        if isinstance(url, str):
            name = f"voice{audio.get('owner_id', '')}_{audio.get('id', '')}.{ext}"
            return Attachment(filename=name, content_type=ctype, size=0, url=url)
    return None


_BUILDERS = {"photo": _photo, "doc": _doc, "audio_message": _voice}


def message_attachments(items: Any) -> tuple[list[Attachment], list[str]]:
    """(attachments with urls, types of the other attachments: video, sticker, wall...)."""
    found: list[Attachment] = []
    other: list[str] = []
    if not isinstance(items, list):
        return found, other
    for item in items:
        if not isinstance(item, Mapping):
            continue
        kind = str(item.get("type") or "")
        body = item.get(kind)
        builder = _BUILDERS.get(kind)
        att = builder(body) if builder and isinstance(body, Mapping) else None
        if att is None:
            other.append(kind or "unknown")
        else:
            found.append(att)
    return found, other
