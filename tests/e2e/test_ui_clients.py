"""Clients in the browser: create one (company or person) and change it from its card;
the API's field errors appear under the field and change nothing."""

from __future__ import annotations

import os

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("playwright", reason="pip install -e '.[test]' for the browser tests")
from playwright.async_api import Page, expect

from tests.e2e.conftest import UI
from tests.e2e.test_ui import api, shot, sign_in

INN = "7707083893"  # a real, checksummed 10-digit INN


async def test_create_a_client_then_edit_its_name_and_add_a_phone(page: Page, ui: UI) -> None:
    await sign_in(page, ui, ui.admin)
    await page.locator("#nav").get_by_role("link", name="Клиенты").click()
    await page.get_by_role("button", name="Новый клиент").click()
    dialog = page.locator("dialog#modal")
    await expect(dialog.get_by_role("heading", name="Новый клиент")).to_be_visible()
    # A person has no INN field; a company has.
    await dialog.get_by_label("Тип клиента").select_option("person")
    await expect(dialog.get_by_label("ИНН")).to_be_hidden()
    await dialog.get_by_label("Тип клиента").select_option("company")
    await dialog.get_by_label("Название или имя").fill("ООО Ромашка")
    await dialog.get_by_label("ИНН").fill(INN)
    await dialog.get_by_label("Телефоны (через запятую)").fill("8 (495) 123-45-67")
    await dialog.get_by_label("Почта (через запятую)").fill("Info@Romashka.ru, sales@romashka.ru")
    await dialog.get_by_label("Сегмент").fill("опт")
    await dialog.get_by_label("Ответственный").select_option(str(ui.manager_id))
    await shot(page, "client-new")
    await dialog.get_by_role("button", name="Создать").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#toasts")).to_contain_text("Клиент «ООО Ромашка» создан")
    await expect(page.locator("#client-name")).to_have_text("ООО Ромашка")
    client_id = int(page.url.rsplit("/", 1)[1])
    status, client = await api(ui, "GET", f"/clients/{client_id}", ui.admin)
    assert status == 200
    assert client["kind"] == "company" and client["inn"] == INN and client["segment"] == "опт"
    assert client["owner_id"] == ui.manager_id
    assert client["phones"] == ["+74951234567"]
    assert sorted(client["emails"]) == ["info@romashka.ru", "sales@romashka.ru"]
    card = page.locator(".client-card")
    await expect(card).to_contain_text(INN)
    await expect(card).to_contain_text("Пётр Петров")

    # Edit: a new name and one more phone.
    await page.get_by_role("button", name="Изменить").click()
    await expect(dialog.get_by_label("Название или имя")).to_have_value("ООО Ромашка")
    await expect(dialog.get_by_label("ИНН")).to_have_value(INN)
    await expect(dialog).to_contain_text("+74951234567")  # the phones it already has
    await dialog.get_by_label("Название или имя").fill("ООО Ромашка-Плюс")
    await dialog.get_by_label("Добавить телефоны (через запятую)").fill("+7 916 555-12-34")
    await dialog.get_by_role("button", name="Сохранить").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#toasts")).to_contain_text("Изменения сохранены")
    await expect(page.locator("#client-name")).to_have_text("ООО Ромашка-Плюс")
    await expect(card.locator(".phone")).to_have_count(2)
    await expect(card).to_contain_text("+79165551234")
    _, client = await api(ui, "GET", f"/clients/{client_id}", ui.admin)
    assert client["name"] == "ООО Ромашка-Плюс"
    assert sorted(client["phones"]) == ["+74951234567", "+79165551234"]
    assert client["inn"] == INN and client["owner_id"] == ui.manager_id  # untouched

    # The list shows the change.
    await page.get_by_role("link", name="← Все клиенты").click()
    row = page.locator(f"#clients-table tr[data-client-id='{client_id}']")
    await expect(row).to_contain_text("ООО Ромашка-Плюс")
    await expect(row).to_contain_text("+79165551234")
    await shot(page, "clients-list")


async def test_a_bad_phone_shows_the_field_error_and_changes_nothing(page: Page, ui: UI) -> None:
    status, made = await api(
        ui, "POST", "/clients", ui.manager, {"kind": "person", "name": "Иван Котов"}
    )
    assert status == 201, made
    await sign_in(page, ui, ui.manager)
    await page.goto(ui.at(f"/ui/#/clients/{made['id']}"))
    await expect(page.locator("#client-name")).to_have_text("Иван Котов")
    await page.get_by_role("button", name="Изменить").click()
    dialog = page.locator("dialog#modal")
    await expect(dialog.get_by_label("ИНН")).to_be_hidden()  # a person
    await dialog.get_by_label("Название или имя").fill("Иван Котов-Новый")
    phones = dialog.get_by_label("Добавить телефоны (через запятую)")
    await phones.fill("12")
    await dialog.get_by_role("button", name="Сохранить").click()
    await expect(phones).to_have_attribute("aria-invalid", "true")
    error = dialog.locator(f"#{await phones.get_attribute('id')}-error")
    await expect(error).to_have_text("phones: в номере «12» слишком мало цифр")
    await expect(dialog).to_be_visible()  # the form stays open with what was typed
    await expect(dialog.get_by_label("Название или имя")).to_have_value("Иван Котов-Новый")
    await shot(page, "client-edit-error")
    _, client = await api(ui, "GET", f"/clients/{made['id']}", ui.manager)
    assert client["name"] == "Иван Котов" and client["phones"] == []  # nothing changed
    await dialog.get_by_role("button", name="Отмена").click()
    await expect(page.locator("#client-name")).to_have_text("Иван Котов")


