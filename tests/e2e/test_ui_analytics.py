"""The analytics page (every report: a chart drawn as SVG by the server, its table, CSV
and Excel downloads of the same rows) and the sales plans grid, in Debian's chromium:
the head of sales plans for the team, a manager reads their own plan only."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("playwright", reason="pip install -e '.[test]' for the browser tests")
from openpyxl import load_workbook
from playwright.async_api import Page, expect

from crm_core.demo import load_demo
from gateway.api.keys import DB
from tests.e2e.conftest import UI
from tests.e2e.test_ui import api, enter_with, shot, sign_in
from tests.e2e.test_ui_mobile import fits, go, phone  # noqa: F401 - the phone fixture

REPORTS = ("an-funnel", "an-requests", "an-managers", "an-sales", "an-plan", "an-promising")


async def _demo(ui: UI) -> dict[str, str]:
    demo = await load_demo(ui.app[DB])
    return {u["email"].split("@")[0]: u["token"] for u in demo["users"]}


async def test_analytics_shows_a_chart_and_a_table_for_every_report(
    page: Page, ui: UI, tmp_path: Path
) -> None:
    tokens = await _demo(ui)
    _, promising = await api(ui, "GET", "/analytics/promising", tokens["head"])
    _, managers = await api(ui, "GET", "/analytics/managers", tokens["head"])
    assert promising["items"], "the demo base has promising clients"

    await sign_in(page, ui, tokens["head"])
    await page.get_by_role("link", name="Аналитика").click()
    for report in REPORTS:
        card = page.locator(f"section[data-report={report}]")
        await expect(card.locator("figure.chart svg")).to_have_count(1)
        await expect(card.locator("figure.chart svg script")).to_have_count(0)
        await expect(card.get_by_role("button", name="CSV")).to_be_visible()
        await expect(card.get_by_role("button", name="Excel")).to_be_visible()
    await expect(page.locator("#an-funnel-table tbody tr")).not_to_have_count(0)
    await expect(page.locator("#an-managers-table tbody tr")).to_have_count(len(managers["items"]))
    rows = page.locator("#an-promising-table tbody tr")
    await expect(rows).to_have_count(len(promising["items"]))
    best = promising["items"][0]
    await expect(rows.first).to_contain_text(best["client_name"])
    await expect(rows.first).to_have_attribute("data-score", f"{best['score']:g}")
    # The funnel chart's bars are the stages' "reached" figures, labelled in Russian.
    await expect(page.locator("section[data-report=an-funnel] svg")).to_contain_text("Дошли")

    # Sales by season: one column per year beside the twelve months.
    await page.get_by_label("Разрез продаж").select_option("season")
    await expect(page.locator("#an-sales-table tbody tr")).to_have_count(12)
    await expect(page.locator("section[data-report=an-sales] figure.chart svg")).to_have_count(1)

    # The CSV download holds the table's rows.
    async with page.expect_download() as info:
        await (
            page.locator("section[data-report=an-managers]")
            .get_by_role("button", name="CSV")
            .click()
        )
    download = await info.value
    path = tmp_path / "managers.csv"
    await download.save_as(path)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert len(table) == 1 + len(managers["items"])
    assert "Имя" in table[0] and {r[table[0].index("Имя")] for r in table[1:]} >= {"Пётр Петров"}

    async with page.expect_download() as info:
        await (
            page.locator("section[data-report=an-funnel]")
            .get_by_role("button", name="Excel")
            .click()
        )
    download = await info.value
    xlsx = tmp_path / "funnel.xlsx"
    await download.save_as(xlsx)
    ws = load_workbook(xlsx, read_only=True).active
    assert ws is not None
    got = [list(r) for r in ws.iter_rows(values_only=True)]
    assert got[0][0] == "Этап" and got[1][0] == "new"
    await shot(page, "analytics-charts")


async def _plan_row(page: Page, name: str) -> Any:
    return page.locator("#plans-table tbody tr").filter(has_text=name)


async def test_plans_grid_for_the_head_and_read_only_for_a_manager(page: Page, ui: UI) -> None:
    tokens = await _demo(ui)
    await sign_in(page, ui, tokens["head"])
    await page.get_by_role("link", name="Планы").click()
    await page.get_by_label("Месяц или квартал").fill("2026-Q4")
    await page.get_by_role("button", name="Показать").click()
    await expect(page.locator("#plans-table[data-period='2026-Q4']")).to_have_count(1)
    petrov = await _plan_row(page, "Пётр Петров")
    await expect(petrov).to_have_count(1)
    await petrov.get_by_label("Сумма, ₽: Пётр Петров").fill("1500000")
    await petrov.get_by_label("Сделок: Пётр Петров").fill("4")
    team = await _plan_row(page, "sales (команда)")
    await team.get_by_label("Звонков: sales").fill("900")
    await page.get_by_role("button", name="Сохранить планы").click()
    await expect(page.locator("#toasts")).to_contain_text("Планы сохранены")

    status, plans = await api(ui, "GET", "/plans?period=2026-Q4", tokens["head"])
    assert status == 200
    mine = next(u for u in plans["users"] if u["name"] == "Пётр Петров")
    assert (mine["amount"], mine["deals"], mine["calls"]) == ("1500000.00", 4, None)
    assert plans["teams"][0]["calls"] == 900

    # A bad figure is refused with the field named, and nothing is saved.
    petrov = await _plan_row(page, "Пётр Петров")
    await petrov.get_by_label("Сделок: Пётр Петров").fill("-3")
    await page.get_by_role("button", name="Сохранить планы").click()
    await expect(page.locator("#plans-error")).to_contain_text("deals")
    _, again = await api(ui, "GET", "/plans?period=2026-Q4", tokens["head"])
    assert again == plans
    await shot(page, "plans")

    # The plan shows beside the fact in the analytics.
    await page.get_by_role("link", name="Аналитика").click()
    await page.get_by_label("План на (месяц или квартал)").fill("2026-Q4")
    await page.get_by_label("План на (месяц или квартал)").press("Enter")
    row = page.locator("#an-plan-table tr[data-kind=user]").filter(has_text="Пётр Петров")
    await expect(row).to_contain_text("1 500 000")

    # A manager sees only their own plan, read-only.
    await page.get_by_role("button", name="Выйти").click()
    await sign_in(page, ui, tokens["petrov"])
    await page.get_by_role("link", name="Планы").click()
    await page.get_by_label("Месяц или квартал").fill("2026-Q4")
    await page.get_by_role("button", name="Показать").click()
    await expect(page.locator("#plans-table[data-period='2026-Q4']")).to_have_count(1)
    rows = page.locator("#plans-table tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator("input").first).to_be_disabled()
    await expect(rows.first.locator("input").first).to_have_value("1500000.00")
    await expect(page.get_by_role("button", name="Сохранить планы")).to_have_count(0)


async def test_analytics_and_plans_fit_a_phone(phone: Page, ui: UI) -> None:  # noqa: F811
    tokens = await _demo(ui)
    _, clients = await api(ui, "GET", "/clients?limit=1", tokens["head"])
    cid = clients["items"][0]["id"]
    await api(ui, "PATCH", f"/clients/{cid}", tokens["head"], {"notes": "Длинная заметка " * 9})
    page = phone
    await enter_with(page, ui, tokens["head"])
    await go(page, "Аналитика")
    await expect(page.locator("section[data-report=an-promising] figure.chart svg")).to_be_visible()
    await expect(page.locator("section[data-report=an-plan] figure.chart svg")).to_have_count(1)
    await fits(page, "analytics-charts")
    await go(page, "Планы")
    await expect(page.locator("#plans-table tbody tr").first).to_be_visible()
    await fits(page, "plans")
    await go(page, "Журнал")
    await expect(page.locator("#audit-table tbody tr").first).to_be_visible()
    await fits(page, "audit")


async def test_audit_page_shows_who_changed_what(page: Page, ui: UI) -> None:
    tokens = await _demo(ui)
    _, clients = await api(ui, "GET", "/clients?limit=1", tokens["head"])
    client = clients["items"][0]
    status, _ = await api(
        ui, "PATCH", f"/clients/{client['id']}", tokens["head"], {"status": "regular"}
    )
    assert status == 200

    await sign_in(page, ui, tokens["head"])
    await page.get_by_role("link", name="Журнал").click()
    await page.get_by_label("Что").select_option("client")
    await page.get_by_label("Номер записи").fill(str(client["id"]))
    await page.get_by_role("button", name="Показать").click()
    first = page.locator("#audit-table tbody tr").first
    await expect(first).to_contain_text("Ольга Руководитель")
    await expect(first).to_contain_text(f"клиент #{client['id']}")
    await expect(first).to_contain_text(f"status: {client['status']} → regular")
    await shot(page, "audit")

    # Managers have no audit log: no link, and the API says no.
    await page.get_by_role("button", name="Выйти").click()
    await sign_in(page, ui, tokens["petrov"])
    await expect(page.locator('#nav a[data-view="audit"]')).to_be_hidden()
    status, _ = await api(ui, "GET", "/audit", tokens["petrov"])
    assert status == 403
