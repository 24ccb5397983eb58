"""Settings of one VK community (a ``[[vk]]`` section of the settings file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_API_URL", "VkGroupSettings"]

DEFAULT_API_URL = "https://api.vk.ru/method/"


class VkGroupSettings(BaseModel):
    """One community: Callback API confirmation code and secret, and the API token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group_id: int = Field(gt=0)
    access_token: str = Field(min_length=1)
    confirmation_code: str = Field(min_length=1)
    secret: str = ""  # the "secret key" set in the Callback API settings; empty: not checked
    team: str | None = None
    api_version: str = "5.199"
    # "http://127.0.0.1:PORT/method/" for tests; None: https://api.vk.ru/method/
    api_base_url: str | None = None
