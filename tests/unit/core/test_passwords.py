"""Password rules and hashing (crm_core/services/auth.py), without a database."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from argon2.low_level import Type

from crm_core.services.auth import (
    ARGON2,
    DUMMY_HASH,
    check_password_policy,
    device_of,
    hash_password,
    is_common_password,
    password_matches,
    verify_password,
)
from crm_core.services.common import Invalid


def test_the_hash_is_argon2id_with_the_stated_parameters() -> None:
    h = hash_password("Volga-Samara-Bridge-77")
    assert h.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert ARGON2 == {
        "time_cost": 3,
        "memory_cost": 65536,
        "parallelism": 4,
        "hash_len": 32,
        "salt_len": 16,
    }
    assert verify_password(h, "Volga-Samara-Bridge-77")
    assert not verify_password(h, "Volga-Samara-Bridge-78")
    assert not verify_password(None, "anything-at-all")  # the dummy: never a match
    assert not verify_password("not a hash", "anything-at-all")
    # the dummy hash costs what a real one does
    params = PasswordHasher(**ARGON2, type=Type.ID)
    assert not params.check_needs_rehash(DUMMY_HASH)


def test_a_hash_with_other_parameters_is_made_again() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("Irtysh-Omsk-5x")

    class U:
        password_hash = weak

    ok, new = password_matches(U(), "Irtysh-Omsk-5x")  # type: ignore[arg-type]
    assert ok and new is not None and new.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    ok, new = password_matches(U(), "wrong-password")  # type: ignore[arg-type]
    assert not ok and new is None


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short", "at least 10"),
        ("aaaaaaaaaaaa", "too simple"),
        ("qwertyuiop", "most common"),
        ("1q2w3e4r5t", "most common"),
        ("Password123!", "most common"),
        ("manchester2024", "most common"),
        ("anna.petrova@example.ru", "your email"),
        ("x" * 1025, "at most"),
    ],
)
def test_weak_passwords_are_refused_naming_the_field(password: str, why: str) -> None:
    with pytest.raises(Invalid) as err:
        check_password_policy(password, email="anna.petrova@example.ru")
    assert err.value.field == "password" and why in err.value.message


def test_good_passwords_pass() -> None:
    for good in ("Volga-Samara-Bridge-77", "тихий дом у реки", "correct horse battery"):
        assert check_password_policy(good, email="anna@example.ru") == good
    assert not is_common_password("Volga-Samara-Bridge-77")


def test_device_names() -> None:
    chrome = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36"
    )
    assert device_of(chrome) == "Chrome 120, Windows"
    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
    )
    assert device_of(iphone) == "Safari 17, iPhone"
    yandex = chrome.replace("Safari/537.36", "YaBrowser/24.1.0.0 Safari/537.36")
    assert device_of(yandex).startswith("Yandex Browser 24")
    assert device_of("") == "unknown device"
    assert device_of("curl/8.5") == "curl/8.5"
