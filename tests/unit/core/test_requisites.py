"""INN, KPP, OGRN and website checks (pure), and the Russian wording of the profile's
errors."""

from __future__ import annotations

import pytest

from crm_core.services.common import Invalid
from crm_core.services.requisites import (
    normalize_website,
    validate_inn,
    validate_kpp,
    validate_ogrn,
)
from gateway.errors_ru import russian


@pytest.mark.parametrize("ogrn", ["1027700132195", "1027739609391", "304500116000157"])
def test_real_ogrns_pass(ogrn: str) -> None:
    assert validate_ogrn(f" {ogrn} ") == ogrn


@pytest.mark.parametrize(
    "ogrn", ["1027700132196", "304500116000158", "102770013219", "10277001321950", "1O27700132195"]
)
def test_bad_ogrns_name_the_field(ogrn: str) -> None:
    with pytest.raises(Invalid) as err:
        validate_ogrn(ogrn)
    assert err.value.field == "ogrn"


@pytest.mark.parametrize(("raw", "kpp"), [("773601001", "773601001"), ("7736ab001", "7736AB001")])
def test_kpps(raw: str, kpp: str) -> None:
    assert validate_kpp(raw) == kpp


@pytest.mark.parametrize(
    "kpp",
    ["77360100", "7736010011", "AB3601001", "773601A01", "７７３６０１００１", "７７３６01001"],
)
def test_bad_kpps(kpp: str) -> None:
    with pytest.raises(Invalid) as err:
        validate_kpp(kpp)
    assert err.value.field == "kpp"


def test_inn_check_digits() -> None:
    assert validate_inn("7707083893") == "7707083893"
    assert validate_inn("500100732259") == "500100732259"
    for bad in ("7707083894", "500100732258", "77070838930", "７７０７０８３８９３"):
        with pytest.raises(Invalid):
            validate_inn(bad)


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("romashka.ru", "https://romashka.ru"),
        ("http://romashka.ru/about", "http://romashka.ru/about"),
        ("  https://пример.рф ", "https://пример.рф"),
    ],
)
def test_websites(raw: str, url: str) -> None:
    assert normalize_website(raw) == url


@pytest.mark.parametrize(
    "raw", ["not a site", "ftp://romashka.ru", "localhost", "https://", "javascript:alert(1)"]
)
def test_bad_websites(raw: str) -> None:
    with pytest.raises(Invalid) as err:
        normalize_website(raw)
    assert err.value.field == "website"


@pytest.mark.parametrize(
    ("message", "ru"),
    [
        ("ogrn 1027700132196 fails its check digit", "ОГРН 1027700132196 не проходит проверку"),
        ("custom.size must be one of S, M", "custom.size: одно из значений: S, M"),
        ("custom field 5 not found", "Дополнительное поле 5 не найдено"),
        ("contact 3 not found", "Контактное лицо 3 не найдено"),
        ("status vip is used by 2 clients: deactivate it instead of deleting", "отключить"),
        ("parent_id would make a cycle of companies", "цикл"),
        ("cf.size: no such custom field", "cf.size: нет такого дополнительного поля"),
        ("website is not a web address", "Сайт — не веб-адрес"),
    ],
)
def test_profile_errors_have_a_russian_wording(message: str, ru: str) -> None:
    text = russian(message)
    assert text is not None and ru in text, text
