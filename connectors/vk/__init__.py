"""VK connector: Callback API per community, replies via ``messages.send``.

The gateway mounts :func:`vk_callback` at ``POST /hooks/vk/{group_id}`` and registers
:class:`VkOutbound` with the outbox worker (store :func:`new_random_id` in the row).
"""

from connectors.vk.cli import dry_run
from connectors.vk.config import VkGroupSettings
from connectors.vk.connector import build_callback_event, vk_callback
from connectors.vk.normalize import (
    external_id_of,
    failed_callback_event,
    normalize_callback,
)
from connectors.vk.outbound import VkOutbound, new_random_id, random_id_for
from connectors.vk.session import VkSession, make_vk_session

__all__ = [
    "VkGroupSettings",
    "VkOutbound",
    "VkSession",
    "build_callback_event",
    "dry_run",
    "external_id_of",
    "failed_callback_event",
    "make_vk_session",
    "new_random_id",
    "normalize_callback",
    "random_id_for",
    "vk_callback",
]
