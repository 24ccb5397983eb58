"""A mapping file overrides which column means which field.

.. code-block:: yaml

    sheet: Клиенты          # optional
    header_row: 3           # optional, as Excel shows it
    columns:
      "Клиент (полное)": name
      "Телефон для SMS": phones
      "Служебная колонка": null   # ignored
      "Канал продаж": custom.channel  # a custom field by its key

Parsed with ``yaml.safe_load``; anchors and aliases are refused before parsing (an
alias bomb expands to gigabytes from a few lines).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from crm_core.imports.errors import ImportFileError
from crm_core.imports.fields import FIELDS_BY_NAME, header_key, is_field

__all__ = ["MAX_MAPPING_BYTES", "Mapping", "parse_mapping"]

MAX_MAPPING_BYTES = 64 * 1024


@dataclass(slots=True)
class Mapping:
    columns: dict[str, str | None] = field(default_factory=dict)  # header_key -> field
    sheet: str | None = None
    header_row: int | None = None


def _fail(en: str, ru: str) -> ImportFileError:
    return ImportFileError(f"mapping: {en}", f"файл соответствия: {ru}", "mapping")


def parse_mapping(text: str | bytes) -> Mapping:
    if isinstance(text, bytes):
        if len(text) > MAX_MAPPING_BYTES:
            raise _fail("file is larger than 64 KB", "файл больше 64 КБ")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise _fail("file is not UTF-8 text", "файл не в кодировке UTF-8") from None
    if len(text) > MAX_MAPPING_BYTES:
        raise _fail("file is larger than 64 KB", "файл больше 64 КБ")
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.AnchorToken | yaml.AliasToken):
                raise _fail(
                    "YAML anchors and aliases (&, *) are not allowed",
                    "якоря и ссылки YAML (&, *) не допускаются",
                )
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(f"not valid YAML: {exc}", f"некорректный YAML: {exc}") from None
    if data is None:
        return Mapping()
    if not isinstance(data, dict):
        raise _fail("must be a YAML mapping", "должен быть словарём YAML")
    unknown = set(data) - {"columns", "sheet", "header_row"}
    if unknown:
        keys = ", ".join(sorted(map(str, unknown)))
        raise _fail(
            f"unknown keys {keys} (allowed: columns, sheet, header_row)",
            f"неизвестные ключи {keys} (допустимы: columns, sheet, header_row)",
        )
    columns = data.get("columns") or {}
    if not isinstance(columns, dict):
        raise _fail("columns must map a header to a field", "columns: заголовок -> поле")
    out = Mapping()
    for header, name in columns.items():
        if name is not None and (not isinstance(name, str) or not is_field(name)):
            allowed = ", ".join(FIELDS_BY_NAME) + ", custom.<key>"
            raise _fail(
                f"column {header!r}: unknown field {name!r} (known: {allowed})",
                f"колонка {header!r}: неизвестное поле {name!r} (известны: {allowed})",
            )
        out.columns[header_key(header)] = name
    sheet = data.get("sheet")
    if sheet is not None and not isinstance(sheet, str):
        raise _fail("sheet must be text", "sheet должен быть строкой")
    out.sheet = sheet
    header_row = data.get("header_row")
    if header_row is not None and (not isinstance(header_row, int) or header_row < 1):
        raise _fail("header_row must be a row number >= 1", "header_row: номер строки >= 1")
    out.header_row = header_row
    return out
