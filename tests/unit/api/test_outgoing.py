"""Uploaded files of the outgoing endpoints (emails, messages): base64 in, bytes out, or a
422 naming the field."""

from __future__ import annotations

import base64

import pytest

from crm_core.services.common import Invalid
from gateway.api.outgoing import decode_file, safe_name


def test_decodes() -> None:
    assert decode_file(base64.b64encode(b"%PDF").decode(), "files.0", 10) == b"%PDF"


@pytest.mark.parametrize(
    ("b64", "message"),
    [
        ("not base64!", "not valid base64"),
        ("", "the file is empty"),
        (base64.b64encode(b"x" * 11).decode(), "larger than"),
        ("A" * 100, "larger than"),  # refused before decoding
    ],
)
def test_refuses(b64: str, message: str) -> None:
    with pytest.raises(Invalid) as err:
        decode_file(b64, "files.0.content_base64", 10)
    assert message in err.value.message and err.value.field == "files.0.content_base64"


def test_safe_name_is_never_a_path() -> None:
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("C:\\\\Users\\\\x\\\\Прайс.pdf") == "Прайс.pdf"
    assert safe_name("...") == "file"
