"""Segments in the browser: a rule segment built in the rules editor with a live count,
managers assigned, a manual segment picked through the search, the clients list
filtered by segment; the same pages fit a phone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("playwright", reason="pip install -e '.[test]' for the browser tests")
from playwright.async_api import Page, expect

from tests.e2e.conftest import UI, browser_page
from tests.e2e.test_ui import api, enter_with, shot, sign_in
from tests.e2e.test_ui_mobile import HEIGHT, WIDTH, fits, go

CLIENTS = (
    ("ООО Альфа", "Москва", "+74950000001"),
    ("ООО Бета", "Москва", "+74950000002"),
    ("ИП Казанцев", "Казань", "+78430000003"),
)


async def _clients(ui: UI) -> dict[str, int]:
    ids = {}
    for name, region, phone in CLIENTS:
        status, c = await api(
            ui, "POST", "/clients", ui.admin, {"name": name, "region": region, "phones": [phone]}
        )
        assert status == 201, c
        ids[name] = c["id"]
    return ids


async def test_rule_segment_with_live_count_managers_and_filter(page: Page, ui: UI) -> None:
    ids = await _clients(ui)
    await sign_in(page, ui, ui.admin)
    await page.locator("#nav").get_by_role("link", name="Сегменты").click()
    await page.get_by_role("link", name="Новый сегмент").click()
    await page.get_by_label("Название").fill("Столица и Казань")
    rules = page.locator("#segment-rules")
    await rules.get_by_role("button", name="+ условие").click()
    cond = rules.locator(".seg-cond").nth(0)
    await cond.get_by_label("Поле").select_option("region")
    await cond.get_by_label("Операция").select_option("eq")
    await cond.get_by_label("Значение").fill("Москва")
    live = page.locator("#segment-live")
    await expect(live).to_have_text("Сейчас подходит клиентов: 2")
    await rules.get_by_role("button", name="+ условие").first.click()
    second = rules.locator(".seg-cond").nth(1)
    await second.get_by_label("Поле").select_option("region")
    await second.get_by_label("Значение").fill("Казань")
    await expect(live).to_have_text("Сейчас подходит клиентов: 0")
    await rules.get_by_label("Клиент подходит, если выполнены").first.select_option("any")
    await expect(live).to_have_text("Сейчас подходит клиентов: 3")
    # a value of the wrong type: the server's message names the rule
    await second.get_by_label("Поле").select_option("headcount")
    await second.get_by_label("Операция").select_option("in")
    await second.get_by_label("Значение").fill("много, 5")
    await expect(page.locator("#segment-rules-error")).to_contain_text("rules.any[1].value[0]")
    await second.get_by_label("Поле").select_option("region")
    await second.get_by_label("Значение").fill("Казань")
    await expect(live).to_have_text("Сейчас подходит клиентов: 3")
    await shot(page, "segment-rules")
    await page.get_by_role("button", name="Сохранить сегмент").click()
    await expect(page.locator("#segment-title")).to_have_text("Столица и Казань")
    seg_id = int(page.url.rsplit("/", 1)[1])
    status, seg = await api(ui, "GET", f"/segments/{seg_id}", ui.admin)
    assert status == 200 and seg["client_count"] == 3
    assert seg["rules"] == {
        "any": [
            {"field": "region", "op": "eq", "value": "Москва"},
            {"field": "region", "op": "eq", "value": "Казань"},
        ]
    }
    members = page.locator("#segment-member-list")
    for name in ids:
        await expect(members).to_contain_text(name)

    # managers: the manager takes the segment; a rebalance gives them every client
    box = page.locator("#segment-managers")
    await box.get_by_label("Пётр Петров").check()
    await box.get_by_label("Распределение").select_option("least_loaded")
    await box.get_by_label("Перераспределить всех клиентов сегмента").check()
    await box.get_by_role("button", name="Назначить").click()
    await expect(page.locator("#segment-progress")).to_contain_text(
        "Перераспределение завершено: передано 3"
    )
    status, seg = await api(ui, "GET", f"/segments/{seg_id}", ui.admin)
    assert seg["manager_ids"] == [ui.manager_id] and seg["strategy"] == "least_loaded"
    status, c = await api(ui, "GET", f"/clients/{ids['ИП Казанцев']}", ui.admin)
    assert c["owner_id"] == ui.manager_id

    # the list shows the count; the clients list filters by the segment
    await page.locator("#nav").get_by_role("link", name="Сегменты").click()
    row = page.locator(f"#segments-table tr[data-segment-id='{seg_id}']")
    await expect(row).to_contain_text("3")
    await expect(row).to_contain_text("Пётр Петров")
    await page.locator("#nav").get_by_role("link", name="Клиенты").click()
    await page.get_by_label("Сегмент").select_option(str(seg_id))
    await expect(page.locator("#clients-table tbody tr")).to_have_count(3)


async def test_manual_segment_picked_through_the_search(page: Page, ui: UI) -> None:
    ids = await _clients(ui)
    await sign_in(page, ui, ui.admin)
    await page.goto(ui.at("/ui/#/segments/new"))
    await page.get_by_label("Название").fill("Ключевые")
    await page.get_by_label("Вид").select_option("manual")
    await page.get_by_label("Добавить клиентов: поиск").fill("Бета")
    await page.get_by_role("button", name="Найти").click()
    await page.locator("#segment-search-results").get_by_role("button", name="Добавить").click()
    await expect(page.locator("#segment-member-list")).to_contain_text("ООО Бета")
    await page.get_by_role("button", name="Сохранить сегмент").click()
    await expect(page.locator("#segment-title")).to_have_text("Ключевые")
    seg_id = int(page.url.rsplit("/", 1)[1])
    _, page_ = await api(ui, "GET", f"/segments/{seg_id}/clients", ui.admin)
    assert [c["id"] for c in page_["items"]] == [ids["ООО Бета"]]
    # remove it again, add another
    await page.locator("#segment-member-list li").get_by_role("button", name="Убрать").click()
    await page.get_by_label("Добавить клиентов: поиск").fill("Альфа")
    await page.get_by_role("button", name="Найти").click()
    await page.locator("#segment-search-results").get_by_role("button", name="Добавить").click()
    await expect(page.locator("#segment-pending")).to_have_text("Будут добавлены: 1, убраны: 1")
    await page.get_by_role("button", name="Сохранить сегмент").click()
    await expect(page.locator("#segment-pending")).to_have_text("")
    await expect(page.locator("#segment-member-list")).to_contain_text("ООО Альфа")
    await expect(page.locator("#segment-member-list")).not_to_contain_text("ООО Бета")
    _, card = await api(ui, "GET", f"/clients/{ids['ООО Альфа']}", ui.admin)
    assert card["segments"] == [{"id": seg_id, "name": "Ключевые"}]
    # English
    await page.get_by_role("button", name="English").first.click()
    await expect(page.locator("#nav").get_by_role("link", name="Segments")).to_be_visible()
    await expect(page.get_by_role("button", name="Save the segment")).to_be_visible()


@pytest.fixture
async def phone(chromium: Path, ui: UI) -> Any:
    async with browser_page(
        chromium,
        viewport={"width": WIDTH, "height": HEIGHT},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    ) as pg:
        yield pg


async def test_segment_pages_fit_a_phone(phone: Page, ui: UI) -> None:
    page = phone
    await _clients(ui)
    rule = {"all": [{"field": "region", "op": "in", "value": ["Москва", "Казань"]}]}
    status, _ = await api(ui, "POST", "/segments", ui.admin, {"name": "Регионы", "rules": rule})
    assert status == 201
    await enter_with(page, ui, ui.admin)
    await go(page, "Сегменты")
    await expect(page.locator("#segments-table")).to_be_visible()
    await fits(page, "segments")
    await page.locator("#segments-table").get_by_role("link", name="Регионы").click()
    await expect(page.locator("#segment-live")).to_have_text("Сейчас подходит клиентов: 3")
    await page.locator("#segment-rules").get_by_role("button", name="+ группа").click()
    await (
        page.locator("#segment-rules .seg-group.nested")
        .get_by_role("button", name="+ условие")
        .click()
    )
    await fits(page, "segment-editor")
