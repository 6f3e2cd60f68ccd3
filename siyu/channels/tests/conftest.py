"""Fixtures of the channels tests: the fixed world's brand A connected to a small emulator corp over HTTP, whose
members are the world's guides (guide1..guide3 and the brand IP), so live codes reach real WeCom members."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache

from siyu.api.tests.conftest import tokens  # noqa: F401 - API tokens per persona, for test_console
from siyu.emulator.seed import SeedSpec
from siyu.testing import World
from siyu.wecom.models import WeComConnection
from siyu.wecom.tests.emulated import WORLD_MEMBERS, Brand, add_members, connect_brand, emulator_serving

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


class Emulated(Brand):
    """Brand A on the running emulator, with what the channels tests read of WeCom."""

    def way(self, config_id: str) -> Any:
        with self.server.emulator.lock:
            return self.corp.contact_ways.get(config_id)

    def welcome_messages(self) -> list[dict[str, Any]]:
        return self.admin("welcome_messages")["welcome_messages"]


@pytest.fixture
def emulated(world: World) -> Iterator[Emulated]:
    cache.clear()  # tokens of an earlier emulator on a reused port must not answer for this one
    with emulator_serving(SPEC) as server:
        with server.emulator.lock:
            add_members(next(iter(server.emulator.corps.values())), WORLD_MEMBERS["a"])
        brand = connect_brand(server, tenant=world.tenant_a)
        yield Emulated(tenant=brand.tenant, connection=brand.connection, server=server)
    cache.clear()


@pytest.fixture
def connected(emulated: Emulated) -> WeComConnection:
    """Brand A's WeCom connection pointing at the emulator corp."""
    return emulated.connection
