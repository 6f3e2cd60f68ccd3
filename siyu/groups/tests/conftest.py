"""Fixtures of the groups tests: the fixed world (personas, guides G1..G3 and the brand IP), and a brand connected
to a seeded emulator corp served over HTTP (shared with the WeCom connector's tests)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from siyu.api.tests.conftest import tokens  # noqa: F401 - API tokens per persona, for test_api
from siyu.core.scopes import Actor
from siyu.groups.models import CustomerGroup, GroupCode, GroupCodeSlot
from siyu.groups.services import GroupInput, GroupMemberInput, group_upsert
from siyu.testing import World
from siyu.wecom.tests.conftest import brand, emulator  # noqa: F401 - a fresh brand on the seeded emulator corp

# -- group codes of the fixed world (rows as the services leave them; no WeCom behind them) ------------------

T0 = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)


def make_group(world: World, chat_id: str, owner: str, externals: int = 3) -> CustomerGroup:
    members = [GroupMemberInput(userid=world.guides[owner].wecom_userid, member_type=1, join_time=T0)]
    members += [GroupMemberInput(userid=f"wm{chat_id}{i}", member_type=2, join_time=T0) for i in range(externals)]
    tenant_id = world.guides[owner].tenant_id
    data = GroupInput(chat_id=chat_id, name=f"群{chat_id}", owner_guide_id=world.guides[owner].id, created_at=T0,
                      members=members)  # fmt: skip
    return group_upsert(actor=Actor.system(tenant_id), data=data).group


def make_code(world: World, state: str, group: CustomerGroup, store: str | None) -> GroupCode:
    now = timezone.now()
    code = GroupCode.objects.create(
        tenant_id=group.tenant_id, name=f"活码{state}", state=state, store=world.stores[store] if store else None,
        public_token=f"tok-{state}", created_at=now, updated_at=now, config_id=f"cfg-{state}",
        qr_code=f"https://qr.example/{state}.png", way_chat_ids=[group.chat_id],
    )  # fmt: skip
    GroupCodeSlot.objects.create(tenant_id=group.tenant_id, code=code, group=group, added_at=now - dt.timedelta(days=1))
    return code


# Which of the `codes` fixture's codes each persona sees: those of its stores (a guide: its own store's), HQ the
# brand-wide one too.
CODES_VISIBLE = {
    "hq": {"S1", "S2", "brand"},
    "region1": {"S1", "S2"},
    "store1": {"S1"},
    "guide1": {"S1"},
    "franchisee1": {"S1"},
    "outsider": {"B"},
}


@pytest.fixture
def codes(world: World) -> dict[str, GroupCode]:
    g1 = make_group(world, "wrS1", "G1")
    g2 = make_group(world, "wrS2", "G2")
    gip = make_group(world, "wrIP", "IP")
    gb = make_group(world, "wrB", "GB")
    return {
        "S1": make_code(world, "s1", g1, "S1"),
        "S2": make_code(world, "s2", g2, "S2"),
        "brand": make_code(world, "brand", gip, None),
        "B": make_code(world, "b", gb, "B1"),
    }
