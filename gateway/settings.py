"""Settings: a TOML file (``--config``) overlaid by ``CRMHUB_*`` environment variables.

Nested keys use ``__``; list items are addressed by index, so
``CRMHUB_ASTERISK__0__HOST=10.0.0.5`` sets the host of the first ``[[asterisk]]`` table
(creating it when the file has none).  Environment wins over the file.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connectors.asterisk.config import AsteriskSettings
from connectors.email.config import ImapSettings, SmtpSettings
from connectors.telegram.config import TelegramBotSettings
from connectors.vk.config import VkGroupSettings

__all__ = ["HttpSettings", "Settings", "SettingsError", "WebformSettings", "load_settings"]

ENV_PREFIX = "CRMHUB_"
DEFAULT_DB = "sqlite+aiosqlite:///./var/crmhub.db"


class SettingsError(ValueError):
    """A settings file or variable is wrong; the message names it."""


class WebformSettings(BaseModel):
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    rate_per_minute: int = Field(default=30, ge=1)
    trust_forwarded: bool = False


class HttpSettings(BaseModel):
    """Server timeouts and who sees health details (see config/crmhub.example.toml)."""

    # Complete request headers must arrive within this time of the connection opening
    # or of the previous answer (slowloris); an idle keep-alive connection closes then too.
    header_timeout_seconds: float = Field(default=15.0, gt=0)
    # A request body (POST/PUT/PATCH) must have arrived whole within this time.
    body_timeout_seconds: float = Field(default=120.0, gt=0)
    # Addresses/networks that see /readyz details (errors) without an admin token.
    status_details_from: list[str] = Field(default_factory=list)

    @field_validator("status_details_from", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:  # CRMHUB_HTTP__STATUS_DETAILS_FROM=a,b
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("status_details_from")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid")

    database_url: str = DEFAULT_DB
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    region: str = Field(default="RU", min_length=2, max_length=2)
    timezone: str = "Europe/Moscow"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    attachments_dir: str = "./var/attachments"
    routing_rules_path: str | None = "config/routing.yaml"
    # The address clients and websites reach crmhub at (CRMHUB_PUBLIC_URL), e.g.
    # https://crm.example.ru: form webhook URLs and links in emails use it.  Unset: the
    # address the admin's browser used.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    # Signs unsubscribe links (CRMHUB_SECRET_KEY); every hub process needs the same one.
    # Unset: a random key made once and kept in the database.  Changing it voids the
    # unsubscribe links of every email already sent (docs/deploy.md).
    secret_key: str | None = Field(default=None, min_length=16, repr=False)
    callback_due_minutes: int = Field(default=30, ge=1)
    ingest_wait_seconds: float = Field(default=5.0, ge=0)
    poll_interval: float = Field(default=1.0, gt=0)
    run_workers: bool = True
    sla_poll_seconds: float = Field(default=15.0, ge=0)  # 0: no SLA/reminder worker here
    sla_warning_minutes: float = Field(default=5.0, ge=0)
    sla_warning_fraction: float = Field(default=0.2, ge=0, le=1)
    sla_email: bool = True  # SLA warnings also by email when [smtp] is configured
    live_recheck_seconds: float = Field(default=3.0, gt=0)  # open streams vs users table
    # Sign-in sessions (docs/sign-in.md): end after this many hours without a request,
    # and this many days after sign-in whatever happens.
    session_idle_hours: float = Field(default=168.0, gt=0, le=24 * 366)
    session_max_days: float = Field(default=30.0, gt=0, le=366)
    shutdown_drain_seconds: float = Field(default=10.0, ge=0)  # SIGTERM: finish persisted events
    import_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1)  # client base import file
    import_max_rows: int = Field(default=200_000, ge=1)  # rows of one sheet
    # An import job's lease: a hub that stops renewing it (a crash) loses the job to the
    # next hub (or itself after a restart) this many seconds later.
    import_lease_seconds: float = Field(default=30.0, gt=0)
    webforms: WebformSettings = Field(default_factory=WebformSettings)
    asterisk: list[AsteriskSettings] = Field(default_factory=list)
    imap: list[ImapSettings] = Field(default_factory=list)
    smtp: SmtpSettings | None = None
    # Campaigns: more sending accounts by name ([smtp] is "default"); their limits and
    # concurrency are on each account.  Managers may start campaigns to their own clients
    # only when allowed; a sending process that dies loses its campaign after the lease.
    smtp_accounts: dict[str, SmtpSettings] = Field(default_factory=dict)
    campaigns_managers_allowed: bool = False
    campaign_lease_seconds: float = Field(default=30.0, gt=0)
    telegram: list[TelegramBotSettings] = Field(default_factory=list)
    vk: list[VkGroupSettings] = Field(default_factory=list)
    # Seconds a write waits for the database before the sender gets 503 + Retry-After.
    database_busy_timeout: float = Field(default=10.0, gt=0, le=600)
    http: HttpSettings = Field(default_factory=HttpSettings)
    # Roles whose users must sign in with two-factor (TOTP): one without it is sent to
    # enrolment right after the password step (crmhub.toml: two_factor_roles = ["admin"]).
    two_factor_roles: list[Literal["admin", "supervisor", "manager"]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _default_names(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for i, item in enumerate(data.get("asterisk") or []):
                if isinstance(item, dict):
                    item.setdefault("name", f"pbx{i + 1}" if i else "pbx")
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings() merges the file and the environment itself (list indices).
        return (init_settings,)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if not path or path[0] in ("config", "test_pg"):
            continue
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SettingsError(f"{name}: {part!r} is both a value and a section")
        node[path[-1]] = value
    return out


def _merge(base: Any, over: Any, where: str) -> Any:
    if isinstance(over, dict) and isinstance(base, list):
        items = list(base)
        for key, val in over.items():
            if not key.isdigit():
                raise SettingsError(f"{where}: list items are addressed by index, not {key!r}")
            idx = int(key)
            while len(items) <= idx:
                items.append({})
            items[idx] = _merge(items[idx], val, f"{where}[{idx}]")
        return items
    if isinstance(over, dict) and isinstance(base, dict):
        merged = dict(base)
        for key, val in over.items():
            merged[key] = _merge(base.get(key), val, f"{where}.{key}" if where else key)
        return merged
    if isinstance(over, dict) and base is None and over and all(k.isdigit() for k in over):
        return _merge([], over, where)
    return over


def load_settings(
    config: str | Path | None = None, environ: dict[str, str] | None = None, **overrides: Any
) -> Settings:
    """Read ``config`` (TOML) and the environment; raise :class:`SettingsError` on errors."""
    env = dict(os.environ if environ is None else environ)
    config = config or env.get("CRMHUB_CONFIG")
    data: dict[str, Any] = {}
    if config:
        path = Path(config)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"settings file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"settings file {path}: {exc}") from None
    data = _merge(data, _env_overrides(env), "")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
