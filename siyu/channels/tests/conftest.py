"""Fixtures of the channels tests: the fixed world's brand A connected to a small emulator corp over HTTP, whose
members are the world's guides (guide1..guide3 and the brand IP), so live codes reach real WeCom members."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.core.cache import cache

from siyu.core.scopes import Actor
from siyu.emulator.model import Corp, Member
from siyu.emulator.seed import SeedSpec
from siyu.emulator.server import RunningServer
from siyu.testing import World
from siyu.wecom.models import WeComConnection
from siyu.wecom.services import connection_create
from siyu.wecom.tests.emulated import emulator_serving
from siyu.wecom.tests.support import AES_KEY, TOKEN

SPEC = SeedSpec(
    seed=11,
    corp_id="wwchannels000001",
    anchor=1_700_000_000,
    regions=1,
    stores_per_region=1,
    guides_per_store=1,
    customers=3,
    group_chats=0,
)
WORLD_MEMBERS = {"guide1": "导购1", "guide2": "导购2", "guide3": "导购3", "brand_ip": "好物体验官"}


class Emulated:
    """The running emulator, its corp and its admin surface."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server

    @property
    def corp(self) -> Corp:
        return next(iter(self.server.emulator.corps.values()))

    def admin(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        method = "POST" if body is not None else "GET"
        response = httpx.request(method, f"{self.server.url}/emulator/{path}", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def way(self, config_id: str) -> Any:
        with self.server.emulator.lock:
            return self.corp.contact_ways.get(config_id)

    def welcome_messages(self) -> list[dict[str, Any]]:
        return self.admin("welcome_messages")["welcome_messages"]


@pytest.fixture
def emulated() -> Iterator[Emulated]:
    cache.clear()  # tokens of an earlier emulator on a reused port must not answer for this one
    with emulator_serving(SPEC) as server:
        emulated = Emulated(server)
        with server.emulator.lock:
            corp = emulated.corp
            root = min(corp.departments)
            for userid, name in WORLD_MEMBERS.items():
                corp.members[userid] = Member(userid=userid, name=name, department=[root], main_department=root)
        yield emulated
    cache.clear()


@pytest.fixture
def connected(world: World, emulated: Emulated) -> WeComConnection:
    """Brand A's WeCom connection pointing at the emulator corp."""
    corp = emulated.corp
    return connection_create(
        actor=Actor.system(world.tenant_a.id),
        corp_id=corp.corp_id,
        agent_id=str(corp.apps[0].agentid),
        contact_secret=corp.apps[0].secret,
        callback_token=TOKEN,
        encoding_aes_key=AES_KEY,
        api_base_url=f"{emulated.server.url}/cgi-bin/",
    )
