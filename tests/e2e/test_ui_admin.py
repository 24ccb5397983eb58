"""The administration page in the browser: users (create, schedule, deactivate), website
forms (create: webhook URL and snippet; rotate the secret) and the routing rules editor
(a draft checked on an example before it is saved; errors with their line)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("playwright", reason="pip install -e '.[test]' for the browser tests")
from aiohttp import web
from playwright.async_api import Page, expect

from gateway.app import create_app
from tests.e2e.conftest import UI, browser_page
from tests.e2e.test_ui import api, enter_with, shot, sign_in
from tests.support.app import add_form, add_user, make_settings
from tests.support.smtp_server import SmtpTestServer

RULES = Path(__file__).parents[2] / "config" / "routing.yaml"


@pytest.fixture
async def admin_ui(tmp_path: Path) -> AsyncIterator[UI]:
    """The app with a routing rules file of its own (the shared ``ui`` has none)."""
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'ui.db'}"
    admin_id, admin = await add_user(db_url, "boss@example.ru", "admin", name="Ольга Админова")
    manager_id, manager = await add_user(
        db_url, "petrov@example.ru", "manager", name="Пётр Петров", extension="201", team="A"
    )
    key, secret = await add_form(db_url)
    rules = tmp_path / "routing.yaml"
    shutil.copy(RULES, rules)
    smtp = SmtpTestServer().start()
    app = create_app(make_settings(db_url, tmp_path, routing_rules_path=str(rules)))
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield UI(
            f"http://127.0.0.1:{port}", app, admin_id, admin, manager_id, manager, key, secret, smtp
        )
    finally:
        await runner.cleanup()
        smtp.stop()


@pytest.fixture
async def admin_page(chromium: Path, admin_ui: UI) -> AsyncIterator[Page]:
    async with browser_page(chromium, viewport={"width": 1440, "height": 900}) as pg:
        yield pg


async def test_admin_adds_a_user_and_sets_their_hours_and_absence(
    admin_page: Page, admin_ui: UI
) -> None:
    page, ui = admin_page, admin_ui
    await sign_in(page, ui, ui.admin)
    await page.locator("#nav").get_by_role("link", name="Админ").click()
    await expect(page.get_by_role("heading", name="Администрирование")).to_be_visible()
    await page.get_by_role("button", name="+ Добавить сотрудника").click()
    dialog = page.locator("dialog#modal")
    await dialog.get_by_label("E-mail").fill("sidorova@example.ru")
    await dialog.get_by_label("Имя").fill("Анна Сидорова")
    await dialog.get_by_label("Команда").fill("A")
    await dialog.get_by_label("Внутр. номер").fill("205")
    await dialog.get_by_label("Пн").fill("09:00-13:00, 14:00-18:00")
    await dialog.get_by_role("button", name="Сохранить").click()
    await expect(dialog.get_by_role("heading", name="API-токен")).to_be_visible()
    token = await dialog.locator("input.token").input_value()
    assert len(token) >= 40
    await dialog.get_by_role("button", name="Закрыть").click()
    row = page.locator("tr", has_text="sidorova@example.ru")
    await expect(row).to_contain_text("205")
    status, me = await api(ui, "GET", "/me", token)
    assert status == 200 and me["working_hours"] == {"0": [["09:00", "13:00"], ["14:00", "18:00"]]}

    # A wrong absence is shown under its field and changes nothing.
    await row.get_by_role("button", name="Изменить").click()
    await dialog.get_by_label("Отсутствия").fill("2026-12-31 2026-12-20 отпуск")
    await dialog.get_by_role("button", name="Сохранить").click()
    await expect(dialog.locator("#absences-error")).to_contain_text("Отсутствия заданы неверно")
    await dialog.get_by_label("Отсутствия").fill("2026-12-20 2026-12-31 отпуск")
    await dialog.get_by_label("Нагрузка, не больше").fill("15")
    await dialog.get_by_role("button", name="Сохранить").click()
    await expect(dialog).to_be_hidden()
    status, me = await api(ui, "GET", "/me", token)
    assert me["absences"] == [{"start": "2026-12-20", "end": "2026-12-31", "reason": "отпуск"}]
    assert me["capacity"] == 15
    await shot(page, "admin-users")

    page.once("dialog", lambda d: d.accept())
    await row.get_by_role("button", name="Отключить").click()
    await expect(row).to_contain_text("отключён")
    status, _ = await api(ui, "GET", "/me", token)
    assert status == 403  # a deactivated user's token is refused


async def test_admin_creates_a_form_and_rotates_its_secret(admin_page: Page, admin_ui: UI) -> None:
    page, ui = admin_page, admin_ui
    await sign_in(page, ui, ui.admin)
    await page.goto(ui.at("/ui/#/admin/forms"))
    await page.get_by_role("button", name="+ Новая форма").click()
    dialog = page.locator("dialog#modal")
    await dialog.get_by_label("Название формы").fill("Лендинг акции")
    await dialog.get_by_role("button", name="Сохранить").click()
    card = page.locator("article.form-card", has_text="Лендинг акции")
    await expect(card).to_be_visible()
    url = await card.get_by_label("Адрес для сайта (webhook)").input_value()
    assert url.startswith(ui.url + "/hooks/forms/") and "?secret=" in url
    snippet = await card.get_by_label("HTML-код формы").input_value()
    assert 'name="phone"' in snippet
    await shot(page, "admin-forms")
    page.once("dialog", lambda d: d.accept())
    await card.get_by_role("button", name="Новый секрет").click()
    await expect(card.get_by_label("Адрес для сайта (webhook)")).not_to_have_value(url)
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.post(url, data={"name": "Иван", "phone": "+79161234567"}) as r:
            assert r.status in (401, 403), await r.text()  # the old secret is refused
        new_url = await card.get_by_label("Адрес для сайта (webhook)").input_value()
        async with http.post(new_url, data={"name": "Иван", "phone": "+79161234567"}) as r:
            assert r.status == 201, await r.text()


async def test_rules_draft_is_checked_then_saved(admin_page: Page, admin_ui: UI) -> None:
    page, ui = admin_page, admin_ui
    await sign_in(page, ui, ui.admin)
    await page.goto(ui.at("/ui/#/admin/rules"))
    editor = page.locator("#rules-yaml")
    await expect(editor).to_have_value(RULES.read_text(encoding="utf-8"))
    # A broken draft: the error names its line; nothing is saved.
    await editor.fill("version: 1\nrules:\n  - id: x\n    assign: {strategy: nowhere}\n")
    await page.get_by_role("button", name="Сохранить").click()
    await expect(page.locator(".rule-errors")).to_contain_text("строка 4")
    status, rules = await api(ui, "GET", "/rules", ui.admin)
    assert rules["text"] == RULES.read_text(encoding="utf-8")
    # A good draft explained on an example from a new caller, then saved.
    draft = RULES.read_text(encoding="utf-8").replace("sla_minutes: 60", "sla_minutes: 45")
    await editor.fill(draft)
    await page.get_by_label("Телефон").fill("+79161234567")
    await page.get_by_role("button", name="Проверить").click()
    result = page.locator(".rules-result")
    await expect(result.locator("li.selected")).to_contain_text("new-leads-round-robin")
    await shot(page, "admin-rules")
    await page.get_by_role("button", name="Сохранить").click()
    await expect(page.locator(".rules-result")).to_contain_text("Правила сохранены")
    status, rules = await api(ui, "GET", "/rules", ui.admin)
    assert status == 200 and rules["text"] == draft
    # the history: version 1 (the file) and 2 (the editor); restore 1
    history = page.locator(".rules-history li")
    await expect(history).to_have_count(2)
    await expect(history.first).to_contain_text("действует")
    page.once("dialog", lambda d: d.accept())
    await history.last.get_by_role("button", name="Восстановить").click()
    await expect(page.locator(".rules-history li")).to_have_count(3)
    await expect(page.locator(".rules-history li").first).to_contain_text("восстановлена")
    status, rules = await api(ui, "GET", "/rules", ui.admin)
    assert rules["text"] == RULES.read_text(encoding="utf-8") and rules["version"] == 3


async def test_a_manager_has_no_admin_page(page: Page, ui: UI) -> None:
    await sign_in(page, ui, ui.manager)
    await expect(page.locator("#nav-admin")).to_be_hidden()


async def test_admin_pages_fit_a_phone(chromium: Path, admin_ui: UI) -> None:
    from tests.e2e.test_ui_mobile import HEIGHT, WIDTH, fits

    async with browser_page(
        chromium,
        viewport={"width": WIDTH, "height": HEIGHT},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    ) as page:
        await enter_with(page, admin_ui, admin_ui.admin)
        await page.goto(admin_ui.at("/ui/#/admin/users"))
        await expect(page.locator("tr", has_text="petrov@example.ru")).to_be_visible()
        await fits(page, "admin-users")
        await (
            page.locator("tr", has_text="petrov@example.ru")
            .get_by_role("button", name="Изменить")
            .click()
        )
        await expect(page.locator("dialog#modal").get_by_label("Пн")).to_be_visible()
        await fits(page, "admin-user-edit")
        await page.locator("dialog#modal").get_by_role("button", name="Отмена").click()
        await page.goto(admin_ui.at("/ui/#/admin/forms"))
        await expect(page.locator("article.form-card").first).to_be_visible()
        await fits(page, "admin-forms")
        await page.goto(admin_ui.at("/ui/#/admin/rules"))
        await expect(page.locator("#rules-yaml")).to_be_visible()
        await fits(page, "admin-rules")
