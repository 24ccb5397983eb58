"""Analytics reports as a table, and that table as CSV or XLSX.

Every report's JSON is flattened the same way (so a report changed elsewhere, such as
the funnel, exports without a change here): its rows are the first list of objects
(``items``, else ``stages``, else any); an object inside a row becomes one column per
key (``by_source.webform``); a list of objects inside a row expands into one row per
element, the parent's values repeated; the report's own scalars (totals) are dropped.
The numbers are the JSON's numbers: the same query answers both.

CSV: UTF-8 with a BOM and ``;`` between fields, what Excel opens directly in a Russian
locale; with ``lang=ru`` numbers carry a decimal comma (``0,8``), with ``lang=en`` a
point.  XLSX: openpyxl's write-only workbook, numbers as numbers.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from crm_core.services.export import DANGEROUS, safe_text

__all__ = ["Table", "csv_response", "label", "table_of", "xlsx_response"]

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")

# Column headers (the last key of a flattened name); a key with no entry stays as it is.
LABELS: dict[str, tuple[str, str]] = {
    "stage": ("Этап", "Stage"),
    "reached": ("Дошли", "Reached"),
    "share_of_created": ("Доля от созданных", "Share of created"),
    "now_at_stage": ("Сейчас на этапе", "Now at stage"),
    "conversion_to_next": ("Конверсия в следующий", "Conversion to next"),
    "lost_here": ("Потеряно здесь", "Lost here"),
    "loss_reasons": ("Причины потерь", "Loss reasons"),
    "period": ("Период", "Period"),
    "requests": ("Обращения", "Requests"),
    "by_source": ("Канал", "Channel"),
    "refusals": ("Отказы", "Refusals"),
    "refusal_reasons": ("Причина отказа", "Refusal reason"),
    "refusals_by_source": ("Отказы по каналу", "Refusals by channel"),
    "converted": ("Конвертировано", "Converted"),
    "user_id": ("ID сотрудника", "User ID"),
    "name": ("Имя", "Name"),
    "role": ("Роль", "Role"),
    "team": ("Команда", "Team"),
    "leads": ("Лиды", "Leads"),
    "calls": ("Звонки", "Calls"),
    "calls_out": ("Исходящие звонки", "Calls made"),
    "calls_answered": ("Отвеченные звонки", "Calls answered"),
    "talk_s": ("Время разговоров, с", "Talk time, s"),
    "email_sent": ("Писем отправлено", "Emails sent"),
    "telegram_sent": ("Telegram отправлено", "Telegram sent"),
    "vk_sent": ("VK отправлено", "VK sent"),
    "first_response_avg_s": ("Первый ответ, с (среднее)", "First response, s (mean)"),
    "first_response_n": ("Лидов с ответом", "Leads answered"),
    "tasks_open": ("Задачи открыты", "Tasks open"),
    "tasks_done": ("Задачи выполнены", "Tasks done"),
    "tasks_cancelled": ("Задачи отменены", "Tasks cancelled"),
    "tasks_overdue": ("Задачи просрочены", "Tasks overdue"),
    "deals_won": ("Сделок выиграно", "Deals won"),
    "won_amount_total": ("Сумма выигранных", "Amount won"),
    "key": ("Ключ", "Key"),
    "label": ("Группа", "Group"),
    "deals": ("Сделки", "Deals"),
    "amount": ("Сумма", "Amount"),
    "by_year": ("Год", "Year"),
    "kind": ("Тип", "Kind"),
    "plan_amount": ("План: сумма", "Plan: amount"),
    "fact_amount": ("Факт: сумма", "Fact: amount"),
    "pct_amount": ("Сумма, %", "Amount, %"),
    "plan_deals": ("План: сделки", "Plan: deals"),
    "fact_deals": ("Факт: сделки", "Fact: deals"),
    "pct_deals": ("Сделки, %", "Deals, %"),
    "plan_calls": ("План: звонки", "Plan: calls"),
    "fact_calls": ("Факт: звонки", "Fact: calls"),
    "pct_calls": ("Звонки, %", "Calls, %"),
    "plan_meetings": ("План: встречи", "Plan: meetings"),
    "fact_meetings": ("Факт: встречи", "Fact: meetings"),
    "pct_meetings": ("Встречи, %", "Meetings, %"),
    "owner_id": ("ID менеджера", "Manager ID"),
    "owner_name": ("Менеджер", "Manager"),
    "rank": ("Место", "Rank"),
    "client_id": ("ID клиента", "Client ID"),
    "client_name": ("Клиент", "Client"),
    "score": ("Баллы", "Score"),
    "recent_interactions": ("Контакты за 30 дней", "Contacts, 30 days"),
    "inbound": ("Входящие", "Inbound"),
    "last_contact_at": ("Последний контакт", "Last contact"),
    "open_deals": ("Открытые сделки", "Open deals"),
    "open_stage": ("Этап открытой сделки", "Open deal stage"),
    "open_stage_name": ("Этап (название)", "Stage name (RU)"),
    "open_stage_name_en": ("Этап (англ.)", "Stage name"),
    "open_pipeline_id": ("ID воронки", "Pipeline ID"),
    "open_amount": ("Сумма открытых", "Open amount"),
    "won_deals": ("Покупки", "Purchases"),
    "won_amount": ("Сумма покупок", "Purchases amount"),
    "answer_rate": ("Доля отвеченных звонков", "Answer rate"),
    "avg_ring_s": ("Снимает трубку, с", "Picks up in, s"),
    "points": ("Баллы", "Points"),
    "activity": ("активность", "activity"),
    "deal": ("сделка", "deal"),
    "purchases": ("покупки", "purchases"),
    "answers": ("ответы", "answers"),
    "campaign_id": ("ID рассылки", "Campaign ID"),
    "status": ("Статус", "Status"),
    "started_at": ("Запущена", "Started"),
    "finished_at": ("Завершена", "Finished"),
    "recipients": ("Получателей", "Recipients"),
    "sent": ("Отправлено", "Sent"),
    "failed": ("Ошибки", "Failed"),
    "bounced": ("Возвраты", "Bounced"),
    "unsubscribed": ("Отписались", "Unsubscribed"),
    "replied": ("Ответили", "Replied"),
    "unknown": ("Не известно", "Unknown"),
}


def label(column: str, lang: str) -> str:
    """``by_source.webform`` -> ``Канал: webform``."""
    parts = column.split(".")
    out = []
    for i, part in enumerate(parts):
        # Keys inside an object are data (a channel, a reason, a year), except the
        # score's parts, which are ours.
        names = LABELS.get(part) if i == 0 or parts[i - 1] == "points" else None
        out.append(names[1 if lang == "en" else 0] if names else part)
    return ": ".join(out)


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]


def _rows_key(data: dict[str, Any]) -> str | None:
    for key in ("items", "stages"):
        if isinstance(data.get(key), list):
            return key
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return key
    return None


def _flatten(row: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """One row, or one per element of a list of objects inside it."""
    flat: dict[str, Any] = {}
    nested: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            for sub_row in _flatten(value, f"{name}."):
                flat.update(sub_row)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            nested.append((name, value))
        elif isinstance(value, list):
            flat[name] = ", ".join(str(v) for v in value)
        else:
            flat[name] = value
    if not nested:
        return [flat]
    out: list[dict[str, Any]] = []
    name, children = nested[0]
    for child in children:
        for sub in _flatten(child, f"{name}."):
            out.append({**flat, **sub})
    return out


def table_of(data: dict[str, Any]) -> Table:
    """The rows of a report as a table (columns in the order they first appear)."""
    key = _rows_key(data)
    flat: list[dict[str, Any]] = []
    if key is not None:
        for row in data[key]:
            flat.extend(_flatten(row) if isinstance(row, dict) else [{key: row}])
    columns: list[str] = []
    seen: set[str] = set()
    for row in flat:
        for c in row:
            if c not in seen:
                seen.add(c)
                columns.append(c)
    return Table(columns, [[row.get(c) for c in columns] for row in flat])


def _number(value: Any) -> Any:
    """Numeric strings (amounts) as Decimal; other values as they are."""
    if isinstance(value, str) and _NUMBER.match(value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            return value
    return value


def _csv_cell(value: Any, lang: str) -> str:
    value = _number(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float | Decimal):
        text = str(value)
        return text.replace(".", ",") if lang != "en" else text
    return safe_text(str(value))


def _xlsx_cell(ws: Any, value: Any) -> Any:
    """A text (a client's or campaign's name) that a spreadsheet could read as a formula
    is written as a text cell with the quote prefix; characters XML cannot hold are
    dropped (as the client export does)."""
    if not isinstance(value, str):
        return value
    clean = ILLEGAL_CHARACTERS_RE.sub("", value)
    if clean.startswith(DANGEROUS):
        cell = WriteOnlyCell(ws, None)
        cell.value = clean
        cell.data_type = "s"  # never a formula
        cell.quotePrefix = True
        return cell
    return clean


def _filename(name: str, ext: str) -> str:
    return f'attachment; filename="crmhub-{name}.{ext}"'


def csv_response(table: Table, lang: str, name: str) -> web.Response:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    writer.writerow([label(c, lang) for c in table.columns])
    for row in table.rows:
        writer.writerow([_csv_cell(v, lang) for v in row])
    return web.Response(
        body=b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": _filename(name, "csv")},
    )


def xlsx_response(table: Table, lang: str, name: str) -> web.Response:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=name[:31])
    ws.append([_xlsx_cell(ws, label(c, lang)) for c in table.columns])
    for row in table.rows:
        ws.append([_xlsx_cell(ws, _number(v)) for v in row])
    buf = io.BytesIO()
    wb.save(buf)
    return web.Response(
        body=buf.getvalue(),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": _filename(name, "xlsx")},
    )
