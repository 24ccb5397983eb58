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
    if getattr(obj, "is_animated", False):
        return "application/x-tgsticker"
    if getattr(obj, "is_video", False):
        return "video/webm"
    return default


def message_attachments(msg: Message) -> list[Attachment]:
    out: list[Attachment] = []
    seen: set[str] = set()
    if msg.photo:
        # Telegram sends every resolution of one photo: keep the largest.
        best = max(msg.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        seen.add(best.file_unique_id)
        out.append(
            Attachment(
                filename=f"photo_{best.file_unique_id}.jpg",
                content_type="image/jpeg",
                size=best.file_size or 0,
                url=f"{TG_FILE_PREFIX}{best.file_id}",
            )
        )
    for attr, default_type, ext in _MEDIA:
        obj = getattr(msg, attr, None)
        if obj is None or obj.file_unique_id in seen:
            continue  # an animation also arrives as "document": keep one
        seen.add(obj.file_unique_id)
        content_type = getattr(obj, "mime_type", None) or default_type
        if attr == "sticker":
            content_type = _sticker_type(obj, default_type)
        out.append(
            Attachment(
                filename=getattr(obj, "file_name", None) or f"{attr}_{obj.file_unique_id}{ext}",
                content_type=content_type,
                size=obj.file_size or 0,
                url=f"{TG_FILE_PREFIX}{obj.file_id}",
            )
        )
    return out
