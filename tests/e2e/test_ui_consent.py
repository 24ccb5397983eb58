"""Email consent in the browser: the client card's consent block, the public
unsubscribe page clicked through in the browser, and a manager granting consent again
(a note required after the address unsubscribed itself)."""

from __future__ import annotations

import os

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("playwright", reason="pip install -e '.[test]' for the browser tests")
from playwright.async_api import Page, expect

from crm_core.services.consent import make_unsubscribe_token
from gateway.unsubscribe import app_secret
from tests.e2e.conftest import UI
from tests.e2e.test_ui import api, shot, sign_in


async def test_consent_block_unsubscribe_page_and_grant_again(page: Page, ui: UI) -> None:
    status, client = await api(
        ui,
        "POST",
        "/clients",
        ui.manager,
        {"kind": "company", "name": "ООО Ромашка", "emails": ["office@romashka.ru"]},
    )
    assert status == 201, client
    status, _ = await api(
        ui,
        "POST",
        f"/clients/{client['id']}/contacts",
        ui.manager,
        {"name": "Иван Петров", "emails": ["ivan.petrov@romashka.ru"]},
    )
    assert status == 201

    await sign_in(page, ui, ui.manager)
    await page.goto(ui.at(f"/ui/#/clients/{client['id']}"))
    block = page.locator("#consent")
    await expect(block.locator("h2")).to_have_text("Согласие на рассылки")
    items = block.locator("li.consent-item")
    await expect(items).to_have_count(2)
    ivan = block.locator("li.consent-item[data-email='ivan.petrov@romashka.ru']")
    await expect(ivan).to_contain_text("Иван Петров")
    await expect(ivan.locator(".badge")).to_have_text("не указано")

    # Ivan follows the link of a campaign email and confirms: the page, in the browser
    token = make_unsubscribe_token(await app_secret(ui.app), "ivan.petrov@romashka.ru", 12)
    await page.goto(ui.at(f"/u/{token}"))
    await expect(page.locator("h1")).to_have_text("Отписать адрес i***v@romashka.ru от рассылок?")
    await shot(page, "unsubscribe")
    await page.get_by_role("button", name="Отписаться").click()
    await expect(page.locator("h1")).to_have_text("Адрес i***v@romashka.ru отписан от рассылок.")
    await page.get_by_role("link", name="English").click()
    await expect(page.locator("h1")).to_have_text(
        "i***v@romashka.ru is already unsubscribed from our mailings."
    )

    # the card shows it, with its history
    await page.goto(ui.at(f"/ui/#/clients/{client['id']}"))
    await expect(ivan.locator(".badge")).to_have_text("отписался")
    await expect(ivan).to_contain_text("рассылки не отправляются")
    await ivan.locator("summary").click()
    await expect(ivan.locator("details li")).to_have_count(1)
    await expect(ivan.locator("details li")).to_contain_text("ссылка в письме")
    await expect(ivan.locator("details li")).to_contain_text("рассылка №12")

    # granting again needs a note; with one it is saved and shown
    await ivan.get_by_role("button", name="Отметить согласие").click()
    dialog = page.locator("dialog#modal")
    await expect(dialog).to_contain_text("Адрес отписался сам")
    await dialog.get_by_label("Состояние").select_option("granted")
    await dialog.get_by_role("button", name="Сохранить").click()
    await expect(dialog).to_contain_text("напишите в заметке")
    await dialog.get_by_label("Заметка (откуда известно)").fill(
        "Попросил вернуть рассылку по телефону"
    )
    await dialog.get_by_role("button", name="Сохранить").click()
    await expect(dialog).to_be_hidden()
    await expect(ivan.locator(".badge")).to_have_text("согласен")
    await ivan.locator("summary").click()
    await expect(ivan.locator("details li")).to_have_count(2)
    await expect(ivan.locator("details li").first).to_contain_text("Попросил вернуть рассылку")
    await expect(ivan.locator("details li").first).to_contain_text("Пётр Петров")
    await shot(page, "consent")
