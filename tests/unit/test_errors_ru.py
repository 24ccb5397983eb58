"""Russian wording of API errors: the values carried by a message are kept; a message
without a wording gets none (the English one is shown)."""

from __future__ import annotations

import json

import pytest

from gateway.errors import json_error
from gateway.errors_ru import russian


@pytest.mark.parametrize(
    ("message", "ru"),
    [
        ("deal 5 not found", "Сделка 5 не найдена"),
        ("email 7 not found", "Письмо 7 не найдено"),
        ("client 3 not found", "Клиент 3 не найден"),
        ("lead 3 is already converted", "Лид 3 уже конвертирован"),
        (
            "you have no phone extension: ask an admin to set one",
            "У вас нет внутреннего номера: попросите администратора его указать",
        ),
        ("phones: phone '12' has too few digits", "phones: в номере «12» слишком мало цифр"),
        ("name: Field required", "name: обязательное поле"),
        (
            "stage: Input should be 'new', 'won' or 'lost'",
            "stage: допустимые значения: 'new', 'won' или 'lost'",
        ),
        (
            "body: Value error, give one of client_id, lead_id, deal_id",
            "body: укажите одно из: client_id, lead_id, deal_id",
        ),
        (
            "only admins and supervisors may do this",
            "Это доступно только ролям: администратор, руководитель",
        ),
        (
            "Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 . _ : -",
            "Idempotency-Key: от 1 до 128 символов из A-Z a-z 0-9 . _ : -",
        ),
        ("the JSON body is nested deeper than 32 levels", "Вложенность JSON глубже 32 уровней"),
        (
            "the body is larger than 28 MiB: files up to 20 MiB in all",
            "Тело запроса больше 28 МБ: файлы — не больше 20 МБ в сумме",
        ),
        ("files larger than 20 MiB in all", "Файлы больше 20 МБ в сумме"),
        ("a@b.ru is not an email of client 5", "a@b.ru — не адрес клиента 5"),
        (
            "a@b.ru unsubscribed itself: say in the note why consent is granted again",
            "Адрес a@b.ru отписался сам: напишите в заметке, почему согласие дано снова",
        ),
        (
            "a@b.ru bounced (its mail server says it does not exist): say in the note why "
            "consent is granted again",
            "Почтовый сервер сообщил, что адреса a@b.ru нет: напишите в заметке, почему "
            "согласие дано снова",
        ),
    ],
)
def test_wording(message: str, ru: str) -> None:
    assert russian(message) == ru


def test_unknown_message_has_no_wording() -> None:
    assert russian("the flux capacitor is out of sync") is None
    assert russian("name: the flux capacitor is out of sync") is None


def test_the_json_error_carries_both() -> None:
    body = json.loads(json_error(404, "deal 5 not found", "id").text or "")
    assert body == {"error": "deal 5 not found", "error_ru": "Сделка 5 не найдена", "field": "id"}
    assert json.loads(json_error(400, "odd").text or "") == {"error": "odd"}
