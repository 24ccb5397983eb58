"""People sign in in a real browser: email and password, a wrong password, the session kept
over a reload and ended by signing out, two-factor enrolment and the second step (a TOTP
code, a recovery code), the enrolment a role requires, the set-password page behind an
invitation, the profile's sessions and tokens for integrations."""

from __future__ import annotations

import email
import email.policy
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pyotp
import pytest

if not os.environ.get("CI"):
    pytest.importorskip("playwright", reason="pip install -e '.[test]' for the browser tests")
from aiohttp import web
from playwright.async_api import Page, expect

from gateway.app import create_app
from tests.e2e.conftest import UI, browser_page
from tests.e2e.test_ui import PASSWORD, give_password, shot, sign_in
from tests.support.app import add_user, make_settings

pytestmark = pytest.mark.timeout(180)


async def _password_step(page: Page, ui: UI, who: str, password: str = PASSWORD) -> None:
    await page.goto(ui.at("/ui/"))
    await page.get_by_label("Почта").fill(who)
    await page.get_by_label("Пароль").fill(password)
    await page.get_by_role("button", name="Войти").click()


async def _sign_out(page: Page) -> None:
    await page.get_by_role("button", name="Выйти").click()
    await expect(page.locator("#signin")).to_be_visible()


async def test_sign_in_with_a_password_a_wrong_one_and_sign_out(page: Page, ui: UI) -> None:
    await give_password(ui, ui.manager)
    await page.goto(ui.at("/ui/"))
    await expect(page.get_by_label("API-токен")).to_have_count(0)  # no token field for people
    await page.get_by_role("button", name="Войти").click()
    await expect(page.locator("#signin-form .field-error").first).to_have_text("Введите почту")
    await _password_step(page, ui, "petrov@example.ru", "not the password")
    error = page.locator("#signin-form [role=alert]:not(:empty)")
    await expect(error).to_have_count(1)
    await expect(page.locator("#shell")).to_be_hidden()
    await shot(page, "signin-wrong")

    await _password_step(page, ui, "Petrov@Example.ru")
    await expect(page.locator("#me")).to_have_text("Пётр Петров · менеджер · ☎ 201")
    await expect(page.locator("#live-status")).to_have_text("● в сети")  # live ticket by cookie
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies["crmhub_session"]["httpOnly"] is True
    assert cookies["crmhub_session"]["sameSite"] == "Lax"
    assert await page.evaluate("localStorage.getItem('crmhub.token')") is None
    await page.reload()  # the session is kept
    await expect(page.locator("#me")).to_contain_text("Пётр Петров")
    await _sign_out(page)
    await page.reload()  # ended on the server too
    await expect(page.locator("#signin")).to_be_visible()
    await expect(page.locator("#shell")).to_be_hidden()


async def test_two_factor_enrolment_then_the_second_step(page: Page, ui: UI) -> None:
    await sign_in(page, ui, ui.manager)
    await page.locator("#me").click()
    await expect(page).to_have_url(re.compile(r"#/profile$"))
    tf = page.locator("#acc-two-factor")
    await expect(tf.locator("#two-factor-state")).to_contain_text("Выключен")
    await tf.get_by_role("button", name="Подключить").click()
    await expect(tf.locator("img.qr")).to_be_visible()
    secret = (await tf.locator("code.secret").text_content() or "").strip()
    totp = pyotp.TOTP(secret)
    await tf.get_by_label("Код").fill("000000")
    await tf.get_by_role("button", name="Включить").click()
    await expect(tf.locator("[role=alert]:not(:empty)")).to_contain_text("Код неверный")
    now = time.time()
    await tf.get_by_label("Код").fill(totp.at(now))
    await tf.get_by_role("button", name="Включить").click()
    codes = tf.locator("#recovery-codes li")
    await expect(codes).to_have_count(10)
    recovery = [(await c.text_content() or "").strip() for c in await codes.all()]
    await shot(page, "two-factor-codes")
    await tf.get_by_role("button", name="Я сохранил коды").click()
    await expect(tf.locator("#two-factor-state")).to_contain_text("Осталось резервных кодов: 10")
    await _sign_out(page)

    # the password alone no longer signs in: the code step follows
    await _password_step(page, ui, "petrov@example.ru")
    step = page.locator("#two-factor-form")
    await expect(step).to_be_visible()
    await expect(page.locator("#shell")).to_be_hidden()
    await step.get_by_label("Код").fill(totp.at(now))  # spent on enabling
    await step.get_by_role("button", name="Подтвердить").click()
    await expect(step.locator("[role=alert]:not(:empty)")).to_have_count(1)
    await step.get_by_label("Код").fill(totp.at(now + 30))
    await step.get_by_role("button", name="Подтвердить").click()
    await expect(page.locator("#me")).to_contain_text("Пётр Петров")
    await _sign_out(page)

    # a recovery code works once
    await _password_step(page, ui, "petrov@example.ru")
    await page.locator("#two-factor-form").get_by_label("Код").fill(recovery[0])
    await page.get_by_role("button", name="Подтвердить").click()
    await expect(page.locator("#me")).to_contain_text("Пётр Петров")
    await page.goto(ui.at("/ui/#/profile"))
    await expect(page.locator("#two-factor-state")).to_contain_text("Осталось резервных кодов: 9")
    await _sign_out(page)
    await _password_step(page, ui, "petrov@example.ru")
    await page.locator("#two-factor-form").get_by_label("Код").fill(recovery[0])
    await page.get_by_role("button", name="Подтвердить").click()
    await expect(page.locator("#two-factor-form [role=alert]:not(:empty)")).to_have_count(1)
    await expect(page.locator("#shell")).to_be_hidden()


