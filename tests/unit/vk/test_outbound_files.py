"""VK replies with files: what is refused before anything is sent (no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.vk.config import VkGroupSettings
from connectors.vk.outbound import MAX_FILES, VkOutbound
from crm_core.ports import OutboundCommand, OutboundStatus

GROUP = VkGroupSettings(group_id=1, access_token="t", confirmation_code="c", secret="s")


class NoNetwork:
    def __call__(self, settings: VkGroupSettings) -> Any:
        raise AssertionError("nothing may be sent")


def cmd(**payload: Any) -> OutboundCommand:
    base = {"group_id": 1, "peer_id": 5, "text": "hi", "random_id": 7}
    return OutboundCommand(1, "vk", "send_message", "k-1", {**base, **payload})


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["/nonexistent/price.pdf"], "file to send is missing: price.pdf"),
        ("price.pdf", "files must be a list of paths"),
        ([1], "files must be a list of paths"),
    ],
)
async def test_bad_files_fail_without_sending(files: Any, message: str) -> None:
    out = VkOutbound({1: GROUP}, session_factory=NoNetwork())
    res = await out.execute(cmd(files=files))
    assert res.status is OutboundStatus.FAILED and res.detail == message


async def test_too_many_files(tmp_path: Path) -> None:
    paths = []
    for i in range(MAX_FILES + 1):
        p = tmp_path / f"f{i}.txt"
        p.write_text("x")
        paths.append(str(p))
    out = VkOutbound({1: GROUP}, session_factory=NoNetwork())
    res = await out.execute(cmd(files=paths))
    assert res.status is OutboundStatus.FAILED and f"at most {MAX_FILES}" in (res.detail or "")
