"""Pure parts of reminders and SLA: local times across DST, warning lead, reason split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_core.reminders import TASK_TITLES, SlaConfig, local_to_utc, warning_lead
from crm_core.services.leads import split_reason


@pytest.mark.parametrize(
    ("local", "tz", "utc"),
    [
        # Moscow has no DST: always UTC+3.
        (datetime(2025, 7, 1, 10, 0), "Europe/Moscow", datetime(2025, 7, 1, 7, 0, tzinfo=UTC)),
        (
            datetime(2025, 1, 1, 0, 30),
            "Asia/Vladivostok",
            datetime(2024, 12, 31, 14, 30, tzinfo=UTC),
        ),
        # Berlin: winter UTC+1, summer UTC+2.
        (datetime(2025, 3, 29, 10, 0), "Europe/Berlin", datetime(2025, 3, 29, 9, 0, tzinfo=UTC)),
        (datetime(2025, 3, 30, 10, 0), "Europe/Berlin", datetime(2025, 3, 30, 8, 0, tzinfo=UTC)),
        # 02:30 does not exist on 2025-03-30 in Berlin: moved past the gap (03:30 CEST).
        (datetime(2025, 3, 30, 2, 30), "Europe/Berlin", datetime(2025, 3, 30, 1, 30, tzinfo=UTC)),
        # 02:30 happens twice on 2025-10-26: the first one (CEST).
        (datetime(2025, 10, 26, 2, 30), "Europe/Berlin", datetime(2025, 10, 26, 0, 30, tzinfo=UTC)),
        # An unknown zone falls back to Moscow.
        (datetime(2025, 7, 1, 10, 0), "Mars/Olympus", datetime(2025, 7, 1, 7, 0, tzinfo=UTC)),
        (
            datetime(2025, 7, 1, 10, 0, tzinfo=UTC),
            "Asia/Tokyo",
            datetime(2025, 7, 1, 10, 0, tzinfo=UTC),
        ),
    ],
)
def test_local_to_utc(local: datetime, tz: str, utc: datetime) -> None:
    assert local_to_utc(local, tz) == utc


T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("length", "cfg", "lead"),
    [
        (timedelta(minutes=15), SlaConfig(5, 0.2), timedelta(minutes=3)),
        (timedelta(hours=24), SlaConfig(5, 0.2), timedelta(minutes=5)),
        (timedelta(minutes=15), SlaConfig(5, 0), timedelta(minutes=5)),
        (timedelta(hours=2), SlaConfig(60, 0.25), timedelta(minutes=30)),
    ],
)
def test_warning_lead(length: timedelta, cfg: SlaConfig, lead: timedelta) -> None:
    assert warning_lead(T0, T0 + length, cfg) == lead


def test_warning_lead_without_a_start_uses_the_minutes() -> None:
    assert warning_lead(None, T0, SlaConfig(7, 0.2)) == timedelta(minutes=7)


@pytest.mark.parametrize(
    ("stored", "en", "ru"),
    [
        (
            "rule 'vip' matched; round robin among team 'vip'"
            " / правило «vip»; по кругу: команда «vip»",
            "rule 'vip' matched; round robin among team 'vip'",
            "правило «vip»; по кругу: команда «vip»",
        ),
        (
            "team 'a / b' was busy / команда «a / b» занята",
            "team 'a / b' was busy",
            "команда «a / b» занята",
        ),
        ("round robin among active managers", "round robin among active managers", None),
        (None, None, None),
    ],
)
def test_split_reason(stored: str | None, en: str | None, ru: str | None) -> None:
    assert split_reason(stored) == (en, ru)


def test_every_task_kind_has_both_titles() -> None:
    from crm_core.services.tasks import TASK_KINDS

    for kind in TASK_KINDS:
        ru, en = TASK_TITLES[kind]
        assert ru and en and ru != en
    assert TASK_TITLES["offer_discount"] == ("Предложить скидку", "Offer a discount")
