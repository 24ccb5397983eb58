"""What the database says a sheet may hold: the client statuses (an admin-editable list)
and the custom fields.  Pure data: :func:`crm_core.services.imports.load_catalog` fills it
from the database; the reader only looks things up here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crm_core.imports.fields import CUSTOM_PREFIX, header_key

__all__ = ["DEFAULT_STATUSES", "Catalog", "CustomSpec"]

# (key, Russian name, English name): the default list (migration 0006)
DEFAULT_STATUSES = (
    ("cold", "Холодный", "Cold"),
    ("thinking", "Думает", "Thinking"),
    ("ready", "Готов купить", "Ready to buy"),
    ("active", "Активный", "Active"),
    ("regular", "Постоянный", "Regular"),
    ("lost", "Потерян", "Lost"),
)
# Other words people write for the default statuses (used when that key exists).
_SYNONYMS = {
    "cold": ("холодная",),
    "thinking": ("warm", "теплый", "теплая", "думает"),
    "ready": ("hot", "готов", "горячий", "горячая"),
    "active": ("активная", "в работе"),
    "regular": ("permanent", "постоянная"),
    "lost": ("потерянный", "потеряна", "ушел"),
}


@dataclass(frozen=True, slots=True)
class CustomSpec:
    key: str
    label_ru: str
    label_en: str
    type: str  # text | number | date | choice | multi
    options: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return CUSTOM_PREFIX + self.key


def option_value(option: Any) -> str:
    """An option as stored: a string, or a dict's ``value``/``key``/``label_ru``."""
    if isinstance(option, dict):
        for k in ("value", "key", "label_ru", "label", "label_en"):
            if option.get(k):
                return str(option[k])
        return ""
    return str(option)


@dataclass(slots=True)
class Catalog:
    statuses: list[tuple[str, str, str]] = field(default_factory=lambda: list(DEFAULT_STATUSES))
    custom: list[CustomSpec] = field(default_factory=list)
    _status_by_key: dict[str, str] = field(default_factory=dict)
    _custom_by_header: dict[str, CustomSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        keys = {k for k, _, _ in self.statuses}
        for key, synonyms in _SYNONYMS.items():
            if key in keys:
                for word in synonyms:
                    self._status_by_key.setdefault(header_key(word), key)
        for key, ru, en in self.statuses:  # the list's own names win
            for word in (key, ru, en):
                if word:
                    self._status_by_key[header_key(word)] = key
        for spec in self.custom:
            for word in (spec.key, spec.label_en, spec.label_ru):
                if word:
                    self._custom_by_header[header_key(word)] = spec

    def status(self, text: str) -> str | None:
        return self._status_by_key.get(header_key(text))

    def status_names(self) -> str:
        return ", ".join(ru for _, ru, _ in self.statuses)

    def custom_for_header(self, text: str) -> CustomSpec | None:
        return self._custom_by_header.get(header_key(text))

    def custom_by_name(self, name: str) -> CustomSpec | None:
        return next((c for c in self.custom if c.name == name), None)
