"""Attachment metadata of a Telegram message (pure).  Content is fetched later, via getFile."""

from __future__ import annotations

from typing import Any

from telegram import Message

from crm_core.events import Attachment

__all__ = ["TG_FILE_PREFIX", "file_id_of", "message_attachments"]

TG_FILE_PREFIX = "tg-file:"

# message attribute -> (default content type, extension for a generated file name)
_MEDIA: tuple[tuple[str, str, str], ...] = (
    ("document", "application/octet-stream", ""),
    ("audio", "audio/mpeg", ".mp3"),
    ("video", "video/mp4", ".mp4"),
    ("voice", "audio/ogg", ".ogg"),
    ("video_note", "video/mp4", ".mp4"),
    ("animation", "video/mp4", ".mp4"),
    ("sticker", "image/webp", ".webp"),
)


def file_id_of(attachment: Attachment) -> str | None:
    """The Telegram ``file_id`` behind an attachment built here, else None."""
    url = attachment.url or ""
    return url[len(TG_FILE_PREFIX) :] if url.startswith(TG_FILE_PREFIX) else None


def _sticker_type(obj: Any, default: str) -> str:
    if getattr(obj, "is_animated", False) is True:
        return "application/x-tgsticker"
    if getattr(obj, "is_video", False) is True:
        return "video/webm"
    return default


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _is_file(obj: Any) -> bool:
    """PTB does not check JSON types: only files with string ids are files."""
    return _str(getattr(obj, "file_id", None)) is not None and (
        _str(getattr(obj, "file_unique_id", None)) is not None
    )


def message_attachments(msg: Message) -> list[Attachment]:
    out: list[Attachment] = []
    seen: set[str] = set()
    photos = [p for p in msg.photo or () if _is_file(p)] if isinstance(msg.photo, tuple) else []
    if photos:
        # Telegram sends every resolution of one photo: keep the largest.
        best = max(photos, key=lambda p: (_int(p.width) * _int(p.height), _int(p.file_size)))
        seen.add(best.file_unique_id)
        out.append(
            Attachment(
                filename=f"photo_{best.file_unique_id}.jpg",
                content_type="image/jpeg",
                size=_int(best.file_size),
                url=f"{TG_FILE_PREFIX}{best.file_id}",
            )
        )
    for attr, default_type, ext in _MEDIA:
        obj: Any = getattr(msg, attr, None)
        if not _is_file(obj) or obj.file_unique_id in seen:
            continue  # an animation also arrives as "document": keep one
        seen.add(obj.file_unique_id)
        content_type = _str(getattr(obj, "mime_type", None)) or default_type
        if attr == "sticker":
            content_type = _sticker_type(obj, default_type)
        out.append(
            Attachment(
                filename=_str(getattr(obj, "file_name", None))
                or f"{attr}_{obj.file_unique_id}{ext}",
                content_type=content_type,
                size=_int(obj.file_size),
                url=f"{TG_FILE_PREFIX}{obj.file_id}",
            )
        )
    return out
