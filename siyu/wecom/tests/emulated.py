"""A brand connected to a seeded emulator corp served over real HTTP, and the ground truth to compare with.

Used by the sync tests and the group tests: the emulator runs in a thread (its own state, no database), siyu talks
to it through the real WeComClient. `expected_state` reads the emulator's corp (what WeCom holds) and
`db_state` reads siyu's tables; both are keyed by WeCom ids, so a run is right when they are equal.
"""

from __future__ import annotations

import atexit
import datetime as dt
import functools
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from siyu.analytics.models import Event
from siyu.core import pii
from siyu.core import services as core_services
from siyu.core.models import Guide, Tenant
from siyu.core.scopes import Actor
from siyu.customers.models import FollowRelation, Identity
from siyu.emulator.config import EmulatorConfig
from siyu.emulator.core import Emulator
from siyu.emulator.model import Corp, Member
from siyu.emulator.seed import SeedSpec, build_corp
from siyu.emulator.server import RunningServer, serve_in_thread
from siyu.groups.models import CustomerGroup, GroupMember
from siyu.tags.models import CustomerTag, TagGroup
from siyu.testing import World
from siyu.wecom.client import RetryPolicy, WeComClient
from siyu.wecom.models import WeComConnection
from siyu.wecom.selectors import connection_secrets
from siyu.wecom.services import connection_create
from siyu.wecom.tests.support import AES_KEY, TOKEN

ANCHOR = 1_700_000_000  # fixed, so the seeded corp is the same on every run
SPEC = SeedSpec(
    seed=5,
    corp_id="wwsynctest000001",
    anchor=ANCHOR,
    regions=2,
    stores_per_region=2,
    guides_per_store=3,
    customers=300,
    group_chats=10,
)
FAST_RETRY = RetryPolicy(attempts=8, base_delay=0.005, max_delay=0.02)


