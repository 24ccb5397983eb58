"""Open an XLSX or CSV file as a stream of (row number, cells), with clear errors."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from crm_core.imports.errors import ImportFileError

__all__ = ["Limits", "Table", "cell_text", "open_table"]

_RARE_1251 = frozenset(bytes(range(0x80, 0xC0)).decode("windows-1251", "ignore")) - frozenset(
    "«»№–—…•°±§©®\u00a0“”‘’„Ёё\u00ad™€"
)
_MIXED_CASE = re.compile("[а-яё][А-ЯЁ]")
_CYRILLIC_WORD = re.compile("[А-Яа-яЁё]{3,}")

_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 50 * 1024 * 1024
    max_rows: int = 200_000


@dataclass(slots=True)
class Table:
    """Rows of one sheet: ``rows`` yields (row number as Excel shows it, cell texts)."""

    rows: Iterator[tuple[int, list[str]]]
    sheet: str | None
    fmt: str  # xlsx | csv
    detail: str = ""  # encoding and delimiter of a CSV
    sheets: list[str] = field(default_factory=list)  # every sheet of a workbook
    closers: list[Callable[[], None]] = field(default_factory=list)
    last_row: int | None = None  # the last row number, as the file declares it

    def close(self) -> None:
        """Stop reading (closes the workbook of an XLSX, read or not)."""
        close = getattr(self.rows, "close", None)
        if close is not None:
            close()
        for closer in self.closers:
            closer()


def _unquote(cell: str) -> str:
    """A CSV cell that a spreadsheet export made formula-safe (OWASP: a ``'`` before
    ``= + - @``, tab or CR, as ``crmhub export`` writes) reads back as it was."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in "=+-@\t\r":
        return cell[1:]
    return cell


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def open_table(path: str | Path, *, sheet: str | None = None, limits: Limits = Limits()) -> Table:
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError as exc:
        raise ImportFileError(
            f"cannot read {path.name}: {exc.strerror}",
            f"не удалось прочитать {path.name}: {exc.strerror}",
        ) from None
    if size > limits.max_bytes:
        mb = limits.max_bytes / 1024 / 1024
        raise ImportFileError(
            f"file is {size} bytes, more than the limit of {mb:g} MB",
            f"файл размером {size} байт больше предела {mb:g} МБ",
        )
    if size == 0:
        raise ImportFileError("file is empty", "файл пуст")
    if head.startswith(_OLE):
        with path.open("rb") as fh:
            blob = fh.read(min(size, 1024 * 1024))
        if _ENCRYPTED in blob:
            raise _protected()
        raise ImportFileError(
            "old Excel .xls format is not supported; save the file as .xlsx or CSV",
            "старый формат Excel .xls не поддерживается; сохраните файл как .xlsx или CSV",
        )
    if head.startswith(_ZIP):
        return _open_xlsx(path, sheet, limits)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(head):
        raise ImportFileError(
            "text in UTF-16 is not supported; save the CSV as UTF-8",
            "текст в UTF-16 не поддерживается; сохраните CSV в UTF-8",
            "encoding",
        )
    if b"\x00" in head:
        raise ImportFileError(
            "not a spreadsheet: expected .xlsx or CSV text (UTF-8 or windows-1251)",
            "это не таблица: ожидается .xlsx или CSV (UTF-8 или windows-1251)",
        )
    return _open_csv(path.read_bytes(), limits)


