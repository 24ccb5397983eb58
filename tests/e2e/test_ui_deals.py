"""Deals in the browser (issue 13, item 2): the board per pipeline with drag and drop, the
lose dialog, creating a deal on the board and from a client, converting a lead into a
deal, and the deal card (line items, tasks, click-to-call, an email from the deal)."""

from __future__ import annotations

import os
from typing import Any

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("playwright", reason="pip install -e '.[test]' for the browser tests")
from playwright.async_api import Page, expect

from crm_core.demo import load_demo
from gateway.api.keys import DB
from tests.e2e.conftest import UI
from tests.e2e.test_ui import FORM, api, enter_with, post_form, send_reply, shot, sign_in
from tests.e2e.test_ui_mobile import fits, phone  # noqa: F401 (the phone fixture)


async def demo_admin(ui: UI) -> str:
    demo = await load_demo(ui.app[DB])
    return next(u["token"] for u in demo["users"] if u["email"].startswith("admin@"))


async def b2c(ui: UI, token: str) -> dict[str, Any]:
    _, pipelines = await api(ui, "GET", "/pipelines", token)
    return next(p for p in pipelines["items"] if p["name"].startswith("B2C"))


async def test_board_drag_and_drop_and_the_lose_dialog(page: Page, ui: UI) -> None:
    admin = await demo_admin(ui)
    pipeline = await b2c(ui, admin)
    await sign_in(page, ui, admin)
    await page.get_by_role("link", name="Сделки").click()
    await page.get_by_label("Воронка").select_option(label="B2C — розница")
    board = page.locator("#deals-board")
    await expect(board.locator(".column h2")).to_have_text(["Заявка", "Подбор", "Счёт", "Доставка"])

    # A new deal on the board, in the pipeline shown.
    await page.get_by_role("button", name="Новая сделка").click()
    dialog = page.locator("dialog#modal")
    await dialog.get_by_label("Название", exact=True).fill("Стулья для кухни")
    await dialog.get_by_label("Найти клиента").fill("Волкова")
    await expect(dialog.get_by_label("Клиент", exact=True)).to_have_value(
        await _client_id(ui, admin)
    )
    await expect(dialog.get_by_label("Воронка")).to_have_value(str(pipeline["id"]))
    await dialog.get_by_label("Сумма, ₽").fill("12 500")
    await dialog.get_by_role("button", name="Создать").click()
    await expect(dialog).to_be_hidden()
    card = board.locator(".deal", has_text="Стулья для кухни")
    await expect(board.locator(".column[data-stage=new]").locator(".deal")).to_contain_text(
        ["Стулья для кухни"]
    )

    # Drag it (real mouse: HTML5 drag events in Chromium) to "Подбор".
    await card.drag_to(board.locator(".column[data-stage=selection]"))
    await expect(page.locator("#toasts")).to_contain_text("Сделка перемещена: Подбор")
    await expect(board.locator(".column[data-stage=selection] .deal")).to_have_count(1)
    # "Счёт" needs line items: refused with the field named, the card stays.
    await card.drag_to(board.locator(".column[data-stage=invoice]"))
    await expect(page.locator("#toasts")).to_contain_text(
        "Для этапа «Счёт» нужно заполнить поле «позиции сделки»"
    )
    await expect(board.locator(".column[data-stage=selection] .deal")).to_have_count(1)
    # The deal with items moves on to "Доставка".
    kitchen = board.locator(".deal", has_text="Кухонный гарнитур")
    await kitchen.drag_to(board.locator(".column[data-stage=delivery]"))
    await expect(board.locator(".column[data-stage=delivery] .deal")).to_have_count(1)

    # Dropped on "Проиграна": the reason dialog; a reason from the catalogue is required.
    await card.drag_to(page.locator(".dropzone.lost"))
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("h2")).to_have_text("Сделка проиграна: Стулья для кухни")
    options = dialog.get_by_label("Причина").locator("option")
    await expect(options).to_have_text(
        ["Выберите причину", "Дорого", "Нет в наличии", "Нашёл дешевле", "Передумал", "Другое"]
    )
    await dialog.get_by_role("button", name="Проиграна").click()
    await expect(dialog.get_by_label("Причина")).to_have_attribute("aria-invalid", "true")
    await expect(dialog).to_contain_text("Нужна причина из справочника причин проигрыша")
    await dialog.get_by_label("Причина").select_option(label="Нет в наличии")
    await dialog.get_by_label("Комментарий").fill("ждать два месяца")
    await shot(page, "deal-lose")
    await dialog.get_by_role("button", name="Проиграна").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#toasts")).to_contain_text("Сделка проиграна")
    await expect(card).to_have_count(0)
    await expect(page.locator(".dropzone.lost")).to_contain_text("2 сделки")
    _, deals = await api(ui, "GET", f"/deals?pipeline_id={pipeline['id']}&status=lost", admin)
    lost = next(d for d in deals["items"] if d["title"] == "Стулья для кухни")
    reason = next(r for r in pipeline["loss_reasons"] if r["name"] == "Нет в наличии")
    assert (lost["loss_reason_id"], lost["loss_comment"]) == (reason["id"], "ждать два месяца")

    # Filters: the amount range keeps the kitchen only; reset shows everything again.
    await page.get_by_label("Сумма от").fill("100 000")
    await page.get_by_role("button", name="Применить").click()
    await expect(board.locator(".deal")).to_have_count(1)
    await expect(board.locator(".deal")).to_contain_text("Кухонный гарнитур")
    await page.get_by_role("button", name="Сбросить").click()
    await expect(page.get_by_label("Сумма от")).to_have_value("")
    await shot(page, "board-b2c")

    # In English: the pipeline's own English names.
    await page.locator(".topbar").get_by_role("button", name="English").click()
    await expect(board.locator(".column h2")).to_have_text(
        ["Request", "Selection", "Invoice", "Delivery"]
    )
    await expect(page.locator(".dropzone.lost")).to_contain_text("Lost")
    await expect(page.get_by_role("button", name="New deal")).to_be_visible()


