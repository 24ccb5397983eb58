"""Tasks and mass operations in the browser: create a meeting with a reminder, complete
it with a result and plan the next task in the same dialog, the week by day, snooze by a
preset, reassign, email from a task; on the clients list, select rows (or everything
matching the filter), run a mass action and watch its progress bar.  Also on a phone."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("playwright", reason="pip install -e '.[test]' for the browser tests")
from playwright.async_api import Page, expect

from tests.e2e.conftest import UI
from tests.e2e.test_ui import api, shot, sign_in
from tests.e2e.test_ui_mobile import fits, go

MSK = ZoneInfo("Europe/Moscow")


def _soon() -> datetime:
    """A due time later today (Moscow), so the task is in "my day"."""
    now = datetime.now(MSK).replace(second=0, microsecond=0)
    return min(now + timedelta(minutes=30), now.replace(hour=23, minute=59))


async def test_day_week_create_complete_and_plan_the_next(page: Page, ui: UI) -> None:
    status, client = await api(
        ui, "POST", "/clients", ui.manager, {"name": "ООО Ромашка", "emails": ["info@romashka.ru"]}
    )
    assert status == 201, client
    await sign_in(page, ui, ui.manager)
    await page.locator("#nav").get_by_role("link", name="Задачи").click()
    await expect(page.get_by_role("button", name="Мой день")).to_have_attribute(
        "aria-pressed", "true"
    )
    await page.get_by_role("button", name="Новая задача").click()
    dialog = page.locator("dialog#modal")
    await dialog.get_by_label("Тип").select_option("meeting")
    await expect(dialog.get_by_label("Что сделать")).to_have_value("Встреча")
    await dialog.get_by_label("Что сделать").fill("Встреча с Ромашкой")
    due = _soon()
    await dialog.get_by_label("Срок").fill(due.strftime("%Y-%m-%dT%H:%M"))
    await dialog.get_by_label("Напомнить").select_option("15")
    await dialog.get_by_label("Связана с").select_option("client_id")
    await dialog.get_by_label("Номер (ID)").fill(str(client["id"]))
    await dialog.get_by_role("button", name="Создать").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#toasts")).to_contain_text("Задача создана")
    row = (
        page.locator("#tasks-today").locator("..").locator("li.task", has_text="Встреча с Ромашкой")
    )
    await expect(row).to_be_visible()
    await expect(row.locator(".badge")).to_have_text("Встреча")
    status, page_ = await api(ui, "GET", "/tasks?status=open", ui.manager)
    task = next(t for t in page_["items"] if t["title"] == "Встреча с Ромашкой")
    assert datetime.fromisoformat(task["due_at"]) == due.astimezone(UTC)
    assert datetime.fromisoformat(task["remind_at"]) == due.astimezone(UTC) - timedelta(minutes=15)
    assert task["client_id"] == client["id"] and task["kind"] == "meeting"
    await shot(page, "tasks-day")

    # Email the client from the task: the reply composer opens in the dialog.
    await row.get_by_role("button", name="✉ Написать").click()
    await expect(dialog.locator("#task-email-title")).to_have_text("Написать: Встреча с Ромашкой")
    await dialog.get_by_label("Текст").fill("Подтверждаю встречу")
    await dialog.get_by_role("button", name="Отправить").click()
    await expect(page.locator("#toasts")).to_contain_text("Отправляется")
    await expect(dialog).to_be_hidden()  # sent: the dialog closes

    # Complete with a result and plan the next task in the same dialog.
    await row.get_by_role("button", name="✓ Готово").click()
    await expect(dialog.get_by_role("heading", name="Завершить задачу")).to_be_visible()
    await dialog.get_by_label("Результат").fill("Договорились о поставке")
    await expect(dialog.get_by_label("Что сделать")).to_be_hidden()
    await dialog.get_by_label("Запланировать следующую задачу").check()
    await dialog.get_by_label("Тип").select_option("send_offer")
    await dialog.get_by_label("Что сделать").fill("Отправить КП Ромашке")
    await shot(page, "task-done")
    await dialog.get_by_role("button", name="Завершить").click()
    await expect(page.locator("#toasts")).to_contain_text("следующая запланирована")
    await expect(row).to_have_count(0)
    status, done = await api(ui, "GET", f"/tasks/{task['id']}", ui.manager)
    assert (done["status"], done["result"]) == ("done", "Договорились о поставке")
    status, page_ = await api(ui, "GET", "/tasks?status=open", ui.manager)
    nxt = next(t for t in page_["items"] if t["title"] == "Отправить КП Ромашке")
    assert nxt["kind"] == "send_offer" and nxt["client_id"] == client["id"]

    # The week: seven days, Monday first.
    await page.get_by_role("button", name="Моя неделя").click()
    week = page.locator("#tasks-week")
    await expect(week.locator("section.day")).to_have_count(7)
    await expect(week.locator("section.day").first).to_contain_text(re.compile("пн", re.I))
    await shot(page, "tasks-week")


async def test_snooze_by_preset_and_reassign(page: Page, ui: UI) -> None:
    late = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    status, task = await api(
        ui,
        "POST",
        "/tasks",
        ui.admin,
        {
            "title": "Проверить оплату счёта",
            "kind": "check_payment",
            "due_at": late,
            "assignee_id": ui.manager_id,
        },
    )
    assert status == 201, task
    await sign_in(page, ui, ui.admin)
    await page.locator("#nav").get_by_role("link", name="Задачи").click()
    await page.get_by_label("Исполнитель").select_option(str(ui.manager_id))
    overdue = page.locator("section.tasks-overdue li.task", has_text="Проверить оплату счёта")
    await expect(overdue).to_be_visible()
    await overdue.get_by_label("Отложить: Проверить оплату счёта").select_option("tomorrow")
    await expect(page.locator("#toasts")).to_contain_text("Задача отложена")
    await expect(overdue).to_have_count(0)
    status, moved = await api(ui, "GET", f"/tasks/{task['id']}", ui.admin)
    local = datetime.fromisoformat(moved["due_at"]).astimezone(MSK)
    assert (local.date(), local.hour) == (datetime.now(MSK).date() + timedelta(days=1), 10)

    # Reassign from the edit dialog (an admin: to anyone active).
    await page.get_by_role("button", name="Все открытые").click()
    row = page.locator("li.task", has_text="Проверить оплату счёта")
    await row.get_by_role("button", name="Изменить: Проверить оплату счёта").click()
    dialog = page.locator("dialog#modal")
    await dialog.get_by_label("Исполнитель").select_option(str(ui.admin_id))
    await dialog.get_by_role("button", name="Сохранить").click()
    await expect(page.locator("#toasts")).to_contain_text("Задача сохранена")
    status, moved = await api(ui, "GET", f"/tasks/{task['id']}", ui.admin)
    assert moved["assignee_id"] == ui.admin_id
    # In English too.
    await page.locator("[data-lang-switch]:visible").first.click()
    await expect(page.get_by_role("button", name="My week")).to_be_visible()
    await page.get_by_label("Assignee").select_option(str(ui.admin_id))  # it is theirs now
    await expect(page.locator("li.task", has_text="Проверить оплату счёта")).to_contain_text(
        "Check payment"
    )
    # The manager no longer sees it (nor may take it back).
    status, _err = await api(
        ui, "POST", f"/tasks/{task['id']}/reassign", ui.manager, {"assignee_id": ui.manager_id}
    )
    assert status == 404  # no longer theirs: not even visible


async def test_bulk_actions_with_progress(page: Page, ui: UI) -> None:
    ids = []
    for n in range(5):
        status, c = await api(
            ui, "POST", "/clients", ui.admin, {"name": f"Клиент {n}", "owner_id": ui.manager_id}
        )
        assert status == 201, c
        ids.append(c["id"])
    await sign_in(page, ui, ui.admin)
    await page.locator("#nav").get_by_role("link", name="Клиенты").click()
    bar = page.locator("#bulk-bar")
    await expect(bar).to_contain_text("Выбрано: 0")
    await expect(page.locator("#bulk-apply")).to_be_disabled()
    await page.get_by_label("Выбрать: Клиент 1").check()
    await page.get_by_label("Выбрать: Клиент 3").check()
    await expect(bar).to_contain_text("Выбрано: 2")
    await page.locator("#bulk-action").select_option("status")
    await page.locator("#bulk-apply").click()
    dialog = page.locator("dialog#modal")
    await expect(dialog.locator("#modal-title")).to_have_text("Поставить статус — Выбрано: 2")
    await dialog.get_by_label("Статус").select_option("ready")
    await dialog.get_by_role("button", name="Запустить").click()
    await expect(page.locator("#bulk-status")).to_have_text(
        "Готово: обработано 2 из 2, пропущено 0", timeout=20_000
    )
    for cid, n in zip(ids, range(5), strict=True):
        status, c = await api(ui, "GET", f"/clients/{cid}", ui.admin)
        assert c["status"] == ("ready" if n in (1, 3) else "cold")

    # Everything matching the filter: plan a task for each, at most 2 a day.
    await page.get_by_label("Все по фильтру (5)").check()
    await expect(bar).to_contain_text("Выбрано: 5")
    await page.locator("#bulk-action").select_option("tasks")
    await page.locator("#bulk-apply").click()
    await dialog.get_by_label("Тип").select_option("call_back")
    await dialog.get_by_label("Что сделать").fill("Обзвон весной")
    await dialog.get_by_label("Не больше задач на менеджера в день").fill("2")
    await shot(page, "bulk-tasks")
    await dialog.get_by_role("button", name="Запустить").click()
    await expect(page.locator("#bulk-status")).to_have_text(
        "Готово: обработано 5 из 5, пропущено 0", timeout=20_000
    )
    status, tasks = await api(ui, "GET", "/tasks?kind=call_back&limit=50", ui.admin)
    planned = [t for t in tasks["items"] if t["title"] == "Обзвон весной"]
    assert sorted(t["client_id"] for t in planned) == ids
    assert {t["assignee_id"] for t in planned} == {ui.manager_id}
    per_day: dict[str, int] = {}
    for t in planned:
        day = datetime.fromisoformat(t["due_at"]).astimezone(MSK).date().isoformat()
        per_day[day] = per_day.get(day, 0) + 1
    assert sorted(per_day.values()) == [1, 2, 2]
    await shot(page, "bulk-done")


async def test_tasks_and_bulk_fit_a_phone(ui: UI, chromium: object) -> None:
    from tests.e2e.conftest import browser_page

    for n in range(3):
        await api(ui, "POST", "/clients", ui.admin, {"name": f"Клиент с длинным названием {n}"})
    await api(ui, "POST", "/tasks", ui.admin, {"title": "Позвонить", "due_at": _soon().isoformat()})
    async with browser_page(
        chromium,  # type: ignore[arg-type]
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    ) as page:
        await sign_in(page, ui, ui.admin)
        await go(page, "Задачи")
        await expect(page.locator("li.task", has_text="Позвонить")).to_be_visible()
        await fits(page, "tasks-day")
        await page.get_by_role("button", name="Моя неделя").click()
        await expect(page.locator("#tasks-week section.day")).to_have_count(7)
        await fits(page, "tasks-week")
        await page.get_by_role("button", name="Мой день").click()
        await (
            page.locator("li.task", has_text="Позвонить")
            .get_by_role("button", name="✓ Готово")
            .click()
        )
        await page.get_by_label("Запланировать следующую задачу").check()
        await fits(page, "task-done")
        await page.get_by_role("button", name="Отмена").click()
        await go(page, "Клиенты")
        await expect(page.locator("#bulk-bar")).to_be_visible()
        await page.get_by_label("Все по фильтру (3)").check()
        await page.locator("#bulk-apply").click()
        await fits(page, "bulk-dialog")
