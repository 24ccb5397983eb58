"""A fake Telegram Bot API on 127.0.0.1 and a recording fake ingest.

Speaks what PTB sends: ``POST /bot<token>/<method>`` form-encoded (nested values as
JSON strings) or multipart (files), and ``GET /file/bot<token>/<path>`` downloads.
Answers getMe, deleteWebhook, sendMessage, sendDocument, getFile, getUpdates.
``fail(method, status, ...)`` makes the next call(s) answer an error (403 blocked,
429 with ``retry_after``, 400...).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from crm_core.events import InboundEvent
from crm_core.ports import IngestReceipt, IngestUnavailable

__all__ = ["FakeCall", "FakeTelegram", "RecordingIngest"]

BOT_USER = {"id": 4242, "is_bot": True, "first_name": "Fake", "username": "fake_crm_bot"}


class RecordingIngest:
    """Records events; deduplicates on (channel, kind, external_id) like the inbox."""

    def __init__(self) -> None:
        self.events: list[InboundEvent] = []
        self.calls = 0
        self.unavailable = False
        self._ids: dict[tuple[str, str, str], int] = {}

    async def __call__(self, event: InboundEvent, *, wait: bool = False) -> IngestReceipt:
        self.calls += 1
        if self.unavailable:
            raise IngestUnavailable("database is down")
        key = (event.channel.value, event.kind.value, event.external_id)
        duplicate = key in self._ids
        if not duplicate:
            self._ids[key] = len(self._ids) + 1
            self.events.append(event)
        status = "failed" if "parse_error" in event.meta else "pending"
        return IngestReceipt(event_id=self._ids[key], duplicate=duplicate, status=status)


@dataclass
class FakeCall:
    token: str
    method: str
    params: dict[str, str]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None = None


class FakeTelegram:
    def __init__(self, tokens: set[str] | None = None, *, max_poll_wait: float = 0.2) -> None:
        self.tokens = tokens  # None: any token is valid
        self.max_poll_wait = max_poll_wait
        self.calls: list[FakeCall] = []
        self.sent: list[dict[str, Any]] = []  # messages "delivered" to chats
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, content)
        self.updates: list[dict[str, Any]] = []
        self.offsets: list[int | None] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._stalls: dict[str, list[float]] = {}
        self._ids = itertools.count(1000)
        self._new_update = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- control --------------------------------------------------------------------------
    def fail(
        self,
        method: str,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        self._failures.setdefault(method, []).extend(
            [_Failure(status, description, retry_after)] * times
        )

    def stall(self, method: str, seconds: float, *, times: int = 1) -> None:
        """The next call(s) of ``method`` are carried out, then answered ``seconds`` late
        (the client's read timeout fires after Telegram already delivered)."""
        self._stalls.setdefault(method, []).extend([seconds] * times)

    def add_file(self, file_id: str, content: bytes, path: str = "documents/file.bin") -> None:
        self.files[file_id] = (path, content)

    def push_update(self, update: dict[str, Any]) -> None:
        self.updates.append(update)
        self._new_update.set()

    def calls_of(self, method: str) -> list[FakeCall]:
        return [c for c in self.calls if c.method == method]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- server ---------------------------------------------------------------------------
    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _err(status: int, description: str, retry_after: int | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return web.json_response(body, status=status)

    async def _api(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"]
        params: dict[str, str] = {}
        files: dict[str, tuple[str, bytes]] = {}
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = (value.filename, value.file.read())
            else:
                params[key] = str(value)
        self.calls.append(FakeCall(token, method, params, files))
        if self.tokens is not None and token not in self.tokens:
            return self._err(401, "Unauthorized")
        queue = self._failures.get(method)
        if queue:
            failure = queue.pop(0)
            return self._err(failure.status, failure.description, failure.retry_after)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._err(404, "Not Found")
        result: web.Response = await handler(params, files)
        stalls = self._stalls.get(method)
        if stalls:
            await asyncio.sleep(stalls.pop(0))
        return result

    async def _m_getMe(self, params: dict[str, str], files: dict[str, Any]) -> web.Response:
        return self._ok(BOT_USER)

    async def _m_deleteWebhook(self, params: dict[str, str], files: Any) -> web.Response:
        return self._ok(True)

    def _message(self, chat_id: str, **extra: Any) -> dict[str, Any]:
        chat: int | str = int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id
        msg = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private"},
            "from": BOT_USER,
            **extra,
        }
        self.sent.append(msg)
        return msg

    async def _m_sendMessage(self, params: dict[str, str], files: Any) -> web.Response:
        if not params.get("text"):
            return self._err(400, "Bad Request: message text is empty")
        return self._ok(self._message(params["chat_id"], text=params["text"]))

    async def _m_sendDocument(
        self, params: dict[str, str], files: dict[str, tuple[str, bytes]]
    ) -> web.Response:
        if "document" not in files:
            return self._err(400, "Bad Request: there is no document in the request")
        name, content = files["document"]
        doc = {
            "file_id": f"doc-{len(self.sent)}",
            "file_unique_id": f"udoc-{len(self.sent)}",
            "file_name": name,
            "file_size": len(content),
        }
        extra: dict[str, Any] = {"document": doc}
        if params.get("caption"):
            extra["caption"] = params["caption"]
        return self._ok(self._message(params["chat_id"], **extra))

    async def _m_getFile(self, params: dict[str, str], files: Any) -> web.Response:
        file_id = params.get("file_id", "")
        if file_id not in self.files:
            return self._err(400, "Bad Request: invalid file_id")
        path, content = self.files[file_id]
        return self._ok(
            {
                "file_id": file_id,
                "file_unique_id": f"u-{file_id}",
                "file_size": len(content),
                "file_path": path,
            }
        )

    async def _m_getUpdates(self, params: dict[str, str], files: Any) -> web.Response:
        offset = int(params["offset"]) if "offset" in params else None
        self.offsets.append(offset)
        if offset is not None:  # confirmed: Telegram forgets them
            self.updates = [u for u in self.updates if u.get("update_id", 0) >= offset]
        if not self.updates:
            self._new_update.clear()
            timeout = min(float(params.get("timeout", "0")), self.max_poll_wait)
            try:
                await asyncio.wait_for(self._new_update.wait(), timeout)
            except TimeoutError:
                pass
        limit = int(params.get("limit", "100"))
        return self._ok(self.updates[:limit])

    async def _download(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        for file_path, content in self.files.values():
            if file_path == path:
                return web.Response(body=content, content_type="application/octet-stream")
        return web.Response(status=404, text="not found")
