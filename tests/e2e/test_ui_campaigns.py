"""Campaigns in the browser (issue 14 items 4, 5): a campaign to a segment built in the
editor, the audience count, a preview in a sandboxed frame, a template error shown at
save next to its field, a test send, the start with a real aiosmtpd server receiving
every message, the progress until done, the results with the recipients list, the XLSX
download, and the analytics report of campaigns."""

from __future__ import annotations

import asyncio
import io
import os
import re
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("playwright", reason="pip install -e '.[test]' for the browser tests")
from openpyxl import load_workbook
from playwright.async_api import Page, expect
from sqlalchemy import update

from crm_core.models import CampaignRecipient
from gateway.api.keys import DB
from tests.e2e.conftest import UI
from tests.e2e.test_ui import api, shot, sign_in

CLIENTS = (
    ("ООО Альфа", "Москва", "alfa@client.example"),
    ("ООО Бета", "Москва", "beta@client.example"),
    ("ООО <b>Гамма</b>", "Москва", "gamma@client.example"),
    ("ИП Казанцев", "Казань", "kazan@client.example"),
)


async def _seed(ui: UI) -> int:
    for name, region, email in CLIENTS:
        status, c = await api(
            ui, "POST", "/clients", ui.admin, {"name": name, "region": region, "emails": [email]}
        )
        assert status == 201, c
    status, seg = await api(
        ui,
        "POST",
        "/segments",
        ui.admin,
        {"name": "Москва", "rules": {"all": [{"field": "region", "op": "eq", "value": "Москва"}]}},
    )
    assert status == 201, seg
    return int(seg["id"])


def _mails(ui: UI) -> list[Message]:
    return [message_from_bytes(m.data) for m in ui.smtp.messages]


def _html_of(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    return ""


async def test_campaign_to_a_segment_from_editor_to_results(page: Page, ui: UI) -> None:
    await _seed(ui)
    await sign_in(page, ui, ui.admin)
    await page.locator("#nav").get_by_role("link", name="Рассылки").click()
    await page.get_by_role("link", name="Новая рассылка").click()
    form = page.locator("#campaign-form")
    await form.get_by_label("Название").fill("Осенние цены")
    await form.get_by_label("Сегменты", exact=True).select_option(label="Москва (3)")
    await form.get_by_label("Тема").fill("{{ client.name }}: новые цены")
    # a template that does not render: shown at save, next to its field, nothing saved
    await form.get_by_label("HTML").fill("<p>Здравствуйте, {{ client.name }</p>")
    await form.get_by_label("Текст").fill("Здравствуйте, {{ client.name }}!\n{{ unsubscribe_url }}")
    await page.get_by_role("button", name="Сохранить").click()
    html_error = page.locator("#" + await form.get_by_label("HTML").get_attribute("id") + "-error")
    await expect(html_error).not_to_be_empty()
    await expect(form.get_by_label("HTML")).to_have_attribute("aria-invalid", "true")
    status, listed = await api(ui, "GET", "/campaigns", ui.admin)
    assert status == 200 and listed["total"] == 0
    await shot(page, "campaign-template-error")
    await form.get_by_label("HTML").fill(
        "<p>Здравствуйте, {{ client.name }}!</p><p>{{ owner.name }}</p>"
        '<p><a href="{{ unsubscribe_url }}">Отписаться</a></p>'
        "<script>parent.document.title='pwned'</script>"
    )
    await page.get_by_role("button", name="Сохранить").click()
    await expect(page).to_have_url(re.compile(r"#/campaigns/\d+$"))
    campaign_id = int(page.url.rsplit("/", 1)[1])
    # the audience: the segment's three clients, one address each
    audience = page.locator("#campaign-audience")
    await expect(audience).to_have_attribute("data-count", "3")
    # an exclusion changes the count at once
    await form.get_by_label("Исключить сегменты").select_option(label="Москва (3)")
    await expect(audience).to_have_text("Аудитория пуста: некому отправлять")
    await form.get_by_label("Исключить сегменты").select_option([])
    await expect(audience).to_have_attribute("data-count", "3")

    # the preview for a chosen client: escaped name, the HTML in a frame that runs nothing
    await page.get_by_label("Клиент для предпросмотра").fill("Гамма")
    await page.get_by_role("button", name="Найти").click()
    await page.locator("#campaign-preview-matches").get_by_role("button").first.click()
    await expect(page.locator("#campaign-preview-subject")).to_have_text(
        "Тема: ООО <b>Гамма</b>: новые цены"
    )
    frame = page.locator("#campaign-preview iframe")
    await expect(frame).to_have_attribute("sandbox", "")
    srcdoc = await frame.get_attribute("srcdoc")
    assert srcdoc and "ООО &lt;b&gt;Гамма&lt;/b&gt;" in srcdoc
    inner = page.frame_locator("#campaign-preview iframe")
    await expect(inner.locator("p").first).to_contain_text("ООО <b>Гамма</b>")
    assert await page.title() != "pwned"
    await shot(page, "campaign-preview")

    # a test to myself
    await page.get_by_role("button", name="Отправить тест себе").click()
    await expect(page.locator("#toasts")).to_contain_text("boss@example.ru")
    assert [m["To"] for m in _mails(ui)] == ["boss@example.ru"]

    # start: confirm, the progress, then done
    page.once("dialog", lambda d: d.accept())
    await page.get_by_role("button", name="Запустить").click()
    await expect(page.locator("#campaign-progress")).to_be_attached()
    await expect(page.locator(".view-head .badge")).to_have_text("завершена", timeout=30_000)
    await expect(page.locator("#campaign-progress-text")).to_have_text("Обработано 3 из 3")
    sent = _mails(ui)[1:]
    assert sorted(m["To"] for m in sent) == [
        "alfa@client.example",
        "beta@client.example",
        "gamma@client.example",
    ]
    assert all(m["List-Unsubscribe"] for m in sent)
    gamma = next(m for m in sent if m["To"] == "gamma@client.example")
    assert "ООО &lt;b&gt;Гамма&lt;/b&gt;" in _html_of(gamma)

    # the results: counts, the recipients list by status, the XLSX
    counts = page.locator("#campaign-counts")
    await expect(counts.locator('[data-status="sent"] dd')).to_have_text("3")
    rows = page.locator("#campaign-recipients tbody tr")
    await expect(rows).to_have_count(3)
    await page.get_by_label("Статус получателя").select_option("failed")
    await expect(rows).to_have_count(0)
    await page.get_by_label("Статус получателя").select_option("")
    await expect(rows).to_have_count(3)
    await shot(page, "campaign-results")
    async with page.expect_download() as dl:
        await page.get_by_role("button", name="Скачать XLSX").click()
    download = await dl.value
    path = await download.path()
    wb = load_workbook(io.BytesIO(await asyncio.to_thread(Path(path).read_bytes)))
    got = sorted(r[2] for r in wb.active.iter_rows(min_row=2, values_only=True))
    assert got == ["alfa@client.example", "beta@client.example", "gamma@client.example"]

    await expect(rows.filter(has_text="gamma@client.example")).to_contain_text("ООО <b>Гамма</b>")

    # a recipient whose transaction was in flight at a crash: highlighted, with the note
    async with ui.app[DB].transaction() as s:
        await s.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.email == "beta@client.example")
            .values(status="unknown", sent_at=None)
        )
    await page.reload()
    unknown = page.locator("#campaign-recipients tr.rcpt-unknown")
    await expect(unknown).to_have_count(1)
    await expect(unknown).to_contain_text("beta@client.example")
    await expect(page.locator("#campaign-results [role=note]")).to_contain_text("не известно")
    await expect(counts.locator('[data-status="unknown"] dd')).to_have_text("1")
    await expect(counts.locator('[data-status="sent"] dd')).to_have_text("2")
    await page.get_by_label("Статус получателя").select_option("unknown")
    await expect(rows).to_have_count(1)
    await shot(page, "campaign-unknown")

    # the list of campaigns shows it with its counts
    await page.get_by_role("link", name="← Все рассылки").click()
    row = page.locator(f'#campaigns-table tr[data-campaign-id="{campaign_id}"]')
    await expect(row).to_contain_text("завершена")
    await expect(row.locator("td").nth(3)).to_have_text("2")

    # the analytics page has the campaigns card
    await page.locator("#nav").get_by_role("link", name="Аналитика").click()
    card = page.locator('[data-report="an-campaigns"]')
    await expect(card.locator(f'tr[data-campaign-id="{campaign_id}"]')).to_contain_text(
        "Осенние цены"
    )


