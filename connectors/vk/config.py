"""Settings of one VK community (a ``[[vk]]`` section of the settings file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DEFAULT_API_URL", "VkGroupSettings"]

DEFAULT_API_URL = "https://api.vk.ru/method/"


class VkGroupSettings(BaseModel):
    """One community: Callback API confirmation code and secret, and the API token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group_id: int = Field(gt=0)
    access_token: str = Field(min_length=1)
    confirmation_code: str = Field(min_length=1)
    # The "secret key" of the Callback API settings; required: without it anyone could
    # post events in the community's name.
    secret: str = ""
    team: str | None = None
    api_version: str = "5.199"
    # "http://127.0.0.1:PORT/method/" for tests; None: https://api.vk.ru/method/
    api_base_url: str | None = None
    max_body_bytes: int = Field(default=512 * 1024, ge=16 * 1024)  # larger: 413

    @model_validator(mode="after")
    def _secret_is_set(self) -> VkGroupSettings:
        if not self.secret.strip():
            raise ValueError(
                f"VK community {self.group_id}: the Callback API secret is empty; set "
                "`secret` to the community's Callback API secret key (Manage -> API usage "
                "-> Callback API -> Secret key) / задайте секретный ключ Callback API"
            )
        return self
