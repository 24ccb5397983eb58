"""Replies to VK: ``messages.send`` through vk-api in a worker thread (an OutboundExecutor).

Payload: ``{"group_id": int, "peer_id": int, "text": str, "random_id": int}`` plus
optional ``attachment`` (VK attachment string), ``files`` (local paths, at most 10: each
uploaded as a message document with ``docs.getMessagesUploadServer`` -> upload ->
``docs.save`` (vk-api's ``VkUpload``) and attached) and ``reply_to``.  ``random_id`` is
stored in the outbox row and passed again on retry: VK drops a second message with
the same ``random_id`` from the same community, so a retry never delivers twice.
Without one, it is derived from the idempotency key (stable across retries).

Errors: 901/902 (messages not allowed / privacy) -> FAILED with
``meta["unreachable"] = "vk:<peer_id>"``; 6/9/10 (too many requests, flood, internal)
and network/HTTP errors -> RETRY; captcha (14) -> RETRY after a minute; others FAILED.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jconfig
import requests
import vk_api
from vk_api.exceptions import TOO_MANY_RPS_CODE, ApiError, ApiHttpError, Captcha, VkApiError
from vk_api.upload import VkUpload

from connectors.vk.config import VkGroupSettings
from connectors.vk.session import make_vk_session
from crm_core.ports import OutboundCommand, OutboundResult, OutboundStatus

__all__ = ["VkOutbound", "new_random_id", "random_id_for"]

UNREACHABLE_CODES = frozenset({901, 902})
RETRY_CODES: Mapping[int, float | None] = {6: 1.0, 9: 60.0, 10: None}
TEXT_LIMIT = 4096
MAX_FILES = 10  # VK's limit of attachments per message

SessionFactory = Callable[[VkGroupSettings], requests.Session]


def new_random_id() -> int:
    """A fresh ``random_id`` for a new outbox row (positive int32)."""
    return secrets.randbelow(2**31 - 2) + 1


def random_id_for(idempotency_key: str) -> int:
    """A ``random_id`` derived from an idempotency key: the same on every retry."""
    digest = hashlib.sha256(idempotency_key.encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 1) + 1


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit():
        return int(value)
    return None


def _failed(detail: str, **meta: Any) -> OutboundResult:
    return OutboundResult(status=OutboundStatus.FAILED, detail=detail, meta=meta)


class VkOutbound:
    channel = "vk"

    def __init__(
        self,
        groups: Mapping[int, VkGroupSettings],
        *,
        session_factory: SessionFactory | None = None,
    ) -> None:
        self.groups = dict(groups)
        self.session_factory: SessionFactory = session_factory or make_vk_session
        self._apis: dict[int, vk_api.VkApi] = {}
        self._lock = threading.Lock()

    def api_for(self, group_id: int) -> vk_api.VkApi:
        with self._lock:
            api = self._apis.get(group_id)
            if api is None:
                settings = self.groups[group_id]
                api = vk_api.VkApi(
                    token=settings.access_token,
                    api_version=settings.api_version,
                    session=self.session_factory(settings),
                    config=jconfig.MemoryConfig,  # no vk_config.v2.json on disk
                )
                # vk-api sleeps and retries error 6 forever: let the outbox back off instead.
                api.error_handlers[TOO_MANY_RPS_CODE] = lambda error: None
                self._apis[group_id] = api
            return api

    @staticmethod
    def _files(payload: Mapping[str, Any]) -> list[Path]:
        raw = payload.get("files") or []
        if not isinstance(raw, list) or not all(isinstance(f, str) for f in raw):
            raise ValueError("files must be a list of paths")
        if len(raw) > MAX_FILES:
            raise ValueError(f"at most {MAX_FILES} files per VK message, got {len(raw)}")
        paths = [Path(f) for f in raw]
        for path in paths:
            if not path.is_file():
                raise ValueError(f"file to send is missing: {path.name}")
        return paths

    @staticmethod
    def _upload(api: vk_api.VkApi, peer_id: int, files: list[Path]) -> list[str]:
        """Upload each file as a message document; returns ``doc<owner>_<id>`` strings.
        Runs in a worker thread (vk-api is synchronous)."""
        upload = VkUpload(api)
        out = []
        for path in files:
            saved = upload.document_message(str(path), title=path.name, peer_id=peer_id)
            doc = saved.get(saved.get("type") or "doc") if isinstance(saved, Mapping) else None
            if not isinstance(doc, Mapping) or "id" not in doc or "owner_id" not in doc:
                raise ValueError(f"docs.save answered without a document: {saved!r}"[:300])
            out.append(f"doc{doc['owner_id']}_{doc['id']}")
        return out

    def _values(self, command: OutboundCommand) -> tuple[int, dict[str, Any]]:
        payload = command.payload
        group_id = _int(payload.get("group_id"))
        if group_id is None or group_id not in self.groups:
            raise ValueError(f"unknown VK group {payload.get('group_id')!r}")
        peer_id = _int(payload.get("peer_id"))
        if peer_id is None or peer_id == 0:
            raise ValueError(f"peer_id must be a non-zero integer, got {payload.get('peer_id')!r}")
        text = payload.get("text") or ""
        attachment = payload.get("attachment")
        if not isinstance(text, str) or len(text) > TEXT_LIMIT:
            raise ValueError(f"text must be a string of at most {TEXT_LIMIT} characters")
        if not text.strip() and not attachment and not payload.get("files"):
            raise ValueError("nothing to send: text is empty")
        random_id = _int(payload.get("random_id"))
        if random_id is None:
            random_id = random_id_for(command.idempotency_key)
        values: dict[str, Any] = {"peer_id": peer_id, "message": text, "random_id": random_id}
        if attachment:
            values["attachment"] = str(attachment)
        reply_to = _int(payload.get("reply_to"))
        if reply_to:
            values["reply_to"] = reply_to
        return group_id, values

    async def execute(self, command: OutboundCommand) -> OutboundResult:
        if command.kind != "send_message":
            return _failed(f"unsupported command kind {command.kind!r}")
        try:
            group_id, values = self._values(command)
            files = self._files(command.payload)
        except ValueError as exc:
            return _failed(str(exc))
        peer_id = values["peer_id"]
        try:
            api = self.api_for(group_id)
            if files:
                # A retry uploads again (VK keeps unused uploads); random_id still
                # guarantees that the message itself is delivered once.
                docs = await asyncio.to_thread(self._upload, api, peer_id, files)
                values["attachment"] = ",".join(filter(None, [values.get("attachment"), *docs]))
            result = await asyncio.to_thread(api.method, "messages.send", values)
        except Captcha as exc:
            return OutboundResult(
                status=OutboundStatus.RETRY, retry_after=60.0, detail=f"captcha: {exc}"
            )
        except ApiError as exc:
            if exc.code in UNREACHABLE_CODES:
                return _failed(
                    f"VK error {exc.code}: {exc.error.get('error_msg')}",
                    unreachable=f"vk:{peer_id}",
                )
            if exc.code in RETRY_CODES:
                return OutboundResult(
                    status=OutboundStatus.RETRY,
                    retry_after=RETRY_CODES[exc.code],
                    detail=f"VK error {exc.code}: {exc.error.get('error_msg')}",
                )
            return _failed(f"VK error {exc.code}: {exc.error.get('error_msg')}")
        except (ApiHttpError, requests.RequestException) as exc:
            return OutboundResult(status=OutboundStatus.RETRY, detail=f"network error: {exc}")
        except (VkApiError, ValueError) as exc:  # ValueError: a body that is not JSON
            return OutboundResult(status=OutboundStatus.RETRY, detail=f"bad response: {exc}")
        message_id = result if isinstance(result, int) else None
        if isinstance(result, list) and result and isinstance(result[0], Mapping):
            message_id = _int(
                result[0].get("message_id") or result[0].get("conversation_message_id")
            )
        return OutboundResult(
            status=OutboundStatus.SENT,
            external_id=str(message_id) if message_id is not None else None,
            meta={"random_id": values["random_id"], "peer_id": peer_id, "group_id": group_id},
        )
