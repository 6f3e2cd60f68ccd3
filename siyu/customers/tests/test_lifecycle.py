"""Lifecycle stages: the rules move the right customers (a ground-truth fixture), moves by hand are audited and held
against the rules, counts and moves are scoped per persona, and the configuration is HQ's and validated."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.analytics.models import Event
from siyu.analytics.services import event_record
from siyu.commerce.models import Order
from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog
from siyu.customers import lifecycle
from siyu.customers.models import Customer, LifecycleConfig, LifecycleStage
from siyu.customers.services import (
    IdentityInput,
    customer_create,
    customer_update,
    follow_relation_add,
    follow_relation_delete,
)
from siyu.testing import IMMEDIATE_TASKS, PASSWORD, VISIBLE, World

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def _customer(world: World, key: str, *, created_days_ago: int, guide: str | None = "G1") -> Customer:
    hq = world.actor("hq")
    customer = customer_create(
        actor=hq,
        name=f"客户{key}",
        city="杭州",
        source="test",
        identities=[IdentityInput(kind="unionid", value=f"u-{key}")],
        created_at=NOW - dt.timedelta(days=created_days_ago),
    )
    if guide:
        follow_relation_add(
            actor=hq,
            customer_id=customer.id,
            guide_id=world.guides[guide].id,
            external_userid=f"wm-{key}",
            added_at=NOW - dt.timedelta(days=created_days_ago),
        )
    return customer


def _order(world: World, customer: Customer, no: str, days_ago: int, status: str = "paid") -> None:
    Order.objects.create(
        tenant=world.tenant_a, customer=customer, shop="youzan", order_no=no, status=status, amount_cents=9900,
        paid_at=NOW - dt.timedelta(days=days_ago),
    )  # fmt: skip


def _interact(world: World, customer: Customer, days_ago: int, type: str = "message.received") -> None:
    props = {"guide_id": world.guides["G1"].id} if type == "message.received" else {"material": "m1"}
    event_record(
        tenant_id=world.tenant_a.id, type=type, customer_id=customer.id,
        occurred_at=NOW - dt.timedelta(days=days_ago), properties=props,
    )  # fmt: skip


@pytest.fixture
def fixture(world: World) -> dict[str, Customer]:
    """Customers with a known right stage under the default thresholds (engaged 30, dormant 90, lost 180 days)."""
    c: dict[str, Customer] = {}
    # Added 100 days ago and never heard from again (the add itself is the last interaction): dormant.
    c["quiet"] = _customer(world, "quiet", created_days_ago=100)
    # Added 100 days ago, chatted 5 days ago: engaged.
    c["chatty"] = _customer(world, "chatty", created_days_ago=100)
    _interact(world, c["chatty"], 5)
    # Opened a material 10 days ago and bought once 20 days ago: first purchase beats engaged.
    c["buyer"] = _customer(world, "buyer", created_days_ago=100)
    _interact(world, c["buyer"], 10, "material.opened")
    _order(world, c["buyer"], "o-1", 20)
    # Two paid orders (and one refunded, which does not count): repeat.
    c["repeat"] = _customer(world, "repeat", created_days_ago=120)
    _order(world, c["repeat"], "o-2", 40)
    _order(world, c["repeat"], "o-3", 60)
    _order(world, c["repeat"], "o-4", 30, status="refunded")
    # One refunded order only, added 40 days ago, nothing since: new (not engaged: the add is 40 days old).
    c["refund_only"] = _customer(world, "refund_only", created_days_ago=40)
    _order(world, c["refund_only"], "o-5", 35, status="refunded")
    # Two orders long ago and nothing for 200 days: lost (no activity for lost_days).
    c["gone"] = _customer(world, "gone", created_days_ago=400)
    _order(world, c["gone"], "o-6", 300)
    _order(world, c["gone"], "o-7", 200)
    # Deleted their only guide yesterday, though they bought last week: lost.
    c["deleter"] = _customer(world, "deleter", created_days_ago=50)
    _order(world, c["deleter"], "o-8", 7)
    follow_relation_delete(
        actor=world.actor("hq"), customer_id=c["deleter"].id, guide_id=world.guides["G1"].id, by_customer=True,
        at=NOW - dt.timedelta(days=1),
    )  # fmt: skip
    # Created 3 days ago with nobody: new (created counts as activity, so not dormant; no interaction).
    c["fresh"] = _customer(world, "fresh", created_days_ago=3, guide=None)
    return c


EXPECTED = {
    "quiet": "dormant",
    "chatty": "engaged",
    "buyer": "first_purchase",
    "repeat": "repeat",
    "refund_only": "new",
    "gone": "lost",
    "deleter": "lost",
    "fresh": "new",
}


def _stages(customers: dict[str, Customer]) -> dict[str, str]:
    by_id = {c.id: k for k, c in customers.items()}
    return {by_id[i]: s for i, s in Customer.objects.filter(id__in=by_id).values_list("id", "lifecycle_stage")}


def test_rules_move_each_customer_to_the_right_stage_once(world: World, fixture: dict[str, Customer]) -> None:
    moved = lifecycle.lifecycle_recompute(tenant_id=world.tenant_a.id, now=NOW)
    assert _stages(fixture) == EXPECTED
    # Six of the fixture moved (two stay new), and the world's c1..c5, created in January with nothing since: dormant.
    assert moved == 6 + 5
    assert set(Customer.objects.filter(id__in=[c.id for c in world.customers.values()]).values_list(
        "lifecycle_stage", flat=True)) == {"dormant", "new"}  # fmt: skip
    assert Customer.objects.get(id=world.customers["b1"].id).lifecycle_stage == "new"  # brand B is not touched
    events = Event.objects.filter(type="customer.stage_changed", properties__by="rule")
    changed = {e.customer_id: (e.properties["from"], e.properties["to"]) for e in events}
    assert changed[fixture["buyer"].id] == ("new", "first_purchase")
    assert changed[fixture["deleter"].id] == ("new", "lost")
    assert fixture["fresh"].id not in changed
    # A second run moves nobody and appends nothing.
    before = Event.objects.count()
    assert lifecycle.lifecycle_recompute(tenant_id=world.tenant_a.id, now=NOW) == 0
    assert Event.objects.count() == before
    config = LifecycleConfig.objects.get(tenant=world.tenant_a)
    assert (config.last_run_at, config.next_run_at) == (NOW, NOW + dt.timedelta(days=1))


def test_disabled_stage_receives_nobody_and_thresholds_apply(world: World, fixture: dict[str, Customer]) -> None:
    stages = [{**s, "enabled": s["stage"] != "dormant"} for s in lifecycle.lifecycle_config_get(
        tenant_id=world.tenant_a.id).stages]  # fmt: skip
    lifecycle.lifecycle_config_update(
        actor=world.actor("hq"), changes={"stages": stages, "engaged_days": 120, "lost_days": 500}
    )
    lifecycle.lifecycle_recompute(tenant_id=world.tenant_a.id, now=NOW)
    got = _stages(fixture)
    # The add 40 days ago is within 120 days: engaged. "quiet" (100 days) and "gone" (200 days, < 500) would be
    # dormant, which is disabled: they stay where they were. "deleter" is still lost (every guide gone).
    assert (got["refund_only"], got["quiet"], got["gone"], got["deleter"]) == ("engaged", "new", "new", "lost")
    assert (got["buyer"], got["repeat"]) == ("first_purchase", "repeat")


def test_hand_move_is_audited_and_held_against_the_rules(world: World, fixture: dict[str, Customer]) -> None:
    hq = world.actor("hq")
    customer = fixture["quiet"]
    lifecycle.customer_stage_move(actor=hq, customer_id=customer.id, stage="repeat")
    customer.refresh_from_db()
    assert customer.lifecycle_stage == "repeat"
    assert customer.stage_held_until is not None
    held_days = (customer.stage_held_until - timezone.now()).days
    assert held_days in (29, 30)
    audit = AuditLog.objects.get(action="customer.stage_move", target_id=str(customer.id))
    assert (audit.actor_id, audit.detail["from"], audit.detail["to"]) == (world.users["hq"].id, "new", "repeat")
    event = Event.objects.get(type="customer.stage_changed", customer_id=customer.id)
    assert event.properties == {"from": "new", "to": "repeat", "by": "hand"}
    # The nightly rules leave it alone while held ...
    lifecycle.lifecycle_recompute(tenant_id=world.tenant_a.id, now=timezone.now())
    customer.refresh_from_db()
    assert customer.lifecycle_stage == "repeat"
    # ... and move it once the hold has passed.
    lifecycle.lifecycle_recompute(tenant_id=world.tenant_a.id, now=timezone.now() + dt.timedelta(days=31))
    customer.refresh_from_db()
    assert customer.lifecycle_stage == "lost"  # nothing since the add, over 180 days before then


def test_a_stage_changed_by_customer_update_is_a_hand_move(world: World, fixture: dict[str, Customer]) -> None:
    """PATCH /customers/{id} with lifecycle_stage: the same hold, event and audit row as a kanban drag."""
    customer = fixture["quiet"]
    customer_update(actor=world.actor("hq"), customer_id=customer.id, changes={"lifecycle_stage": "engaged"})
    customer.refresh_from_db()
    assert customer.lifecycle_stage == "engaged"
    assert customer.stage_held_until is not None
    event = Event.objects.get(type="customer.stage_changed", customer_id=customer.id)
    assert event.properties == {"from": "new", "to": "engaged", "by": "hand"}
    assert AuditLog.objects.filter(action="customer.stage_move", target_id=str(customer.id)).count() == 1
    # Setting the stage it already has moves nothing.
    customer_update(actor=world.actor("hq"), customer_id=customer.id, changes={"lifecycle_stage": "engaged"})
    assert Event.objects.filter(type="customer.stage_changed", customer_id=customer.id).count() == 1


def test_counts_and_moves_are_scoped_per_persona(world: World) -> None:
    for persona, visible in VISIBLE.items():
        counts = lifecycle.stage_counts(actor=world.actor(persona))
        assert counts["new"] == (1 if persona == "outsider" else len(visible)), persona
        assert sum(counts.values()) == counts["new"]
    c1, c2 = world.customers["c1"], world.customers["c2"]
    store1 = world.actor("store1")
    lifecycle.customer_stage_move(actor=store1, customer_id=c1.id, stage="engaged")
    assert lifecycle.stage_counts(actor=store1)["engaged"] == 1
    before = AuditLog.objects.count()
    for persona in ("store1", "guide1", "outsider"):
        with pytest.raises(NotFound):
            lifecycle.customer_stage_move(actor=world.actor(persona), customer_id=c2.id, stage="lost")
    assert Customer.objects.get(id=c2.id).lifecycle_stage == "new"
    assert AuditLog.objects.count() == before
    with pytest.raises(ValidationFailed) as bad:
        lifecycle.customer_stage_move(actor=store1, customer_id=c1.id, stage="vip")
    assert bad.value.field == "stage"


def test_configuration_is_hq_only_and_validated(world: World) -> None:
    for persona in ("region1", "store1", "guide1", "franchisee1"):
        with pytest.raises(PermissionDenied):
            lifecycle.lifecycle_config_update(actor=world.actor(persona), changes={"hold_days": 3})
        with pytest.raises(PermissionDenied):
            lifecycle.lifecycle_run_request(actor=world.actor(persona))
    hq = world.actor("hq")
    for changes, field, error in (
        ({"hold_days": 0}, "hold_days", ValidationFailed),
        ({"engaged_days": "7"}, "engaged_days", ValidationFailed),
        ({"dormant_days": 400, "lost_days": 300}, "dormant_days", Conflict),
        ({"stages": [{"stage": "new"}]}, "stages", Conflict),
        ({"stages": [{"stage": "new"}] * 6}, "stages", Conflict),
        ({"stages": "x"}, "stages", ValidationFailed),
        ({"colour": 1}, "colour", ValidationFailed),
    ):
        with pytest.raises(error) as bad:
            lifecycle.lifecycle_config_update(actor=hq, changes=changes)
        assert bad.value.field == field, changes
    assert not LifecycleConfig.objects.exists()
    stages = lifecycle.lifecycle_config_get(tenant_id=world.tenant_a.id).stages
    stages = [{**s, "name": "潜客"} if s["stage"] == "new" else s for s in reversed(stages)]
    lifecycle.lifecycle_config_update(actor=hq, changes={"stages": stages, "hold_days": 7})
    board = lifecycle.lifecycle_board(actor=hq)
    assert [c.stage for c in board] == ["lost", "dormant", "repeat", "first_purchase", "engaged", "new"]
    assert (board[-1].name, board[-1].count, len(board[-1].cards)) == ("潜客", 5, 5)
    # Brand B keeps its defaults.
    assert lifecycle.lifecycle_board(actor=world.actor("outsider"))[0].stage == "new"


def test_due_brands_get_one_run_each(world: World) -> None:
    hq = world.actor("hq")
    lifecycle.lifecycle_config_update(actor=hq, changes={"hold_days": 7})
    config = LifecycleConfig.objects.get(tenant=world.tenant_a)
    assert config.next_run_at is not None
    assert lifecycle.lifecycle_due(now=config.next_run_at + dt.timedelta(seconds=1)) == 1
    # Claimed: the next sweep finds nothing due until tomorrow.
    assert lifecycle.lifecycle_due(now=config.next_run_at + dt.timedelta(seconds=2)) == 0


def _client(persona: str) -> Client:
    client = Client()
    assert client.login(username=persona, password=PASSWORD)
    return client


def test_console_board_moves_pages_and_settings(
    world: World, settings: SettingsWrapper, django_capture_on_commit_callbacks: Any
) -> None:
    settings.TASKS = IMMEDIATE_TASKS
    c1, c2 = world.customers["c1"], world.customers["c2"]
    store1 = _client("store1")
    board = store1.get("/customers/lifecycle/").content.decode()
    assert board.count('class="kanban-col"') == 6
    assert board.count('class="kanban-card"') == 1
    # A move answers the board with fresh counts; one outside the scope is not found and changes nothing.
    moved = store1.post("/customers/lifecycle/move/", {"customer_id": c1.id, "stage": "dormant"})
    assert moved.status_code == 200
    assert 'data-stage="dormant"' in moved.content.decode()
    assert Customer.objects.get(id=c1.id).lifecycle_stage == "dormant"
    assert store1.post("/customers/lifecycle/move/", {"customer_id": c2.id, "stage": "lost"}).status_code == 404
    assert Customer.objects.get(id=c2.id).lifecycle_stage == "new"
    refused = store1.post("/customers/lifecycle/move/", {"customer_id": c1.id, "stage": "vip"})
    assert 'id="board-error"' in refused.content.decode()
    # Settings and "run now" are HQ's.
    assert store1.get("/customers/lifecycle/settings/").status_code == 403
    assert store1.post("/customers/lifecycle/run/").status_code == 403
    hq = _client("hq")
    form = {f"order_{s}": str(i) for i, s in enumerate(LifecycleStage.values, start=1)}
    form |= {f"enabled_{s}": "on" for s in LifecycleStage.values} | {
        f"color_{s}": "#112233" for s in LifecycleStage.values
    }
    form |= {"engaged_days": "14", "dormant_days": "60", "lost_days": "30", "hold_days": "5", "name_new": "潜客"}
    bad = hq.post("/customers/lifecycle/settings/", form)
    assert bad.status_code == 422
    assert "dormant_days must not exceed lost_days" in bad.content.decode()
    assert hq.post("/customers/lifecycle/settings/", {**form, "lost_days": "365"}).status_code == 302
    config = LifecycleConfig.objects.get(tenant=world.tenant_a)
    assert (config.engaged_days, config.dormant_days, config.lost_days, config.hold_days) == (14, 60, 365, 5)
    assert "潜客" in hq.get("/customers/lifecycle/").content.decode()
    # "More": the second page of a column.
    page = hq.get("/customers/lifecycle/new/", {"offset": "2"}).content.decode()
    assert page.count('class="kanban-card"') == 2  # c2..c5 are new (c1 moved): 4 - 2
    # Run now: the job runs after commit (immediate backend) and the board says so.
    with django_capture_on_commit_callbacks(execute=True):
        assert hq.post("/customers/lifecycle/run/").status_code == 302
    assert LifecycleConfig.objects.get(tenant=world.tenant_a).last_run_at is not None