def _open_xlsx(path: Path, sheet: str | None, limits: Limits) -> Table:
    """An .xlsx with python-calamine (Rust): formulas give their cached values, the
    workbook's cells are read in one pass, an order of magnitude faster than openpyxl."""
    import python_calamine as pc

    try:
        wb = pc.CalamineWorkbook.from_path(str(path))
    except pc.PasswordError:
        raise _protected() from None
    except (pc.CalamineError, pc.ZipError, pc.XmlError, OSError, ValueError) as exc:
        raise ImportFileError(
            f"the .xlsx file is corrupt or not an Excel workbook ({type(exc).__name__})",
            f"файл .xlsx повреждён или не является книгой Excel ({type(exc).__name__})",
        ) from None
    names = [str(n) for n in wb.sheet_names]
    if not names:
        raise ImportFileError("the workbook has no sheets", "в книге нет листов", "sheet")
    if sheet is not None and sheet not in names:
        listed = ", ".join(names)
        wb.close()
        raise ImportFileError(
            f"no sheet {sheet!r} in the workbook (sheets: {listed})",
            f"в книге нет листа {sheet!r} (листы: {listed})",
            "sheet",
        )
    title = sheet if sheet is not None else names[0]
    try:
        ws = wb.get_sheet_by_name(title)
    except (pc.CalamineError, pc.ZipError, pc.XmlError, ValueError) as exc:
        wb.close()
        raise ImportFileError(
            f"sheet {title!r} is corrupt ({type(exc).__name__})",
            f"лист {title!r} повреждён ({type(exc).__name__})",
        ) from None
    last = int(ws.total_height or 0) + 1  # the last row's 0-based index + 1
    if last > limits.max_rows + 1:
        wb.close()
        raise _too_many(title, limits)

    def close() -> None:
        with contextlib.suppress(pc.WorkbookClosed):
            wb.close()

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for n, values in enumerate(ws.iter_rows(), start=1):
                yield n, [cell_text(v) for v in values]
        finally:
            close()

    return Table(rows(), title, "xlsx", sheets=names, closers=[close], last_row=last)


def _protected() -> ImportFileError:
    return ImportFileError(
        "the workbook is password-protected; remove the password and save as .xlsx",
        "книга защищена паролем; снимите пароль и сохраните как .xlsx",
    )


def _too_many(title: str | None, limits: Limits) -> ImportFileError:
    where = f"sheet {title!r}" if title else "the file"
    where_ru = f"на листе {title!r}" if title else "в файле"
    return ImportFileError(
        f"{where} has more than {limits.max_rows} rows (the limit)",
        f"{where_ru} больше {limits.max_rows} строк (предел)",
    )


def _looks_utf16(head: bytes) -> bool:
    """Text in UTF-16 without a BOM: every character decodes to printable text."""
    if b"\x00" not in head or len(head) < 8:
        return False
    for enc in ("utf-16-le", "utf-16-be"):
        text = head[: len(head) // 2 * 2].decode(enc, "replace")
        plain = sum(1 for ch in text if " " <= ch <= "~" or "\u0400" <= ch <= "\u04ff")
        ends = sum(1 for ch in text if ch in "\r\n\t")
        if plain + ends == len(text) and ends:
            return True
    return False


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ImportFileError(
            "UTF-16 text is not supported; save the CSV as UTF-8",
            "текст в UTF-16 не поддерживается; сохраните CSV в UTF-8",
            "encoding",
        )
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("windows-1251")
    except UnicodeDecodeError:  # 0x98 is not a windows-1251 byte
        text = ""
    # Russian windows-1251 text has few symbols from 0x80-0xBF beyond quotes, dashes,
    # "№" and "Ё"; KOI8-R read as windows-1251 gives "рТЙЧЕФ" (lower then upper case).
    sample = text[:200_000]
    rare = sum(1 for ch in sample if ch in _RARE_1251)
    letters = sum(1 for ch in sample if ch.isalpha())
    words = _CYRILLIC_WORD.findall(sample)
    mixed = sum(1 for w in words if _MIXED_CASE.search(w))
    if not text or rare > max(3, letters // 50) or (words and mixed > max(1, len(words) // 5)):
        raise ImportFileError(
            "cannot read the text: it is neither UTF-8 nor windows-1251",
            "не удалось прочитать текст: кодировка не UTF-8 и не windows-1251",
            "encoding",
        )
    return text, "windows-1251"


def _delimiter(text: str) -> str:
    sample = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        counts = {d: sample.count(d) for d in (";", ",", "\t")}
        return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _open_csv(data: bytes, limits: Limits) -> Table:
    text, encoding = _decode(data)
    delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for n, record in enumerate(reader, start=1):
                if n > limits.max_rows + 1:
                    raise _too_many(None, limits)
                yield n, [_unquote(c.strip()) for c in record]
        except csv.Error as exc:
            raise ImportFileError(
                f"CSV is malformed near row {reader.line_num}: {exc}",
                f"CSV повреждён около строки {reader.line_num}: {exc}",
            ) from None

    name = {",": "comma", ";": "semicolon", "\t": "tab"}[delimiter]
    last = text.count("\n") + (0 if text.endswith("\n") else 1)
    return Table(rows(), None, "csv", f"{encoding}, {name}", last_row=last)
