"""Fixtures of the keyword-tagging tests: the fixed world's two brands on an emulator of their own, where their
customers can chat with their guides, and a tag 敏感肌 in brand A."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from django.core.cache import cache

from siyu.api.tests.conftest import tokens  # noqa: F401 - the API tests' per-persona tokens fixture
from siyu.emulator.config import EmulatorConfig
from siyu.emulator.core import Emulator
from siyu.emulator.seed import SeedSpec, build_corp
from siyu.emulator.server import RunningServer, serve_in_thread
from siyu.tags.models import Tag
from siyu.tags.services import tag_create
from siyu.testing import World
from siyu.wecom.models import WeComConnection
from siyu.wecom.tests.emulated import ANCHOR, WORLD_MEMBERS, add_members, connect_brand

CHAT_SPECS = {
    brand: SeedSpec(seed=seed, corp_id=f"wwchatcorp{brand}00001", anchor=ANCHOR, regions=1, stores_per_region=1,
                    guides_per_store=1, customers=1, group_chats=0)
    for brand, seed in (("a", 31), ("b", 32))
}  # fmt: skip
# Who is friends with whom in each corp: the world's follow relations (siyu.testing), by WeCom ids.
CONTACTS = {
    "a": [("guide1", "wmc1"), ("guide2", "wmc2"), ("guide3", "wmc3"), ("brand_ip", "wmc4")],
    "b": [("guide1", "wmb1")],
}


@dataclass
class Chats:
    """Both brands' corps on one emulator: customers and guides say things, siyu reads the archive."""

    world: World
    server: RunningServer
    connections: dict[str, WeComConnection]

    def admin(self, path: str, body: dict[str, Any] | None = None, *, brand: str = "a") -> dict[str, Any]:
        payload = {"corp_id": CHAT_SPECS[brand].resolved_corp_id(), **(body or {})}
        if body is None:
            response = httpx.get(f"{self.server.url}/emulator/{path}", params=payload, timeout=30)
        else:
            response = httpx.post(f"{self.server.url}/emulator/{path}", json=payload, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def say(self, sender: str, content: str, *, to: str = "", chat_id: str = "", brand: str = "a") -> int:
        """`sender` says `content` one-to-one to `to`, or in the group `chat_id`; returns the message's seq."""
        body = {"from": sender, "to": to, "chat_id": chat_id, "content": content}
        return int(self.admin("simulate/message", body, brand=brand)["seq"])

    def group(self, owner: str, members: list[str], *, brand: str = "a") -> str:
        body = {"owner": owner, "name": "敏感肌护理群", "members": members}
        return str(self.admin("simulate/chat/create", body, brand=brand)["chat_id"])


@pytest.fixture
def chats(world: World) -> Iterator[Chats]:
    corps = {brand: build_corp(spec) for brand, spec in CHAT_SPECS.items()}
    for brand, corp in corps.items():
        add_members(corp, WORLD_MEMBERS[brand])
    server = serve_in_thread(Emulator(EmulatorConfig(), corps.values()))
    cache.clear()
    try:
        connections = {
            brand: connect_brand(server, tenant=tenant, corp_id=corps[brand].corp_id).connection
            for brand, tenant in (("a", world.tenant_a), ("b", world.tenant_b))
        }
        chats = Chats(world=world, server=server, connections=connections)
        for brand, pairs in CONTACTS.items():
            for userid, external_userid in pairs:
                body = {"userid": userid, "external_userid": external_userid, "welcome_code": False}
                chats.admin("simulate/add_contact", body, brand=brand)
        yield chats
    finally:
        server.stop()
        cache.clear()


@pytest.fixture
def sensitive(world: World) -> Tag:
    """Brand A's tag 敏感肌, in its group 兴趣."""
    return tag_create(actor=world.actor("hq"), group_id=world.tags["护肤"].group_id, name="敏感肌")
