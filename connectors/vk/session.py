"""A ``requests.Session`` for vk-api: default timeout, and the API base rewritten for tests."""

from __future__ import annotations

from typing import Any

import requests

from connectors.vk.config import DEFAULT_API_URL, VkGroupSettings

__all__ = ["VK_API_PREFIXES", "VkSession", "make_vk_session"]

VK_API_PREFIXES = ("https://api.vk.ru/method/", "https://api.vk.com/method/")


class VkSession(requests.Session):
    """Sends ``https://api.vk.ru/method/...`` to ``api_base_url`` (vk-api has no base URL
    option) and never waits forever (vk-api passes no timeout)."""

    def __init__(self, api_base_url: str | None = None, *, timeout: float = 30.0) -> None:
        super().__init__()
        self.api_base_url = (api_base_url or DEFAULT_API_URL).rstrip("/") + "/"
        self.timeout = timeout

    def rewrite(self, url: str) -> str:
        for prefix in VK_API_PREFIXES:
            if url.startswith(prefix):
                return self.api_base_url + url[len(prefix) :]
        return url

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if isinstance(url, str):
            url = self.rewrite(url)
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def make_vk_session(settings: VkGroupSettings, *, timeout: float = 30.0) -> VkSession:
    return VkSession(settings.api_base_url, timeout=timeout)
