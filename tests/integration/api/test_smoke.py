from __future__ import annotations

from tests.support.api import Api


async def test_me_and_client_roundtrip(api: Api) -> None:
    a1 = api.as_("a1")
    status, me = await a1.get("/me")
    assert status == 200 and me["email"] == "a1@example.ru" and me["role"] == "manager"
    status, client = await a1.post(
        "/clients", {"name": "ООО Ромашка", "inn": "7707083893", "phones": ["8 916 555-12-34"]}
    )
    assert status == 201, client
    assert client["phones"] == ["+79165551234"]
    assert client["owner_id"] == api.users["a1"].id
    status, page = await a1.get("/clients", phone="+7 916 555 12 34")
    assert status == 200 and [c["id"] for c in page["items"]] == [client["id"]]