@pytest.fixture
async def strict_ui(tmp_path: Path) -> AsyncIterator[UI]:
    """The app with ``two_factor_roles = ["admin"]`` (no SMTP, no form)."""
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'strict.db'}"
    admin_id, admin = await add_user(db_url, "boss@example.ru", "admin", name="Ольга Админова")
    manager_id, manager = await add_user(db_url, "petrov@example.ru", "manager")
    app = create_app(make_settings(db_url, tmp_path, two_factor_roles=["admin"]))
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield UI(
            url=f"http://127.0.0.1:{port}", app=app, admin_id=admin_id, admin=admin,
            manager_id=manager_id, manager=manager, form_key="", form_secret="",
            smtp=None,  # type: ignore[arg-type]
        )  # fmt: skip
    finally:
        await runner.cleanup()


async def test_a_role_that_must_use_two_factor_enrols_at_sign_in(
    chromium: Path, strict_ui: UI
) -> None:
    ui = strict_ui
    await give_password(ui, ui.admin)
    async with browser_page(chromium, viewport={"width": 1280, "height": 900}) as page:
        await _password_step(page, ui, "boss@example.ru")
        setup = page.locator("#two-factor-setup-form")
        await expect(setup).to_contain_text("обязателен")
        await expect(page.locator("#shell")).to_be_hidden()
        # nothing else works before the enrolment: no session cookie yet
        assert not [c for c in await page.context.cookies() if c["name"] == "crmhub_session"]
        secret = (await setup.locator("code.secret").text_content() or "").strip()
        await setup.get_by_label("Код").fill(pyotp.TOTP(secret).now())
        await setup.get_by_role("button", name="Подтвердить").click()
        await expect(page.locator("#recovery-codes li")).to_have_count(10)
        await page.get_by_role("button", name="Я сохранил коды").click()
        await expect(page.locator("#me")).to_contain_text("Ольга Админова")
        await page.goto(ui.at("/ui/#/profile"))
        await expect(page.locator("#two-factor-state")).to_contain_text("Включён")
        await expect(page.locator("#acc-two-factor")).to_contain_text("обязателен")
        await expect(page.locator("#two-factor-disable")).to_have_count(0)

        # no SMTP here: the invitation dialog shows the link to hand over
        await page.goto(ui.at("/ui/#/admin/users"))
        await page.get_by_role("button", name="+ Пригласить").click()
        dialog = page.locator("dialog#modal")
        await dialog.get_by_label("E-mail").fill("novikova@example.ru")
        await dialog.get_by_role("button", name="Пригласить").click()
        link = dialog.locator("#invite-link")
        await expect(link).to_have_value(re.compile(r"/ui/set-password\?token=\S+$"))
        await dialog.get_by_role("button", name="Закрыть").click()

        # "end sessions" signs the manager out of their browser
        await give_password(ui, ui.manager)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            login = {"email": "petrov@example.ru", "password": PASSWORD}
            async with http.post(ui.at("/api/v1/auth/login"), json=login) as r:
                assert r.status == 200
            async with http.get(ui.at("/api/v1/me")) as r:
                assert r.status == 200
            page.once("dialog", lambda d: d.accept())
            row = page.locator("tr", has_text="petrov@example.ru")
            await row.get_by_role("button", name="Завершить сеансы").click()
            await expect(page.locator("#toasts")).to_contain_text("Сеансы завершены")
            async with http.get(ui.at("/api/v1/me")) as r:
                assert r.status == 401


