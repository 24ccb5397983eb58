"""Settings of one Telegram bot (a ``[[telegram]]`` section of the settings file)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_BASE_URL", "TelegramBotSettings"]

DEFAULT_BASE_URL = "https://api.telegram.org/bot"


class TelegramBotSettings(BaseModel):
    """One bot: its name (the webhook path segment), token and webhook secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    token: str = Field(min_length=1)
    webhook_secret: str = ""
    team: str | None = None
    # Bot API base, the token is appended ("http://127.0.0.1:8081/bot" for a local
    # Bot API server or a test fake).  None: api.telegram.org.
    base_url: str | None = None
    polling: bool = False
    # Connect, read and write timeout of each Bot API call (long polling adds its wait).
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Download media (photos, documents...) via getFile before ingest, up to this size.
    media_max_bytes: int = Field(default=20 * 1024 * 1024, ge=0)

    @field_validator("webhook_secret")
    @classmethod
    def _secret_charset(cls, value: str) -> str:
        # Telegram allows 1-256 characters A-Z, a-z, 0-9, _ and - in secret_token.
        if value and (len(value) > 256 or not all(c.isalnum() or c in "_-" for c in value)):
            raise ValueError("webhook_secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @property
    def api_base_url(self) -> str:
        return self.base_url or DEFAULT_BASE_URL

    @property
    def file_base_url(self) -> str:
        """Where files are downloaded from: ``.../bot`` becomes ``.../file/bot``."""
        base = self.api_base_url
        if base.endswith("/bot"):
            return base[: -len("/bot")] + "/file/bot"
        return base.rstrip("/") + "/file/bot"