async def test_managers_do_not_see_campaigns(page: Page, ui: UI) -> None:
    await sign_in(page, ui, ui.manager)
    await expect(page.locator("#nav").get_by_role("link", name="Рассылки")).to_be_hidden()


async def test_scheduled_campaign_paused_resumed_cancelled(page: Page, ui: UI) -> None:
    seg = await _seed(ui)
    status, c = await api(
        ui,
        "POST",
        "/campaigns",
        ui.admin,
        {"name": "Новый год", "segment_ids": [seg], "subject": "С праздником", "html": "<p>Ура</p>",
         "text": "Ура"},
    )  # fmt: skip
    assert status == 201, c
    await sign_in(page, ui, ui.admin)
    await page.goto(ui.at(f"/ui/#/campaigns/{c['id']}"))
    await expect(page.locator("#campaign-audience")).to_have_attribute("data-count", "3")
    # a time: the button schedules instead of sending now
    await page.get_by_label("Отправить в").fill("2030-12-31T10:00")
    start = page.locator("#campaign-start")
    await expect(start).to_have_text("Запланировать")
    messages: list[str] = []

    async def accept(dialog: Any) -> None:
        messages.append(dialog.message)
        await dialog.accept()

    page.on("dialog", accept)
    await start.click()
    badge = page.locator(".view-head .badge")
    await expect(badge).to_have_text("запланирована")
    assert messages == ["Отправить рассылку «Новый год»? Получателей: 3."]
    await expect(page.locator("#campaign-status")).to_contain_text(
        "Запланирована на 31.12.2030, 10:00"
    )
    await page.get_by_role("button", name="Пауза").click()
    await expect(badge).to_have_text("на паузе")
    await page.get_by_role("button", name="Продолжить").click()
    await expect(badge).to_have_text("запланирована")
    await page.get_by_role("button", name="Отменить рассылку").click()
    await expect(badge).to_have_text("отменена")
    await expect(page.locator("#campaign-status button")).to_have_count(0)
    status, got = await api(ui, "GET", f"/campaigns/{c['id']}", ui.admin)
    assert got["status"] == "cancelled" and got["send_at"].startswith("2030-12-31T07:00")
    assert ui.smtp.messages == []
    # the page speaks English too
    await page.get_by_role("button", name="English").click()
    await expect(badge).to_have_text("cancelled")
    await expect(page.locator("#nav").get_by_role("link", name="Campaigns")).to_be_visible()
    await expect(page.get_by_role("heading", name="Results")).to_be_visible()
