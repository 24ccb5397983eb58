"""Export and merge in the browser (Debian's chromium): the clients list's "Export"
downloads the filtered list as .xlsx or .csv; the client card's "Merge" picks a
suggested duplicate, shows the differing fields side by side and merges, on a phone."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("playwright", reason="pip install -e '.[test]' for the browser tests")
import openpyxl
from playwright.async_api import Page, expect

from tests.e2e.conftest import UI
from tests.e2e.test_ui import api, shot, sign_in
from tests.e2e.test_ui_mobile import fits, phone  # noqa: F401 - the phone page fixture

INN = "7707083893"


async def _client(ui: UI, body: dict[str, object]) -> int:
    status, out = await api(ui, "POST", "/clients", ui.admin, body)
    assert status == 201, out
    return int(out["id"])


async def test_export_downloads_the_filtered_list(page: Page, ui: UI, tmp_path: Path) -> None:
    await _client(ui, {"name": "ООО Ромашка", "phones": ["+7 495 123-45-67"], "inn": INN})
    await _client(ui, {"name": "Лютик", "emails": ["lutik@example.ru"]})
    await sign_in(page, ui, ui.admin)
    await page.locator("#nav").get_by_role("link", name="Клиенты").click()
    await expect(page.locator("#clients-table")).to_contain_text("Лютик")
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Экспорт").click()
    download = await info.value
    assert download.suggested_filename.endswith(".xlsx")
    path = tmp_path / download.suggested_filename
    await download.save_as(path)
    rows = list(openpyxl.load_workbook(path, read_only=True).worksheets[0].values)
    assert rows[0][:4] == ("Наименование", "Полное наименование", "Вид контрагента", "ИНН")
    assert {r[0] for r in rows[1:]} == {"ООО Ромашка", "Лютик"}
    await expect(page.locator("#toasts")).to_contain_text("скачан")

    # The current search is the export's filter; CSV this time.
    filters = page.locator("form.filters")
    await filters.locator("input[name=search]").fill("Ромашка")
    await filters.get_by_role("button", name="Найти").click()
    await expect(page.locator("#clients-table")).not_to_contain_text("Лютик")
    await page.get_by_label("Формат файла").select_option("csv")
    async with page.expect_download() as info:
        await page.get_by_role("button", name="Экспорт").click()
    download = await info.value
    path = tmp_path / download.suggested_filename
    await download.save_as(path)
    raw = path.read_bytes()
    assert path.suffix == ".csv" and raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(raw[3:].decode()), delimiter=";"))
    assert [r[0] for r in table[1:]] == ["ООО Ромашка"]
    assert table[1][table[0].index("ИНН")] == INN
    await shot(page, "clients-export")


async def test_merge_two_duplicates_on_a_phone(phone: Page, ui: UI) -> None:  # noqa: F811
    keep = await _client(ui, {"name": "ООО Ромашка", "phones": ["+7 495 123-45-67"]})
    other = await _client(
        ui,
        {
            "name": "Ромашка, АО",
            "inn": INN,
            "phones": ["+7 916 555-12-34"],
            "emails": ["info@romashka.ru"],
            "region": "Москва",
        },
    )
    status, _ = await api(
        ui,
        "POST",
        "/tasks",
        ui.admin,
        {"kind": "call_back", "title": "Перезвонить", "client_id": other},
    )
    assert status == 201
    await sign_in(phone, ui, ui.admin)
    await phone.goto(ui.at(f"/ui/#/clients/{keep}"))
    await expect(phone.locator("#client-name")).to_have_text("ООО Ромашка")
    await phone.get_by_role("button", name="Объединить").click()
    dialog = phone.locator("dialog#modal")
    await expect(dialog.get_by_role("heading", name="Объединить с дубликатом")).to_be_visible()
    await expect(dialog.locator(".merge-candidates")).to_contain_text("Ромашка, АО")
    await expect(dialog.locator(".merge-candidates")).to_contain_text("похожее название")
    await fits(phone, "merge-pick")
    # Nothing picked: the form says so and stays open.
    await dialog.get_by_role("button", name="Далее").click()
    await expect(dialog.locator(".form-error")).to_have_text("Выберите дубликат")
    await dialog.get_by_label("Ромашка, АО").check()
    await dialog.get_by_role("button", name="Далее").click()
    await expect(dialog.get_by_role("heading", name="Какие значения оставить")).to_be_visible()
    table = dialog.locator(".merge-table")
    await expect(table).to_contain_text("Название")
    await expect(table).not_to_contain_text("Регион")  # empty here: filled without asking
    await dialog.locator("#merge-name-other").check()
    await fits(phone, "merge-fields")
    await dialog.get_by_role("button", name="Объединить").click()
    await expect(dialog).to_be_hidden()
    await expect(phone.locator("#toasts")).to_contain_text("Клиенты объединены")
    await expect(phone.locator("#client-name")).to_have_text("Ромашка, АО")
    card = phone.locator(".client-card")
    await expect(card).to_contain_text("+79165551234")
    await expect(card).to_contain_text(INN)
    await fits(phone, "merge-done")
    status, _ = await api(ui, "GET", f"/clients/{other}", ui.admin)
    assert status == 404
    status, kept = await api(ui, "GET", f"/clients/{keep}", ui.admin)
    assert kept["region"] == "Москва" and kept["emails"] == ["info@romashka.ru"]
    status, tasks = await api(ui, "GET", "/tasks", ui.admin)
    assert [t["client_id"] for t in tasks["items"]] == [keep]