async def test_a_manager_creates_own_clients_and_a_bad_inn_creates_nothing(
    page: Page, ui: UI
) -> None:
    await sign_in(page, ui, ui.manager)
    await page.goto(ui.at("/ui/#/clients"))
    await page.get_by_role("button", name="Новый клиент").click()
    dialog = page.locator("dialog#modal")
    await expect(dialog.get_by_label("Название или имя")).to_be_visible()
    await expect(dialog.get_by_label("Ответственный")).to_have_count(0)  # a manager owns it
    await dialog.get_by_label("Название или имя").fill("ООО Василёк")
    inn = dialog.get_by_label("ИНН")
    await inn.fill("1234567890")
    await dialog.get_by_role("button", name="Создать").click()
    await expect(inn).to_have_attribute("aria-invalid", "true")
    await expect(dialog.locator(f"#{await inn.get_attribute('id')}-error")).to_contain_text(
        "контрольной суммы"
    )
    _, page_ = await api(ui, "GET", "/clients", ui.admin)
    assert page_["items"] == []  # nothing was created

    await inn.fill("")
    await dialog.get_by_role("button", name="Создать").click()
    await expect(page.locator("#client-name")).to_have_text("ООО Василёк")
    _, page_ = await api(ui, "GET", "/clients", ui.admin)
    assert [(c["name"], c["owner_id"], c["inn"]) for c in page_["items"]] == [
        ("ООО Василёк", ui.manager_id, None)
    ]

    # English labels too.
    await page.locator("#topbar-menu").get_by_role("button", name="English").click()
    await expect(page.get_by_role("button", name="Edit")).to_be_visible()
    await page.get_by_role("button", name="Edit").click()
    await expect(dialog.get_by_role("heading", name="Edit the client")).to_be_visible()
    await expect(dialog.get_by_label("Add phones (comma-separated)")).to_be_visible()


async def test_the_header_search_opens_the_clients_list_filtered(page: Page, ui: UI) -> None:
    for body in (
        {"name": "ООО Ромашка", "inn": INN, "phones": ["+7 495 123-45-67"]},
        {"name": "ИП Ромашкин", "kind": "person", "emails": ["romashkin@example.ru"]},
        {"name": "АО Василёк", "phones": ["+7 916 555-12-34"]},
    ):
        status, out = await api(ui, "POST", "/clients", ui.admin, body)
        assert status == 201, out
    await sign_in(page, ui, ui.admin)
    search = page.get_by_role("searchbox", name="Поиск клиентов")
    rows = page.locator("#clients-table tbody tr")

    await search.fill("Ромаш")
    await search.press("Enter")
    await expect(page).to_have_url(ui.at("/ui/#/clients?q=%D0%A0%D0%BE%D0%BC%D0%B0%D1%88"))
    await expect(rows).to_have_count(2)
    await expect(page.locator("#nav a[data-view=clients]")).to_have_attribute(
        "aria-current", "page"
    )
    await expect(page.get_by_label("Поиск: имя, ИНН, телефон, email")).to_have_value("Ромаш")

    for query, name in (
        (INN, "ООО Ромашка"),  # an INN
        ("8 (916) 555-12-34", "АО Василёк"),  # a phone, any spelling
        ("Romashkin@Example.ru", "ИП Ромашкин"),  # an email
    ):
        await search.fill(query)
        await search.press("Enter")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_contain_text(name)

    # The same search again (same URL) still runs; an empty one lists everyone.
    await page.goto(ui.at("/ui/#/leads"))
    await search.fill(INN)
    await search.press("Enter")
    await expect(rows).to_have_count(1)
    await search.fill("")
    await search.press("Enter")
    await expect(page).to_have_url(ui.at("/ui/#/clients"))
    await expect(rows).to_have_count(1)  # the list keeps its last search …
    await page.get_by_label("Поиск: имя, ИНН, телефон, email").fill("")
    await page.get_by_role("button", name="Найти").click()
    await expect(rows).to_have_count(3)  # … until it is cleared

    # On a phone the box is in the menu.
    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(search).to_be_hidden()
    await page.get_by_role("button", name="Меню").click()
    await search.fill("Василёк")
    await search.press("Enter")
    await expect(search).to_be_hidden()  # the menu closed
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("АО Василёк")
    await shot(page, "m-search")
