"""The import wizard in Debian's chromium: upload the sample XLSX, check and change the
columns' fields, a dry run that writes nothing, the import with its progress and
report, the list of imports and its undo button; the same page on a phone (390 px)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("playwright", reason="pip install -e '.[test]' for the browser tests")
from playwright.async_api import Page, expect

from tests.e2e.conftest import UI, browser_page
from tests.e2e.test_ui import api, enter_with
from tests.e2e.test_ui_mobile import fits

SAMPLE = Path(__file__).parents[1] / "fixtures" / "import" / "clients_simple.xlsx"


async def _clients(ui: UI) -> int:
    status, body = await api(ui, "GET", "/clients?limit=100", ui.admin)
    assert status == 200, body
    return len(body["items"])


async def _sign_in(page: Page, ui: UI) -> None:
    await enter_with(page, ui, ui.admin)


async def test_import_wizard_dry_run_import_and_undo(page: Page, ui: UI) -> None:
    await _sign_in(page, ui)
    await page.locator("#nav").get_by_role("link", name="Импорт").click()
    await expect(page.locator("main h1")).to_have_text("Импорт клиентов")
    await expect(page.locator("#import-history")).to_contain_text("Импортов пока не было")
    await page.get_by_label("Файл (.xlsx или .csv)").set_input_files(str(SAMPLE))
    await page.get_by_role("button", name="Показать").click()

    # The mapping preview: each column's detected field, changeable.
    mapping = page.locator("#import-map")
    await expect(mapping.locator("tbody tr")).to_have_count(10)
    inn = page.get_by_label("Поле: ИНН")
    await expect(inn).to_have_value("inn")
    await expect(page.get_by_label("Поле: Отрасль")).to_have_value("industry")
    await expect(page.locator("#import-rows tbody tr").first).to_contain_text("7730123456")
    # The owner column names a user who does not exist here: skip it instead.
    await page.get_by_label("Поле: Менеджер").select_option("")
    await page.screenshot(path="/tmp/ui-import-mapping.png")

    await page.get_by_role("button", name="Проверить без записи").click()
    report = page.locator("#import-report")
    await expect(report).to_have_attribute("data-dry-run", "true")
    await expect(report).to_contain_text("Проверка (ничего не записано)")
    await expect(report.locator("[data-count=created]")).to_have_text("4")
    await expect(report.locator("[data-count=errors]")).to_have_text("1")
    errors = page.locator("#import-errors tbody tr")
    await expect(errors).to_have_count(1)
    await expect(errors.first).to_contain_text("7")  # the row as Excel shows it
    await expect(errors.first).to_contain_text("ИНН")
    assert await _clients(ui) == 0  # a dry run writes nothing

    await page.get_by_role("button", name="Импортировать").click()
    await expect(report).to_have_attribute("data-dry-run", "false")
    await expect(report).to_contain_text("Импорт завершён")
    await expect(page.locator("#import-progress")).to_have_count(0)
    await expect(report.locator("[data-count=created]")).to_have_text("4")
    await expect(report.locator("[data-count=updated]")).to_have_text("1")
    assert await _clients(ui) == 4
    _, clients = await api(ui, "GET", "/clients?limit=100", ui.admin)
    assert all(c["owner_id"] is None for c in clients["items"])  # the column was skipped
    await page.screenshot(path="/tmp/ui-import-report.png")

    # The list of imports, and undo.
    row = page.locator("#import-list tbody tr").first
    await expect(row).to_contain_text("clients_simple.xlsx")
    await expect(row).to_contain_text("готово")
    page.once("dialog", lambda d: d.accept())
    await row.get_by_role("button", name="Отменить").click()
    await expect(page.locator("#import-list tbody tr").first).to_contain_text("отменён")
    assert await _clients(ui) == 0


async def test_a_bad_file_is_a_clear_error_and_nothing_is_written(
    page: Page, ui: UI, tmp_path: Path
) -> None:
    await _sign_in(page, ui)
    await page.goto(ui.at("/ui/#/import"))
    bad = tmp_path / "photo.xlsx"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    await page.get_by_label("Файл (.xlsx или .csv)").set_input_files(str(bad))
    await page.get_by_role("button", name="Показать").click()
    await expect(page.locator("#import-error")).to_contain_text("это не таблица")
    await expect(page.locator("#import-map")).to_have_count(0)
    assert await _clients(ui) == 0


@pytest.fixture
async def phone(chromium: Path, ui: UI) -> AsyncIterator[Any]:
    async with browser_page(
        chromium,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    ) as pg:
        yield pg


async def test_the_wizard_fits_a_phone(phone: Page, ui: UI) -> None:
    page = phone
    await _sign_in(page, ui)
    await page.goto(ui.at("/ui/#/import"))
    await expect(page.locator("main h1")).to_have_text("Импорт клиентов")
    await fits(page, "import")
    await page.get_by_label("Файл (.xlsx или .csv)").set_input_files(str(SAMPLE))
    await page.get_by_role("button", name="Показать").click()
    await expect(page.locator("#import-map tbody tr")).to_have_count(10)
    await fits(page, "import-mapping")
    await page.get_by_role("button", name="Импортировать").click()
    await expect(page.locator("#import-report")).to_contain_text("Импорт завершён")
    await expect(page.locator("#import-list tbody tr")).to_have_count(1)
    await fits(page, "import-report")
