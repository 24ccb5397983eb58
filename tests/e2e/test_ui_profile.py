"""The client profile in the browser: the admin's statuses and custom fields, a company
created with its requisites, tags, custom values and first contact person, contact
persons added, changed and removed on the card, the list's filters, sorting and pages,
and the same pages on a phone."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("playwright", reason="pip install -e '.[test]' for the browser tests")
from playwright.async_api import Dialog, Page, expect

from tests.e2e.conftest import UI, browser_page
from tests.e2e.test_ui import api, enter_with, shot, sign_in
from tests.e2e.test_ui_mobile import HEIGHT, WIDTH, fits, go

INN = "7707083893"


@pytest.fixture
async def small(chromium: Path, ui: UI) -> AsyncIterator[Any]:
    """A phone-sized page (390 CSS pixels wide, touch)."""
    async with browser_page(
        chromium,
        viewport={"width": WIDTH, "height": HEIGHT},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    ) as pg:
        yield pg


def accept_dialogs(page: Page) -> None:
    """Answer "OK" to confirm() (Playwright dismisses dialogs by default)."""

    async def on_dialog(d: Dialog) -> None:
        await d.accept()

    page.on("dialog", on_dialog)


async def test_admin_settings_then_a_full_company_and_its_contacts(page: Page, ui: UI) -> None:
    accept_dialogs(page)
    await sign_in(page, ui, ui.admin)
    await page.locator("#nav").get_by_role("link", name="Настройки").click()
    await expect(page.locator("main h1")).to_have_text("Настройки клиентов")
    await expect(page.locator("#statuses-table tbody tr")).to_have_count(6)
    dialog = page.locator("dialog#modal")

    # A new status, moved to the top; a custom choice field and a multi-choice one.
    await page.get_by_role("button", name="Добавить статус").click()
    await dialog.get_by_label("Ключ").fill("partner")
    await dialog.get_by_label("Название (рус.)").fill("Партнёр")
    await dialog.get_by_label("Название (англ.)").fill("Partner")
    await dialog.get_by_role("button", name="Добавить").click()
    await expect(page.locator("#statuses-table tbody tr")).to_have_count(7)
    table_rows = page.locator("#statuses-table tbody tr")
    for above in range(5, -1, -1):
        await page.get_by_role("button", name="Выше: partner").click()
        await expect(table_rows.nth(above)).to_have_attribute("data-key", "partner")
    for key, label, ftype, options in (
        ("size", "Размер", "choice", "S\nM\nL"),
        ("brands", "Бренды", "multi", "Альфа\nБета"),
    ):
        await page.get_by_role("button", name="Добавить поле").click()
        await dialog.get_by_label("Ключ").fill(key)
        await dialog.get_by_label("Название (рус.)").fill(label)
        await dialog.get_by_label("Тип").select_option(ftype)
        await dialog.get_by_label("Варианты (по одному в строке)").fill(options)
        await dialog.get_by_role("button", name="Добавить").click()
        await expect(page.locator(f"#fields-table tr[data-key='{key}']")).to_be_visible()
    await shot(page, "settings")
    _, statuses = await api(ui, "GET", "/client-statuses", ui.manager)
    assert statuses["items"][0]["key"] == "partner"

    # A company with its requisites, tags, custom values and a first contact person.
    await page.locator("#nav").get_by_role("link", name="Клиенты").click()
    await page.get_by_role("button", name="Новый клиент").click()
    await dialog.get_by_label("Название или имя").fill("ООО Ромашка")
    await dialog.get_by_label("ИНН").fill(INN)
    await dialog.get_by_label("Статус").select_option("partner")
    await dialog.get_by_label("Теги (через запятую)").fill("vip, опт")
    await dialog.get_by_text("Реквизиты и профиль").click()
    await dialog.get_by_label("КПП").fill("7736010")  # too short: the API says so
    await dialog.get_by_label("Город").fill("Москва")
    await dialog.get_by_label("Отрасль").fill("Розница")
    await dialog.get_by_label("Численность сотрудников").fill("120")
    await dialog.get_by_label("Годовая выручка, ₽").fill("5000000")
    await dialog.get_by_label("Сайт").fill("romashka.example")
    await dialog.get_by_label("Размер").select_option("M")
    await dialog.get_by_role("checkbox", name="Бета").check()
    await dialog.get_by_label("Имя", exact=True).fill("Анна Смирнова")
    await dialog.get_by_label("Должность").fill("Закупки")
    await dialog.get_by_label("Телефон", exact=True).fill("8 916 111-22-33")
    await dialog.get_by_role("button", name="Создать").click()
    kpp = dialog.get_by_label("КПП")
    await expect(kpp).to_have_attribute("aria-invalid", "true")
    await expect(dialog).to_contain_text("КПП — 9 знаков")
    _, page_ = await api(ui, "GET", "/clients", ui.admin)
    assert page_["total"] == 0  # nothing written
    await kpp.fill("773601001")
    await shot(page, "client-new-profile")
    await dialog.get_by_role("button", name="Создать").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#client-name")).to_have_text("ООО Ромашка")
    client_id = int(page.url.rsplit("/", 1)[1])
    _, c = await api(ui, "GET", f"/clients/{client_id}", ui.admin)
    assert (c["inn"], c["kpp"], c["status"], c["city"]) == (INN, "773601001", "partner", "Москва")
    assert c["headcount"] == 120 and c["revenue"] == "5000000.00"
    assert c["website"] == "https://romashka.example" and sorted(c["tags"]) == ["vip", "опт"]
    assert c["custom"] == {"size": "M", "brands": ["Бета"]}
    assert [(p["name"], p["is_primary"], p["phones"]) for p in c["contacts"]] == [
        ("Анна Смирнова", True, ["+79161112233"])
    ]
    card = page.locator(".client-card")
    await expect(card.locator("#client-props")).to_contain_text("773601001")
    await expect(card.locator("#client-props [data-custom='brands']")).to_have_text("Бета")
    await expect(card.locator("#client-tags")).to_contain_text("опт")
    await expect(card.locator(".badge.cs-partner")).to_have_text("Партнёр")

    # Contact persons on the card: add a primary one, change the first, remove it.
    contacts = page.locator("#contacts")
    await expect(contacts.locator(".person")).to_have_count(1)
    await contacts.get_by_role("button", name="Добавить контакт").click()
    await dialog.get_by_label("Имя").fill("Борис Орлов")
    await dialog.get_by_label("Телефоны (через запятую)").fill("+7 903 444-55-66")
    await dialog.get_by_label("Основной контакт").check()
    await dialog.get_by_role("button", name="Добавить").click()
    await expect(contacts.locator(".person")).to_have_count(2)
    await expect(contacts.locator(".person").first).to_contain_text("Борис Орлов")
    await expect(contacts.locator(".person").first).to_contain_text("основной")
    await contacts.get_by_role("button", name="Изменить: Анна Смирнова").click()
    await dialog.get_by_label("Должность").fill("Директор")
    await dialog.get_by_role("button", name="Сохранить").click()
    await expect(contacts.locator(".person").nth(1)).to_contain_text("Директор")
    await shot(page, "client-card-profile")
    await contacts.get_by_role("button", name="Удалить: Анна Смирнова").click()
    await expect(contacts.locator(".person")).to_have_count(1)
    _, c = await api(ui, "GET", f"/clients/{client_id}", ui.admin)
    assert [(p["name"], p["is_primary"]) for p in c["contacts"]] == [("Борис Орлов", True)]

    # Edit: clear the city, change a custom value; the rest stays.
    await page.get_by_role("button", name="Изменить", exact=True).first.click()
    await dialog.get_by_label("Город").fill("")
    await dialog.get_by_label("Размер").select_option("L")
    await dialog.get_by_role("button", name="Сохранить").click()
    await expect(dialog).to_be_hidden()
    _, c = await api(ui, "GET", f"/clients/{client_id}", ui.admin)
    assert c["city"] is None and c["custom"] == {"size": "L", "brands": ["Бета"]}
    assert c["kpp"] == "773601001" and c["headcount"] == 120


async def _many(ui: UI, n: int) -> None:
    for i in range(n):
        body: dict[str, Any] = {
            "name": f"Компания {i:02d}",
            "city": "Казань" if i % 3 == 0 else "Москва",
            "tags": ["опт"] if i % 5 == 0 else [],
            "revenue": str(1000 * i),
        }
        status, out = await api(ui, "POST", "/clients", ui.manager, body)
        assert status == 201, out


async def test_the_list_filters_sorts_and_pages(page: Page, ui: UI) -> None:
    await _many(ui, 55)
    await sign_in(page, ui, ui.manager)
    await page.locator("#nav").get_by_role("link", name="Клиенты").click()
    rows = page.locator("#clients-table tbody tr")
    await expect(rows).to_have_count(50)
    await expect(page.locator("#clients-total")).to_contain_text("55")
    await page.locator("#page-next").click()
    await expect(rows).to_have_count(5)
    await expect(rows.first).to_contain_text("Компания 04")  # newest first
    await page.locator("#page-prev").click()
    await expect(rows).to_have_count(50)

    await page.get_by_label("Сортировка").select_option("name")
    await expect(rows.first).to_contain_text("Компания 00")
    await page.get_by_label("Сортировка").select_option("-revenue")
    await expect(rows.first).to_contain_text("Компания 54")

    await page.get_by_text("Ещё фильтры").click()
    await page.get_by_label("Город").fill("Казань")
    await page.get_by_label("Тег").fill("опт")
    await page.get_by_role("button", name="Найти").click()
    # i divisible by 3 and by 5: 0, 15, 30, 45; sorted by revenue, highest first.
    await expect(rows).to_have_count(4)
    await expect(rows.first).to_contain_text("Компания 45")
    await expect(page.locator("#clients-total")).to_contain_text("4")
    await page.get_by_label("Выручка от").fill("20000")
    await page.get_by_role("button", name="Найти").click()
    await expect(rows).to_have_count(2)
    await shot(page, "clients-filtered")
    await page.get_by_role("button", name="Сбросить").click()
    await expect(rows).to_have_count(50)


async def test_profile_pages_fit_a_phone(small: Page, ui: UI) -> None:
    page = small
    status, made = await api(
        ui, "POST", "/clients", ui.admin,
        {"name": "Холдинг «Очень длинное название компании для узкого экрана»",
         "inn": INN, "city": "Санкт-Петербург", "tags": ["vip", "опт", "новый"],
         "legal_address": "191186, г. Санкт-Петербург, Невский проспект, дом 1, литера А"},
    )  # fmt: skip
    assert status == 201, made
    await api(ui, "POST", "/clients", ui.admin, {"name": "Филиал", "parent_id": made["id"]})
    await api(
        ui, "POST", f"/clients/{made['id']}/contacts", ui.admin,
        {"name": "Анна", "phones": ["+79161112233"], "emails": ["anna@example.ru"]},
    )  # fmt: skip
    await api(
        ui, "POST", "/custom-fields", ui.admin,
        {"key": "size", "label_ru": "Размер", "type": "choice", "options": ["S", "M"]},
    )  # fmt: skip
    await enter_with(page, ui, ui.admin)
    await go(page, "Клиенты")
    await expect(page.locator("#clients-table tbody tr").first).to_be_visible()
    await page.get_by_text("Ещё фильтры").click()
    await fits(page, "clients-filters")
    await page.goto(ui.at(f"/ui/#/clients/{made['id']}"))
    await expect(page.locator("#client-branches")).to_contain_text("Филиал")
    await fits(page, "client-profile")
    await page.get_by_role("button", name="Изменить", exact=True).first.click()
    # Editing opens the requisites: they fit too.
    await expect(page.locator("dialog#modal").get_by_label("КПП")).to_be_visible()
    await fits(page, "client-edit-profile")
    await page.locator("dialog#modal").get_by_role("button", name="Отмена").click()
    await go(page, "Настройки")
    await expect(page.locator("#statuses-table")).to_be_visible()
    await fits(page, "settings")