async def _client_id(ui: UI, token: str) -> str:
    _, page = await api(ui, "GET", "/clients?q=Волкова", token)
    return str(page["items"][0]["id"])


async def test_convert_a_lead_and_work_the_deal_card(page: Page, ui: UI) -> None:
    status, pipeline = await api(
        ui,
        "POST",
        "/pipelines",
        ui.admin,
        {
            "name": "B2C — розница",
            "stages": [{"code": "new", "name": "Заявка"}, {"code": "offer", "name": "Подбор"}],
            "loss_reasons": ["Дорого"],
        },
    )
    assert status == 201, pipeline
    await post_form(ui, FORM)
    _, leads = await api(ui, "GET", "/leads", ui.admin)
    lead_id = leads["items"][0]["id"]
    await sign_in(page, ui, ui.admin)
    await page.goto(ui.at(f"/ui/#/leads/{lead_id}"))
    await page.get_by_role("button", name="Конвертировать").click()
    dialog = page.locator("dialog#modal")
    await dialog.get_by_label("Название сделки").fill("Стол обеденный")
    await dialog.get_by_label("Воронка").select_option(label="B2C — розница")
    await dialog.get_by_role("button", name="Конвертировать").click()
    await expect(dialog).to_be_hidden()
    await page.locator("#lead-deal").click()

    title = page.locator("#deal-title")
    await expect(title).to_have_text("Стол обеденный")
    await expect(page.locator("#deal-stage-badge")).to_have_text("Заявка")
    await expect(page.locator("#deal-contacts")).to_contain_text("+79165551234")
    await expect(
        page.locator("#deal-contacts").get_by_role("button", name="Позвонить +79165551234")
    ).to_be_visible()
    # The lead's form submission is on the deal's timeline.
    await expect(page.locator(".timeline li")).to_contain_text(["Хочу демо"])

    # Edit: two line items make the amount.
    await page.locator("#deal-edit").click()
    await dialog.get_by_role("button", name="+ Позиция").click()
    row = dialog.locator("tr.item-row").last
    await row.get_by_label("Позиция").fill("Стол")
    await row.get_by_label("Цена").fill("20 000")
    await row.get_by_label("Скидка, %").fill("10")
    await dialog.get_by_role("button", name="+ Позиция").click()
    row = dialog.locator("tr.item-row").last
    await row.get_by_label("Позиция").fill("Стул")
    await row.get_by_label("Кол-во").fill("4")
    await row.get_by_label("Цена").fill("3000")
    await expect(dialog.get_by_label("Сумма, ₽")).to_be_disabled()
    await shot(page, "deal-edit")
    await dialog.get_by_role("button", name="Сохранить").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#deal-items tbody tr")).to_have_count(2)
    await expect(page.locator("#deal-amount")).to_contain_text("30 000")

    # A task on the deal.
    await page.locator("form.task-add").get_by_label("Задача").fill("Позвонить про доставку")
    await page.locator("form.task-add").get_by_role("button", name="Добавить задачу").click()
    await expect(page.locator("#deal-tasks")).to_contain_text("Позвонить про доставку")

    # Move, win, reopen.
    await page.locator("#deal-stage").select_option(label="Подбор")
    await expect(page.locator("#deal-stage-badge")).to_have_text("Подбор")
    await page.get_by_role("button", name="Выиграна").click()
    await expect(page.locator("#deal-stage-badge")).to_have_text("Успешно закрыта")
    await page.get_by_role("button", name="Вернуть в работу").click()
    await expect(page.locator("#deal-stage-badge")).to_have_text("Подбор")
    await expect(page.locator("#deal-history li")).to_have_count(4)

    # An email from the deal: its subject carries the deal's token, so answers come back.
    await page.locator("form.reply").get_by_label("Тема").fill("Счёт на стол")
    await page.locator("form.reply").get_by_label("Текст").fill("Добрый день! Счёт во вложении.")
    msg = await send_reply(page, ui)
    deal_id = page.url.rsplit("/", 1)[1]
    assert f"[#D-{deal_id}]" in str(msg["Subject"]), msg["Subject"]
    assert msg["To"] == "anna@example.ru"
    await shot(page, "deal-card")