@contextmanager
def emulator_serving(spec: SeedSpec = SPEC) -> Iterator[RunningServer]:
    server = serve_in_thread(Emulator(EmulatorConfig(), [build_corp(spec)]))
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Brand:
    tenant: Tenant
    connection: WeComConnection
    server: RunningServer

    @property
    def actor(self) -> Actor:
        return Actor.system(self.tenant.id)

    @property
    def corp(self) -> Corp:
        return next(iter(self.server.emulator.corps.values()))

    def admin(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The emulator's /emulator/ admin surface (simulated user actions, faults), over HTTP."""
        method = "POST" if body is not None else "GET"
        response = httpx.request(method, f"{self.server.url}/emulator/{path}", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def client(self, connection: WeComConnection) -> WeComClient:
        """The real client on the connection's URL and secret, with quick retries (faults are injected)."""
        return WeComClient(
            connection.api_base_url,
            connection.corp_id,
            connection_secrets(connection).contact_secret,
            retry=FAST_RETRY,
            sleep=lambda _: None,
        )


def connect_brand(
    server: RunningServer, *, slug: str = "sync", tenant: Tenant | None = None, corp_id: str | None = None
) -> Brand:
    """Connect a brand to a corp of the emulator (`corp_id`, or its first): `tenant`, or a new brand named `slug`."""
    corp = server.emulator.corps[corp_id] if corp_id else next(iter(server.emulator.corps.values()))
    if tenant is None:
        tenant = core_services.tenant_create(name="同步品牌", slug=slug, wecom_corp_id=corp.corp_id)
    connection = connection_create(
        actor=Actor.system(tenant.id),
        corp_id=corp.corp_id,
        agent_id=str(corp.apps[0].agentid),
        contact_secret=corp.apps[0].secret,
        callback_token=TOKEN,
        encoding_aes_key=AES_KEY,
        api_base_url=f"{server.url}/cgi-bin/",
    )
    return Brand(tenant=tenant, connection=connection, server=server)


def add_members(corp: Corp, members: Mapping[str, str]) -> None:
    """Make `members` (userid → name) members of the corp's root department; the caller holds the emulator's lock
    (or the emulator is not serving yet)."""
    root = min(corp.departments)
    for userid, name in members.items():
        corp.members[userid] = Member(userid=userid, name=name, department=[root], main_department=root)


# -- the fixed world's brands on one emulator for the whole test process ---------------------------------------------
# For test modules whose requests may be sent after a fixture has returned (the API matrix's credential tests send the
# requests its rows hand back), so WeCom has to outlive every fixture: served in a daemon thread, stopped at exit.
# Each corp's members are its brand's guides of siyu.testing.build_world, so codes and chats reach real members.

WORLD_MEMBERS = {
    "a": {"guide1": "导购1", "guide2": "导购2", "guide3": "导购3", "brand_ip": "好物体验官"},
    "b": {"guide1": "导购B"},  # brand B's guide GB is "guide1" in its own corp
}
WORLD_SPECS = {
    brand: SeedSpec(seed=seed, corp_id=f"wwworldcorp{brand}0001", anchor=ANCHOR, regions=1, stores_per_region=1,
                    guides_per_store=1, customers=1, group_chats=0)
    for brand, seed in (("a", 21), ("b", 22))
}  # fmt: skip


@functools.cache
def world_wecom() -> RunningServer:
    """The process's emulator, with a corp per brand of the fixed world ("a", "b")."""
    corps = {brand: build_corp(spec) for brand, spec in WORLD_SPECS.items()}
    for brand, corp in corps.items():
        add_members(corp, WORLD_MEMBERS[brand])
    server = serve_in_thread(Emulator(EmulatorConfig(), corps.values()))
    atexit.register(server.stop)
    return server


def world_corp(brand: str) -> Corp:
    """Brand "a" or "b"'s corp in `world_wecom()` (read it under the emulator's lock)."""
    return world_wecom().emulator.corps[WORLD_SPECS[brand].resolved_corp_id()]


def connect_world(world: World) -> None:
    """Connect both brands of the world to their corps of `world_wecom()`, unless a brand is connected already."""
    for brand, tenant in (("a", world.tenant_a), ("b", world.tenant_b)):
        if not WeComConnection.objects.filter(tenant=tenant).exists():
            connect_brand(world_wecom(), tenant=tenant, corp_id=world_corp(brand).corp_id)


# -- ground truth and siyu's state, keyed by WeCom ids -----------------------------------------------------------


def _ts(value: dt.datetime) -> int:
    return int(value.timestamp())


def expected_state(corp: Corp) -> dict[str, Any]:
    """What siyu should hold after a full sync of `corp` (read under the emulator's lock by the caller)."""
    live_tags = corp.tag_index()
    contacts = {e: c for e, c in corp.contacts.items() if c.follows}
    return {
        "guides": {
            m.userid: (m.name, Guide.Status.ACTIVE if m.status in (1, 4) else Guide.Status.DEPARTED)
            for m in corp.members.values()
        },
        "customers": {e: (c.name, c.gender, c.unionid) for e, c in contacts.items()},
        "relations": {
            (e, f.userid): (f.remark, f.description, f.add_way, f.state, f.createtime)
            for e, c in contacts.items()
            for f in c.follows.values()
        },
        "customer_tags": {
            e: sorted({t for f in c.follows.values() for t in f.tag_ids if t in live_tags})
            for e, c in contacts.items()
            if any(t in live_tags for f in c.follows.values() for t in f.tag_ids)
        },
        "tag_groups": {
            g.group_id: (g.group_name, g.order, sorted((t.id, t.name, t.order) for t in g.tags if not t.deleted))
            for g in corp.tag_groups.values()
            if not g.deleted
        },
        "groups": {
            chat.chat_id: (
                chat.name,
                chat.owner,
                chat.notice,
                chat.create_time,
                len(chat.member_list),
                sorted((m.userid, m.type, m.join_time, m.join_scene, m.invitor) for m in chat.member_list),
            )
            for chat in corp.group_chats.values()
        },
    }


def db_state(tenant: Tenant) -> dict[str, Any]:
    ext_of = dict(
        Identity.objects.filter(tenant=tenant, kind=Identity.Kind.WECOM_EXTERNAL_USERID).values_list(
            "customer_id", "value"
        )
    )
    union_of = dict(
        Identity.objects.filter(tenant=tenant, kind=Identity.Kind.UNIONID).values_list("customer_id", "value")
    )
    customers = {}
    for identity in Identity.objects.filter(tenant=tenant, kind=Identity.Kind.WECOM_EXTERNAL_USERID).select_related(
        "customer"
    ):
        customer = identity.customer
        name = pii.decrypt(customer.name_enc, field="name")
        customers[identity.value] = (name, customer.gender, union_of.get(customer.id, ""))
    tags: dict[str, list[str]] = {}
    for row in CustomerTag.objects.filter(tenant=tenant).exclude(tag__wecom_tag_id="").select_related("tag"):
        tags.setdefault(ext_of[row.customer_id], []).append(row.tag.wecom_tag_id)
    return {
        "guides": {g.wecom_userid: (g.name, g.status) for g in Guide.objects.filter(tenant=tenant)},
        "customers": customers,
        "relations": {
            (r.external_userid, r.guide.wecom_userid): (
                r.remark,
                r.description,
                r.add_way,
                r.state,
                _ts(r.added_at),
            )
            for r in FollowRelation.objects.filter(tenant=tenant, status=FollowRelation.Status.ACTIVE).select_related(
                "guide"
            )
        },
        "customer_tags": {e: sorted(t) for e, t in tags.items()},
        "tag_groups": {
            g.wecom_group_id: (g.name, g.order, sorted((t.wecom_tag_id, t.name, t.order) for t in g.tags.all()))
            for g in TagGroup.objects.filter(tenant=tenant).exclude(wecom_group_id="").prefetch_related("tags")
        },
        "groups": {
            g.chat_id: (
                g.name,
                g.owner.wecom_userid,
                g.notice,
                _ts(g.created_at),
                g.member_count,
                sorted(
                    (m.userid, m.member_type, _ts(m.join_time), m.join_scene, m.invitor)
                    for m in GroupMember.objects.filter(group=g, left_at__isnull=True)
                ),
            )
            for g in CustomerGroup.objects.filter(tenant=tenant, status=CustomerGroup.Status.ACTIVE).select_related(
                "owner"
            )
        },
    }


def event_counts(tenant: Tenant) -> Counter[str]:
    return Counter(Event.objects.filter(tenant=tenant).values_list("type", flat=True))


def expected_event_counts(corp: Corp) -> Counter[str]:
    """The timeline a first full sync writes: one customer.created per contact, one contact.added per follow,
    one tag.added per (customer, tag), one group.joined per customer in a group."""
    state = expected_state(corp)
    return Counter(
        {
            "customer.created": len(state["customers"]),
            "contact.added": len(state["relations"]),
            "tag.added": sum(len(t) for t in state["customer_tags"].values()),
            "group.joined": sum(
                1
                for chat in corp.group_chats.values()
                for m in chat.member_list
                if m.type == 2 and m.userid in state["customers"]
            ),
        }
    )