async def test_an_invitation_link_sets_the_password(page: Page, ui: UI) -> None:
    await sign_in(page, ui, ui.admin)
    await page.goto(ui.at("/ui/#/admin/users"))
    await page.get_by_role("button", name="+ Пригласить").click()
    dialog = page.locator("dialog#modal")
    await dialog.get_by_label("E-mail").fill("novikova@example.ru")
    await dialog.get_by_label("Имя").fill("Мария Новикова")
    await dialog.get_by_role("button", name="Пригласить").click()
    await expect(page.locator("#toasts")).to_contain_text("Приглашение отправлено")
    await expect(page.locator("tr", has_text="novikova@example.ru")).to_be_visible()
    for _ in range(40):  # the outbox worker sends it
        if ui.smtp.messages:
            break
        await page.wait_for_timeout(250)
    (sent,) = ui.smtp.messages
    assert sent.rcpt_tos == ["novikova@example.ru"]
    body = email.message_from_bytes(sent.data, policy=email.policy.default)
    text = body.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"http\S+/ui/set-password\?token=\S+", text)
    assert link is not None, text
    await _sign_out(page)

    await page.goto(link.group(0))
    form = page.locator("#set-password-form")
    await expect(form).to_be_visible()
    await form.get_by_label("Новый пароль").fill("Зелёный-кит-2026")
    await form.get_by_label("Повторите пароль").fill("Зелёный-кит-2027")
    await form.get_by_role("button", name="Сохранить пароль").click()
    await expect(form.locator("[role=alert]:not(:empty)")).to_have_text("Пароли не совпадают")
    await form.get_by_label("Повторите пароль").fill("Зелёный-кит-2026")
    await form.get_by_role("button", name="Сохранить пароль").click()
    await expect(page.locator("#signin-notice")).to_contain_text("Пароль задан")
    assert page.url == ui.at("/ui/")
    if not await page.get_by_label("Почта").input_value():
        await page.get_by_label("Почта").fill("novikova@example.ru")
    await page.get_by_label("Пароль").fill("Зелёный-кит-2026")
    await page.get_by_role("button", name="Войти").click()
    await expect(page.locator("#me")).to_contain_text("Мария Новикова")
    await _sign_out(page)

    await page.goto(link.group(0))  # the link works once
    form = page.locator("#set-password-form")
    await form.get_by_label("Новый пароль").fill("Другой-пароль-99")
    await form.get_by_label("Повторите пароль").fill("Другой-пароль-99")
    await form.get_by_role("button", name="Сохранить пароль").click()
    await expect(form.locator("[role=alert]:not(:empty)")).to_have_count(1)
    await expect(page.locator("#signin-notice")).to_have_count(0)


async def test_the_profile_ends_sessions_and_manages_tokens(page: Page, ui: UI) -> None:
    await sign_in(page, ui, ui.manager)
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as http:  # a second session, elsewhere
        async with http.post(
            ui.at("/api/v1/auth/login"),
            json={"email": "petrov@example.ru", "password": PASSWORD},
            headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"},
        ) as r:
            assert r.status == 200, await r.text()
        async with http.get(ui.at("/api/v1/me")) as r:
            assert r.status == 200  # signed in there
        await page.goto(ui.at("/ui/#/profile"))
        rows = page.locator("#sessions-table tbody tr")
        await expect(rows).to_have_count(2)
        await expect(rows.filter(has_text="этот сеанс")).to_have_count(1)
        await shot(page, "profile")
        await rows.filter(has_not_text="этот сеанс").get_by_role("button", name="Завершить").click()
        await expect(rows).to_have_count(1)
        async with http.get(ui.at("/api/v1/me")) as r:
            assert r.status == 401  # that session is gone

        tokens = page.locator("#acc-tokens")
        await tokens.get_by_label("Название").fill("Сайт")
        await tokens.get_by_label("Права").select_option("read")
        await tokens.get_by_role("button", name="Создать токен").click()
        shown = tokens.locator("#token-shown input.token")
        await expect(shown).to_be_visible()
        token = await shown.input_value()
        assert len(token) > 20
        await expect(tokens.locator("#tokens-table tbody tr", has_text="Сайт")).to_have_count(1)
        bearer = {"Authorization": f"Bearer {token}"}
        async with http.get(ui.at("/api/v1/me"), headers=bearer) as r:
            assert r.status == 200
        async with http.post(ui.at("/api/v1/tasks"), headers=bearer, json={}) as r:
            assert r.status == 403  # read only
        page.once("dialog", lambda d: d.accept())
        row = tokens.locator("#tokens-table tbody tr", has_text="Сайт")
        await row.get_by_role("button", name="Отозвать").click()
        await expect(row).to_have_count(0)
        async with http.get(ui.at("/api/v1/me"), headers=bearer) as r:
            assert r.status == 401
        await page.reload()  # the token is never shown again
        await expect(page.locator("#token-shown input")).to_have_count(0)

    # ending the current session signs out
    page.once("dialog", lambda d: d.accept())
    await page.locator("#sessions-table tbody tr").get_by_role("button", name="Завершить").click()
    await expect(page.locator("#signin")).to_be_visible()