async def test_a_deal_from_the_client_card_and_the_pages_fit_a_phone(phone: Page, ui: UI) -> None:  # noqa: F811
    page = phone
    admin = await demo_admin(ui)
    client = await _client_id(ui, admin)
    await enter_with(page, ui, admin)
    await page.goto(ui.at(f"/ui/#/clients/{client}"))
    await page.get_by_role("button", name="Новая сделка").click()
    dialog = page.locator("dialog#modal")
    await expect(dialog.get_by_label("Клиент", exact=True)).to_have_value(client)
    await fits(page, "deal-new")
    await dialog.get_by_label("Название", exact=True).fill("Прихожая")
    await dialog.get_by_label("Воронка").select_option(label="B2C — розница")
    await dialog.get_by_label("Сумма, ₽").fill("40000")
    await dialog.get_by_role("button", name="Создать").click()
    await expect(page.locator("#deal-title")).to_have_text("Прихожая")  # the card opens
    await fits(page, "deal-card")
    await page.get_by_role("button", name="Проиграна").click()
    await expect(dialog.get_by_label("Причина")).to_be_visible()
    await fits(page, "deal-lose")
    await dialog.get_by_role("button", name="Отмена").click()
    await page.goto(ui.at("/ui/#/deals"))
    await expect(page.locator("#deals-board .column").first).to_be_visible()
    await fits(page, "board")


async def test_admins_make_a_pipeline_and_edit_its_loss_reasons(page: Page, ui: UI) -> None:
    await sign_in(page, ui, ui.admin)
    await page.get_by_role("link", name="Сделки").click()
    await page.get_by_role("button", name="Новая воронка").click()
    dialog = page.locator("dialog#modal")
    await dialog.get_by_label("Название воронки").fill("Сервис")
    await dialog.get_by_label("Этапы").fill("Обращение\nДиагностика\nРемонт")
    await dialog.get_by_label("Причины проигрыша").fill("Дорого\nДолго")
    await dialog.get_by_role("button", name="Создать").click()
    await expect(dialog).to_be_hidden()
    board = page.locator("#deals-board")
    await expect(board.locator(".column h2")).to_have_text(["Обращение", "Диагностика", "Ремонт"])
    await expect(page.locator("#pipeline-switch")).to_have_value(await _pipeline_id(ui, "Сервис"))

    await page.get_by_role("button", name="Настроить воронку").click()
    await dialog.get_by_label("Вероятность, %: Ремонт").fill("90")
    await dialog.get_by_label("Причины проигрыша").fill("Дорого\nНет запчастей")
    await dialog.get_by_role("button", name="Сохранить").click()
    await expect(dialog).to_be_hidden()
    await expect(board.locator(".column[data-stage=stage_3] header")).to_contain_text("90%")
    _, pipelines = await api(ui, "GET", "/pipelines", ui.admin)
    service = next(p for p in pipelines["items"] if p["name"] == "Сервис")
    assert {r["name"]: r["active"] for r in service["loss_reasons"]} == {
        "Дорого": True,
        "Долго": False,  # archived, not deleted
        "Нет запчастей": True,
    }
    # A manager reads pipelines but sees no settings.
    status, _ = await api(ui, "PATCH", f"/pipelines/{service['id']}", ui.manager, {"name": "x"})
    assert status == 403


async def _pipeline_id(ui: UI, name: str) -> str:
    _, pipelines = await api(ui, "GET", "/pipelines", ui.admin)
    return str(next(p["id"] for p in pipelines["items"] if p["name"] == name))
