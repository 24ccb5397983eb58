"""Analytics charts: server-rendered SVG (pygal), drawn from the same JSON as the tables.

No JavaScript and no CDN: the SVG is plain markup the page inserts; pygal's tooltip
script is removed.  Labels are Russian or English (``lang``).  A chart is drawn from
the report's table (``analytics_export.table_of``) when the report is not one of the
known shapes, so a report changed elsewhere (the funnel) still gets a chart.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any

import pygal
from pygal.style import Style

from crm_core.stages import stage_label
from gateway.api.analytics_export import label, table_of

__all__ = ["chart_svg"]

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    font_family="system-ui, sans-serif",
    colors=("#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#db2777"),
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=11,
    title_font_size=14,
)
# pygal draws a node per bar (about a millisecond each): charts keep to a few dozen bars
# (the table below a chart has every row); long time series are lines without dots.
MAX_BARS = 40
MAX_ROWS = 15
MAX_POINTS = 400

TITLES: dict[str, tuple[str, str]] = {
    "funnel": ("Воронка: дошли до этапа", "Funnel: reached the stage"),
    "requests": ("Обращения и отказы по каналам", "Requests and refusals by channel"),
    "managers": ("Активность менеджеров", "Manager activity"),
    "sales": ("Продажи", "Sales"),
    "plan-fact": ("План и факт: сумма", "Plan and fact: amount"),
    "promising": ("Перспективные клиенты: баллы", "Most promising clients: points"),
}


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(Decimal(str(value)))
    except ArithmeticError:
        return None


def _chart(kind: type[Any], title: str, **kw: Any) -> Any:
    return kind(
        style=STYLE,
        js=[],
        disable_xml_declaration=True,
        width=kw.pop("width", 820),
        height=kw.pop("height", 320),
        title=title,
        x_label_rotation=kw.pop("x_label_rotation", 30),
        legend_at_bottom=True,
        print_values=False,
        truncate_label=24,
        truncate_legend=30,
        **kw,
    )


def _tr(lang: str, ru: str, en: str) -> str:
    return en if lang == "en" else ru


def _requests(data: dict[str, Any], lang: str, title: str) -> Any:
    """A line per channel and one for the refusals (lines, not bars: a year of days is
    one path per series, cheap to draw)."""
    items = data.get("items", [])[-MAX_POINTS:]
    chart = _chart(pygal.Line, title, show_dots=len(items) <= 31, x_labels_major_count=12,
                   show_minor_x_labels=len(items) <= 31)  # fmt: skip
    chart.x_labels = [str(i["period"]) for i in items]
    sources = sorted({k for i in items for k in i.get("by_source", {})})
    for src in sources:
        chart.add(src, [i.get("by_source", {}).get(src, 0) for i in items])
    chart.add(_tr(lang, "отказы", "refusals"), [i.get("refusals", 0) for i in items])
    return chart


def _managers(data: dict[str, Any], lang: str, title: str) -> Any:
    """The busiest managers (by calls made): calls made, answered, emails sent."""
    items = sorted(data.get("items", []), key=lambda i: -(i.get("calls") or 0))[:MAX_ROWS]
    chart = _chart(pygal.HorizontalBar, title, height=max(240, 60 + 30 * len(items)))
    chart.x_labels = [str(i.get("name") or f"#{i.get('user_id')}") for i in items]
    for key in ("calls_out", "calls_answered", "email_sent"):
        chart.add(label(key, lang), [i.get(key) or None for i in items])
    return chart


def _sales(data: dict[str, Any], lang: str, title: str) -> Any:
    items = data.get("items", [])
    if data.get("group") == "season":
        chart = _chart(pygal.Line, title, x_label_rotation=0)
        chart.x_labels = [str(i["label"]) for i in items]
        for year in data.get("years", []):
            chart.add(year, [_num(i.get("by_year", {}).get(year)) for i in items])
        return chart
    if data.get("group") in ("day", "week", "month") and len(items) > MAX_BARS:
        items = items[-MAX_POINTS:]
        chart = _chart(pygal.Line, title, show_dots=False, show_minor_x_labels=False,
                       x_labels_major_count=12)  # fmt: skip
        chart.x_labels = [str(i["label"]) for i in items]
        chart.add(label("amount", lang), [_num(i.get("amount")) for i in items])
        return chart
    items = items[:MAX_BARS]
    chart = _chart(pygal.Bar, title)
    chart.x_labels = [str(i["label"]) for i in items]
    chart.add(label("amount", lang), [_num(i.get("amount")) for i in items])
    return chart


def _plan_fact(data: dict[str, Any], lang: str, title: str) -> Any:
    items = data.get("items", [])[: MAX_BARS // 2]
    chart = _chart(pygal.Bar, title)
    chart.x_labels = [str(i.get("name")) for i in items]
    chart.add(_tr(lang, "план", "plan"), [_num(i.get("plan_amount")) for i in items])
    chart.add(_tr(lang, "факт", "fact"), [_num(i.get("fact_amount")) for i in items])
    return chart


def _promising(data: dict[str, Any], lang: str, title: str) -> Any:
    """The best-scored clients, their points stacked by reason."""
    items = sorted(data.get("items", []), key=lambda i: -float(i.get("score") or 0))[:MAX_ROWS]
    chart = _chart(pygal.HorizontalStackedBar, title, height=max(260, 60 + 24 * len(items)))
    chart.x_labels = [f"{i.get('client_name')} ({i.get('owner_name') or ''})" for i in items]
    for part in ("activity", "deal", "purchases", "answers"):
        chart.add(label(f"points.{part}", lang).split(": ")[-1], [
            i.get("points", {}).get(part) or None for i in items
        ])  # fmt: skip
    return chart


def _generic(data: dict[str, Any], lang: str, title: str) -> Any:
    """The first text column as labels and the first numeric column as bars (the funnel:
    stage and how many deals reached it)."""
    table = table_of(data)
    chart = _chart(pygal.Bar, title)
    text_col = next(
        (i for i, c in enumerate(table.columns) if any(isinstance(r[i], str) for r in table.rows)),
        None,
    )
    num_col = next(
        (
            i
            for i, c in enumerate(table.columns)
            if c not in ("id", "user_id")
            and table.rows
            and all(
                isinstance(r[i], int | float) and not isinstance(r[i], bool) for r in table.rows
            )
        ),
        None,
    )
    if "reached" in table.columns:  # the funnel: how many deals reached each stage
        num_col = table.columns.index("reached")
    rows = table.rows[:MAX_BARS]
    if num_col is None:
        return chart
    text = table.columns[text_col] if text_col is not None else ""
    chart.x_labels = [
        (stage_label(str(r[text_col]), lang) if text.endswith("stage") else str(r[text_col]))
        if text_col is not None
        else str(n)
        for n, r in enumerate(rows)
    ]
    chart.add(label(table.columns[num_col], lang), [r[num_col] for r in rows])
    return chart


_DRAW = {
    "requests": _requests,
    "managers": _managers,
    "sales": _sales,
    "plan-fact": _plan_fact,
    "promising": _promising,
}


def chart_svg(report: str, data: dict[str, Any], lang: str) -> str:
    """The SVG of ``report`` (no XML declaration, no script)."""
    ru, en = TITLES.get(report, (report, report))
    draw = _DRAW.get(report, _generic)
    chart = draw(data, lang, en if lang == "en" else ru)
    chart.no_data_text = _tr(lang, "Нет данных", "No data")
    tree = chart.render_tree()
    for parent in list(tree.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    tree.set("role", "img")
    tree.set("aria-label", en if lang == "en" else ru)
    return ET.tostring(tree, encoding="unicode")
