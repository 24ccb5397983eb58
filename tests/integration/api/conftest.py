from __future__ import annotations

from typing import Any

import pytest

from crm_core.db import Database
from tests.support.api import Api, make_app, seed_team


@pytest.fixture
async def api(db: Database, aiohttp_client: Any) -> Api:
    users, tokens = await seed_team(db)
    http = await aiohttp_client(make_app(db))
    return Api(http, db, users, tokens)
