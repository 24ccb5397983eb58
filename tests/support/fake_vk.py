"""A fake VK API (``POST /method/<name>``) on 127.0.0.1 for vk-api via a rewriting session.

``messages.send`` deduplicates on ``random_id`` per access token like VK does: a
second call with the same non-zero ``random_id`` returns the first message id and
delivers nothing.  ``fail(code, msg, times)`` makes the next call(s) answer a VK
error; ``fail_http(status)`` an HTTP error.  Documents go the real way:
``docs.getMessagesUploadServer`` -> multipart ``POST`` of ``file`` to the upload URL ->
``docs.save`` -> ``doc<owner>_<id>``, recorded in ``uploads``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.fake_telegram import RecordingIngest

__all__ = ["FakeVk", "RecordingIngest", "VkCall"]


@dataclass
class VkCall:
    method: str
    params: dict[str, str]

    @property
    def random_id(self) -> int | None:
        value = self.params.get("random_id")
        return int(value) if value is not None else None


class FakeVk:
    def __init__(self, tokens: set[str] | None = None) -> None:
        self.tokens = tokens
        self.calls: list[VkCall] = []
        self.delivered: list[dict[str, Any]] = []
        self.uploads: dict[str, dict[str, Any]] = {}  # file token -> name, content, doc id
        self._docs = itertools.count(9001)
        self._by_random_id: dict[tuple[str, int], int] = {}
        self._failures: list[tuple[int, str]] = []
        self._http_failures: list[int] = []
        self._ids = itertools.count(501)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def fail(self, code: int, message: str, *, times: int = 1) -> None:
        self._failures.extend([(code, message)] * times)

    def fail_http(self, status: int, *, times: int = 1) -> None:
        self._http_failures.extend([status] * times)

    @property
    def api_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/method/"

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/method/{name}", self._method)
        app.router.add_post("/upload/{peer_id}", self._upload)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        return self.api_base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @staticmethod
    def _error(code: int, message: str) -> web.Response:
        return web.json_response({"error": {"error_code": code, "error_msg": message}})

    async def _method(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        self.calls.append(VkCall(name, params))
        if self._http_failures:
            return web.Response(status=self._http_failures.pop(0), text="bad gateway")
        token = params.get("access_token", "")
        if self.tokens is not None and token not in self.tokens:
            return self._error(5, "User authorization failed: invalid access_token")
        if self._failures:
            return self._error(*self._failures.pop(0))
        if name == "docs.getMessagesUploadServer":
            url = f"http://127.0.0.1:{self.port}/upload/{params.get('peer_id', '')}"
            return web.json_response({"response": {"upload_url": url}})
        if name == "docs.save":
            up = self.uploads.get(params.get("file", ""))
            if up is None:
                return self._error(100, "One of the parameters specified was missing or invalid")
            up["title"] = params.get("title")
            doc = {"id": up["doc_id"], "owner_id": -1, "title": up["title"], "ext": "pdf"}
            return web.json_response({"response": {"type": "doc", "doc": doc}})
        if name != "messages.send":
            return self._error(3, "Unknown method passed")
        random_id = int(params.get("random_id", "0") or 0)
        if random_id and (token, random_id) in self._by_random_id:
            return web.json_response({"response": self._by_random_id[(token, random_id)]})
        message_id = next(self._ids)
        if random_id:
            self._by_random_id[(token, random_id)] = message_id
        self.delivered.append(
            {
                "id": message_id,
                "peer_id": int(params["peer_id"]),
                "text": params.get("message", ""),
                "random_id": random_id,
                "attachment": params.get("attachment"),
                "v": params.get("v"),
            }
        )
        return web.json_response({"response": message_id})

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        part = form.get("file")
        if not isinstance(part, web.FileField):
            return web.json_response({"error": "no file"})
        token = f"upload-{len(self.uploads) + 1}"
        self.uploads[token] = {
            "name": part.filename,
            "content": part.file.read(),
            "peer_id": request.match_info["peer_id"],
            "doc_id": next(self._docs),
        }
        return web.json_response({"file": token})
