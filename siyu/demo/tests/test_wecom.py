"""The demo brand on the emulator: the corp mirrors siyu's tables, and simulated customers reach siyu by callbacks."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import httpx
import pytest
from pytest_django.live_server_helper import LiveServer

from siyu.analytics.models import Event
from siyu.channels.models import LiveCode, WelcomeMessage, WelcomeSend
from siyu.channels.services import live_code_rebalance
from siyu.core.models import Guide, Store, Tenant
from siyu.customers.models import FollowRelation, Identity
from siyu.demo.services import demo_load
from siyu.demo.wecom import demo_emulator_attach, demo_wecom_connect
from siyu.emulator.config import EmulatorConfig
from siyu.emulator.core import Emulator
from siyu.emulator.server import RunningServer, serve_in_thread
from siyu.groups.models import CustomerGroup, GroupCode, GroupMember
from siyu.groups.services import group_code_sync
from siyu.wecom.models import RawCallback, WeComConnection
from siyu.wecom.selectors import emulator_in_use
from siyu.wecom.services import raw_callback_process
from siyu.wecom.sync import sync_run

ANCHOR = dt.datetime(2026, 6, 20, tzinfo=dt.UTC)


@pytest.fixture
def emulator() -> Iterator[RunningServer]:
    server = serve_in_thread(Emulator(EmulatorConfig(), []))  # empty, as `siyu serve` starts it (--no-seed)
    yield server
    server.stop()


def _demo(emulator: RunningServer) -> Tenant:
    load = demo_load(slug="demo", seed=7, customers=150, anchor=ANCHOR).load
    assert load.tenant is not None
    demo_wecom_connect(tenant=load.tenant, emulator_url=emulator.url)
    return load.tenant


@pytest.mark.django_db
def test_the_emulator_gets_a_corp_holding_the_demo_brands_people(emulator: RunningServer) -> None:
    tenant = _demo(emulator)
    assert emulator_in_use(emulator_url=emulator.url)
    attached = demo_emulator_attach(
        tenant=tenant, emulator_url=emulator.url, callback_base_url="http://127.0.0.1:9", simulate_rate=0
    )
    corp = emulator.emulator.corps[attached.corp_id]
    guides = Guide.objects.filter(tenant=tenant)
    assert set(corp.members) == set(guides.values_list("wecom_userid", flat=True))
    departed = set(guides.filter(status=Guide.Status.DEPARTED).values_list("wecom_userid", flat=True))
    assert departed
    assert {u for u, m in corp.members.items() if m.status == 5} == departed
    relations = FollowRelation.objects.filter(tenant=tenant, status=FollowRelation.Status.ACTIVE)
    assert {(e, u) for e, c in corp.contacts.items() for u in c.follows} == set(
        relations.values_list("external_userid", "guide__wecom_userid")
    )
    assert (
        len(corp.contacts)
        == Identity.objects.filter(
            tenant=tenant, kind=Identity.Kind.WECOM_EXTERNAL_USERID, customer__follow_relations__in=relations
        )
        .values("customer")
        .distinct()
        .count()
    )
    # The member groups customers joined in the demo's timeline, each with its owner and current members.
    groups = CustomerGroup.objects.filter(tenant=tenant)
    assert groups.exists()
    assert {
        (chat.chat_id, chat.name, chat.owner, frozenset(m.userid for m in chat.member_list))
        for chat in corp.group_chats.values()
    } == {
        (g.chat_id, g.name, g.owner.wecom_userid, frozenset(g.members.values_list("userid", flat=True))) for g in groups
    }
    joined = Event.objects.filter(tenant=tenant, type="group.joined")
    assert joined.count() == GroupMember.objects.filter(tenant=tenant, customer__isnull=False).count()
    assert {e.properties["chat_id"] for e in joined} == set(groups.values_list("chat_id", flat=True))
    store_states = {w.state for w in corp.contact_ways.values() if w.state.startswith("store-")}
    assert store_states == {f"store-{s.code}" for s in Store.objects.filter(tenant=tenant, guides__isnull=False)}
    # One 「联系我」 way per live code, as its service stored WeCom's answer; one 「加入群聊」 way per group code.
    codes = LiveCode.objects.filter(tenant=tenant)
    assert {LiveCode.Purpose.STORE, LiveCode.Purpose.CHANNEL, LiveCode.Purpose.FISSION} == set(
        codes.values_list("purpose", flat=True)
    )
    assert {(w.config_id, w.state, tuple(w.user), w.qr_code, w.remark) for w in corp.contact_ways.values()} == {
        (c.config_id, c.state, tuple(c.wecom_users), c.qr_code, c.name[:30]) for c in codes
    }
    group_codes = GroupCode.objects.filter(tenant=tenant)
    assert group_codes.exists()
    assert {(w.config_id, w.state, tuple(w.chat_id_list), w.qr_code) for w in corp.join_ways.values()} == {
        (c.config_id, c.state, tuple(c.way_chat_ids), c.qr_code) for c in group_codes
    }

    # The connection's secret opens the corp, and the callback points at siyu with the connection's token.
    connection = WeComConnection.objects.get(tenant=tenant)
    assert corp.callback.url == f"http://127.0.0.1:9/wecom/callback/{connection.corp_id}/"
    token = httpx.get(
        f"{emulator.url}/cgi-bin/gettoken", params={"corpid": connection.corp_id, "corpsecret": corp.apps[0].secret}
    ).json()
    assert token["errcode"] == 0

    # A restarted `siyu serve` finds the corp kept by the emulator and does not replace it.
    again = demo_emulator_attach(
        tenant=tenant, emulator_url=emulator.url, callback_base_url="http://127.0.0.1:9", simulate_rate=0
    )
    assert again.pushed is False
    assert again.customers == attached.customers
    assert emulator.emulator.corps[attached.corp_id] is corp


@pytest.mark.django_db
def test_a_sync_of_the_attached_demo_brand_changes_nothing(emulator: RunningServer) -> None:
    tenant = _demo(emulator)
    demo_emulator_attach(
        tenant=tenant, emulator_url=emulator.url, callback_base_url="http://127.0.0.1:9", simulate_rate=0
    )
    before = set(FollowRelation.objects.filter(tenant=tenant).values_list("id", "status", "remark", "state", "guide"))
    groups_before = set(CustomerGroup.objects.filter(tenant=tenant).values_list("id", "member_version", "updated_at"))
    assert groups_before
    run = sync_run(tenant_id=tenant.id)
    assert run.status == "succeeded", run.error
    for phase, counts in run.counts.items():
        assert counts.get("created", 0) == 0, (phase, counts)
        assert counts.get("updated", 0) == 0, (phase, counts)
        assert counts.get("deleted", 0) == 0, (phase, counts)
    after = set(FollowRelation.objects.filter(tenant=tenant).values_list("id", "status", "remark", "state", "guide"))
    assert after == before
    assert set(CustomerGroup.objects.filter(tenant=tenant).values_list("id", "member_version", "updated_at")) == (
        groups_before
    )


@pytest.mark.django_db
def test_the_emulator_holds_the_ways_the_codes_expect(emulator: RunningServer) -> None:
    """The ways the loader's private emulator created are the ones the real emulator gets: every code's job finds
    its way as the code last wrote it, and changes nothing."""
    tenant = _demo(emulator)
    attached = demo_emulator_attach(
        tenant=tenant, emulator_url=emulator.url, callback_base_url="http://127.0.0.1:9", simulate_rate=0
    )
    corp = emulator.emulator.corps[attached.corp_id]
    ways = {w.config_id: (w.state, list(w.user)) for w in corp.contact_ways.values()}
    codes = list(LiveCode.objects.filter(tenant=tenant).order_by("id"))
    assert len(codes) == len(ways) > 30
    for code in codes:
        assert live_code_rebalance(live_code_id=code.id) == "unchanged", code.state
    assert {w.config_id: (w.state, list(w.user)) for w in corp.contact_ways.values()} == ways
    join_ways = {w.config_id: list(w.chat_id_list) for w in corp.join_ways.values()}
    for group_code in GroupCode.objects.filter(tenant=tenant):
        synced = group_code_sync(tenant_id=tenant.id, code_id=group_code.id)
        assert synced is not None
        assert synced.sync_error == ""
        assert synced.config_id == group_code.config_id  # the same way, not a new one
    assert {w.config_id: list(w.chat_id_list) for w in corp.join_ways.values()} == join_ways


@pytest.mark.django_db(transaction=True)
def test_simulated_shoppers_reach_siyu_through_signed_callbacks(
    emulator: RunningServer, live_server: LiveServer
) -> None:
    tenant = _demo(emulator)
    demo_emulator_attach(tenant=tenant, emulator_url=emulator.url, callback_base_url=live_server.url, simulate_rate=0)
    mix = {"add": 1.0}  # only adds, so every step is a callback to check
    result = httpx.post(
        f"{emulator.url}/emulator/simulate/run", json={"steps": 12, "seed": 3, "mix": mix}, timeout=60
    ).json()
    deadline = time.monotonic() + 30
    while emulator.emulator.callbacks.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    added = [(r["userid"], r["external_userid"], r["state"]) for r in result["adds"]]
    assert len(added) >= 6  # a step may find nothing to do (e.g. the drawn shopper already follows that guide)
    rows = RawCallback.objects.filter(tenant=tenant, change_type="add_external_contact")
    assert rows.count() == len(added)
    for row in rows:
        assert raw_callback_process(raw_callback_id=row.id).status == RawCallback.Status.PROCESSED
    for userid, external_userid, state in added:
        relation = FollowRelation.objects.get(
            tenant=tenant, guide__wecom_userid=userid, external_userid=external_userid
        )
        assert relation.status == FollowRelation.Status.ACTIVE
        assert state  # every demo code carries a state
        assert relation.state == state  # attributed to the code the shopper scanned
        # ... and to its live code: the code's own welcome message was chosen for the shopper.
        send = WelcomeSend.objects.get(tenant=tenant, follow_relation=relation)
        assert send.live_code is not None
        assert send.live_code.state == state
        code_welcome = WelcomeMessage.objects.filter(scope=WelcomeMessage.Scope.CODE, live_code=send.live_code).first()
        assert send.welcome_message == code_welcome
