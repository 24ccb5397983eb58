"""Errors of an import, each in English and Russian."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ImportFileError", "RowError"]


class ImportFileError(ValueError):
    """The file as a whole cannot be imported; nothing is written."""

    def __init__(self, message: str, message_ru: str, field: str = "file") -> None:
        super().__init__(message)
        self.message = message
        self.message_ru = message_ru
        self.field = field

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "error": self.message, "error_ru": self.message_ru}


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem in one row; ``row`` is the row number as Excel shows it."""

    row: int
    column: str | None
    value: Any
    error: str
    error_ru: str

    def as_dict(self) -> dict[str, Any]:
        value = self.value if isinstance(self.value, int | float | str | None) else str(self.value)
        return {
            "row": self.row,
            "column": self.column,
            "value": value,
            "error": self.error,
            "error_ru": self.error_ru,
        }
