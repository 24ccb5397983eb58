"""The operator UI on a phone (390x844): the navigation collapses behind a menu button,
tables scroll inside their own box, no page scrolls sideways, every control is reachable."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("playwright", reason="pip install -e '.[test]' for the browser tests")
from playwright.async_api import Page, expect

from crm_core.demo import load_demo
from gateway.api.keys import DB
from tests.e2e.conftest import UI, browser_page
from tests.e2e.test_ui import api, enter_with

WIDTH, HEIGHT = 390, 844

# Controls outside a box that scrolls on its own (a table, the deal board) must be on
# screen; returns the ones that stick out past the right edge.
OFFSCREEN = """() => {
  const scrollers = ".table-wrap, .board";
  const out = [];
  for (const el of document.querySelectorAll(
      ":is(#shell, dialog[open]) :is(a, button, input, select, textarea)")) {
    if (el.closest(scrollers) || el.closest("[hidden]")) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left < 0 || r.right > window.innerWidth + 0.5)
      out.push(`${el.tagName} ${el.textContent.trim() || el.name || el.id}: ${r.left}-${r.right}`);
  }
  return out;
}"""


@pytest.fixture
async def phone(chromium: Path, ui: UI) -> AsyncIterator[Any]:
    """A page the size of a phone (touch, 390 CSS pixels wide)."""
    async with browser_page(
        chromium,
        viewport={"width": WIDTH, "height": HEIGHT},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    ) as pg:
        yield pg


async def fits(page: Page, name: str) -> None:
    """No page-wide horizontal scrolling, every control on screen; a screenshot to look at."""
    await page.wait_for_timeout(150)  # layout settles after the render
    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
    )
    assert widths[0] <= widths[2] and widths[1] <= widths[2], f"{name}: {widths}"
    assert await page.evaluate(OFFSCREEN) == [], name
    await page.screenshot(path=f"/tmp/ui-m-{name}.png", animations="disabled")


async def go(page: Page, link: str) -> None:
    """Open the collapsed menu and follow one of its links; the menu closes again."""
    menu = page.get_by_role("button", name="Меню")
    await expect(menu).to_have_attribute("aria-expanded", "false")
    await menu.click()
    await expect(menu).to_have_attribute("aria-expanded", "true")
    await page.locator("#nav").get_by_role("link", name=link).click()
    await expect(menu).to_have_attribute("aria-expanded", "false")
    await expect(page.locator("#nav")).to_be_hidden()


async def test_every_main_page_fits_a_phone(phone: Page, ui: UI) -> None:
    page = phone
    demo = await load_demo(ui.app[DB])  # a realistic amount of data in every table
    tokens = {u["email"].split("@")[0]: u["token"] for u in demo["users"]}
    head = tokens["head"]
    _, leads = await api(ui, "GET", "/leads?limit=1", head)
    _, clients = await api(ui, "GET", "/clients?limit=1", head)

    await enter_with(page, ui, head)
    # The header is one short line: the links wait behind the menu button.
    await expect(page.locator("#nav")).to_be_hidden()
    header = await page.locator(".topbar").bounding_box()
    assert header is not None and header["height"] < 80, header
    await expect(page.locator("#leads-table tbody tr").first).to_be_visible()
    await fits(page, "leads")
    # The table scrolls inside its own box.
    wrap = page.locator(".table-wrap").first
    inner = await wrap.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert inner[0] > inner[1], inner

    menu = page.get_by_role("button", name="Меню")
    await menu.click()
    await expect(page.locator("#nav")).to_be_visible()
    await fits(page, "menu")
    await page.keyboard.press("Escape")  # Esc closes the menu
    await expect(menu).to_have_attribute("aria-expanded", "false")

    await go(page, "Клиенты")
    await expect(page.locator("#clients-table tbody tr").first).to_be_visible()
    await fits(page, "clients")
    await page.get_by_role("button", name="Новый клиент").click()  # the form fits too
    await expect(page.locator("dialog#modal").get_by_label("Название или имя")).to_be_visible()
    await fits(page, "client-new")
    await page.locator("dialog#modal").get_by_role("button", name="Отмена").click()

    await page.goto(ui.at(f"/ui/#/clients/{clients['items'][0]['id']}"))
    await expect(page.locator("#client-name")).to_be_visible()
    await fits(page, "client")

    await page.goto(ui.at(f"/ui/#/leads/{leads['items'][0]['id']}"))
    await expect(page.locator("main h1")).to_be_visible()
    await fits(page, "lead")

    await go(page, "Сделки")
    await expect(page.locator("#deals-board .column").first).to_be_visible()
    await fits(page, "deals")

    await go(page, "Задачи")
    await expect(page.locator("main h1")).to_have_text("Задачи")
    await fits(page, "tasks")

    await go(page, "Аналитика")
    await expect(page.locator("#an-funnel-table")).to_be_visible()
    await expect(page.locator("#an-managers-table tbody tr").first).to_be_visible()
    await fits(page, "analytics")

    # The dial box and sign-out stay reachable from the menu.
    await menu.click()
    await expect(page.get_by_role("button", name="Позвонить").first).to_be_visible()
    await expect(page.get_by_role("button", name="Выйти")).to_be_visible()
    await fits(page, "menu-open")
