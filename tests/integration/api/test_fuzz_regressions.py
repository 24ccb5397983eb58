"""The 5xx that schemathesis found (issue 10 item 18), each now a 4xx naming the field
(or a 404) that changes nothing; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from crm_core.models import Client, Lead
from tests.support.api import Api, count

HUGE = 1576535066590407247429369856  # past BIGINT


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/leads", {"offset": str(HUGE)}, "offset"),
        ("/clients", {"offset": str(2**63)}, "offset"),
        ("/clients", {"owner_id": str(HUGE)}, "owner_id"),
        ("/clients/{cid}/timeline", {"offset": str(HUGE)}, "offset"),
        ("/clients/{cid}/timeline", {"created_from": "\x92þÖK"}, "created_from"),
        ("/leads/{lid}/timeline", {"created_to": "2026-13-45"}, "created_to"),
        ("/clients/{cid}/timeline", {"created_to": "9999-12-31"}, "created_to"),
        ("/leads", {"created_to": "9999-12-31"}, "created_to"),
        ("/tasks", {"client_id": str(HUGE)}, "client_id"),
    ],
)
async def test_bad_query_is_422_naming_the_field(
    api: Api, path: str, params: dict[str, str], field: str
) -> None:
    admin = api.as_("admin")
    got, client = await admin.post("/clients", {"name": "Ромашка"})
    assert got == 201, client
    got, lead = await admin.post("/leads", {"name": "Лид", "phones": ["+79165551234"]})
    assert got == 201, lead
    url = path.format(cid=client["id"], lid=lead["id"])
    got, err = await admin.get(url, **params)
    assert (got, err.get("field")) == (422, field), err


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/leads", {"name": "X", "phones": ["+79165551234"], "client_id": HUGE}, "client_id"),
        ("/clients", {"name": "X", "owner_id": HUGE}, "owner_id"),
        ("/clients", {"name": "X", "inn": "²²²²²²²²²²"}, "inn"),
        ("/clients", {"name": "X", "inn": "١٢٣٤٥٦٧٨٩٠"}, "inn"),
    ],
)
async def test_bad_body_is_422_and_changes_nothing(
    api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    admin = api.as_("admin")
    before = (await count(api.db, Client), await count(api.db, Lead), await count(api.db))
    got, err = await admin.post(path, body)
    assert (got, err.get("field")) == (422, field), err
    after = (await count(api.db, Client), await count(api.db, Lead), await count(api.db))
    assert after == before


@pytest.mark.parametrize("raw_id", ["%C2%B2", "%D9%A1", "9" * 19])
async def test_path_id_that_is_not_an_ascii_number_is_404(api: Api, raw_id: str) -> None:
    got, err = await api.as_("admin").get(f"/clients/{raw_id}")
    assert got == 404, err
