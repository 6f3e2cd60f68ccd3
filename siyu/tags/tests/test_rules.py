"""Automatic tagging rules: behaviour, purchase, RFM bands and member tier; runs add and remove only their own tags."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from siyu.analytics.models import Event
from siyu.analytics.services import event_record
from siyu.commerce.models import Order
from siyu.core.errors import NotFound, PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog
from siyu.customers.models import Customer
from siyu.tags.models import CustomerTag, Tag, TagRule, TagSource
from siyu.tags.rules import (
    next_night,
    tag_rule_apply,
    tag_rule_create,
    tag_rule_run_now,
    tag_rule_update,
    tag_rules_due,
)
from siyu.tags.services import tag_group_create
from siyu.testing import World

_orders = itertools.count(1)


def _order(world: World, key: str, *, series: str, yuan: int, days_ago: int, status: str = "paid") -> None:
    """An order of a world customer (commerce's import path is its own; the rule only reads the rows)."""
    Order.objects.create(
        tenant=world.tenant_a,
        customer=world.customers[key],
        shop="tmall",
        order_no=f"T{next(_orders)}",
        status=status,
        amount_cents=yuan * 100,
        product_series=series,
        paid_at=timezone.now() - dt.timedelta(days=days_ago),
    )


def _tagged(tag: Tag) -> dict[str, str]:
    """Customer name key → source, for the world's brand-A customers carrying `tag`."""
    names = {c.id: k for k, c in _world_customers.items()}
    return {names[ct.customer_id]: ct.source for ct in CustomerTag.objects.filter(tag=tag)}


_world_customers: dict[str, Customer] = {}


@pytest.fixture
def tags(world: World) -> dict[str, Tag]:
    _world_customers.clear()
    _world_customers.update(world.customers)
    group = tag_group_create(actor=world.actor("hq"), name="自动", tags=["常看", "精华控", "活跃", "沉睡", "金卡"])
    return {t.name: t for t in group.tags.all()}


def test_behaviour_rule_tags_who_did_it_often_enough_and_untags_who_no_longer_does(
    world: World, tags: dict[str, Tag]
) -> None:
    hq = world.actor("hq")
    now = timezone.now()
    for key, times, days_ago in (("c1", 3, 1), ("c2", 2, 1), ("c3", 3, 40)):
        for _ in range(times):
            event_record(
                tenant_id=world.tenant_a.id,
                type="material.opened",
                customer_id=world.customers[key].id,
                occurred_at=now - dt.timedelta(days=days_ago),
                properties={"material": "m1"},
            )
    rule = tag_rule_create(
        actor=hq,
        name="常看资料",
        kind="behaviour",
        tag_id=tags["常看"].id,
        params={"event_type": "material.opened", "min_count": 3, "within_days": 30},
    )
    run = tag_rule_run_now(actor=hq, rule_id=rule.id)
    assert (run.matched, run.added, run.removed) == (1, 1, 0)
    row = CustomerTag.objects.get(tag=tags["常看"])
    assert (row.customer_id, row.source, row.rule) == (world.customers["c1"].id, TagSource.BEHAVIOUR, rule.label)
    assert (
        Event.objects.filter(type="tag.added", customer_id=world.customers["c1"].id).latest("id").properties["rule"]
        == rule.label
    )
    # Run again: nothing changes. Raise the bar: c1 no longer matches and loses the tag the rule gave.
    assert tag_rule_apply(rule_id=rule.id).added == 0
    tag_rule_update(
        actor=hq, rule_id=rule.id, params={"event_type": "material.opened", "min_count": 4, "within_days": 30}
    )
    run = tag_rule_apply(rule_id=rule.id)
    assert (run.matched, run.added, run.removed) == (0, 0, 1)
    assert not CustomerTag.objects.filter(tag=tags["常看"]).exists()
    rule.refresh_from_db()
    assert (rule.last_matched, rule.last_added, rule.last_removed) == (0, 0, 1)


def test_a_rule_never_removes_a_tag_it_did_not_apply(world: World, tags: dict[str, Tag]) -> None:
    hq = world.actor("hq")
    # c2 was tagged by hand; the rule matches nobody.
    from siyu.tags.services import customer_tag_add

    customer_tag_add(actor=hq, customer_id=world.customers["c2"].id, tag_id=tags["精华控"].id)
    _order(world, "c1", series="精华", yuan=300, days_ago=5)
    rule = tag_rule_create(
        actor=hq, name="买过精华", kind="purchase", tag_id=tags["精华控"].id, params={"product_series": "精华"}
    )
    tag_rule_apply(rule_id=rule.id)
    assert _tagged(tags["精华控"]) == {"c1": TagSource.PURCHASE, "c2": TagSource.MANUAL}
    # Refunded: c1 no longer matches and loses the rule's tag; c2's manual tag stays.
    Order.objects.filter(customer=world.customers["c1"]).update(status="refunded")
    assert tag_rule_apply(rule_id=rule.id).removed == 1
    assert _tagged(tags["精华控"]) == {"c2": TagSource.MANUAL}


def test_purchase_rule_with_count_and_window(world: World, tags: dict[str, Tag]) -> None:
    hq = world.actor("hq")
    for days in (3, 10):
        _order(world, "c1", series="精华", yuan=100, days_ago=days)
    _order(world, "c2", series="精华", yuan=100, days_ago=3)
    _order(world, "c3", series="精华", yuan=100, days_ago=3)
    _order(world, "c3", series="精华", yuan=100, days_ago=90)
    _order(world, "c2", series="面霜", yuan=100, days_ago=3)
    rule = tag_rule_create(
        actor=hq,
        name="复购精华",
        kind="purchase",
        tag_id=tags["精华控"].id,
        params={"product_series": "精华", "min_count": 2, "within_days": 30},
    )
    tag_rule_apply(rule_id=rule.id)
    assert _tagged(tags["精华控"]) == {"c1": TagSource.PURCHASE}


def test_rfm_bands_one_tag_per_band(world: World, tags: dict[str, Tag]) -> None:
    hq = world.actor("hq")
    _order(world, "c1", series="精华", yuan=100, days_ago=5)
    _order(world, "c2", series="精华", yuan=100, days_ago=200)
    rule = tag_rule_create(
        actor=hq,
        name="最近购买",
        kind="rfm",
        params={
            "metric": "recency",
            "bands": [{"tag_id": tags["活跃"].id, "min": 0, "max": 30}, {"tag_id": tags["沉睡"].id, "min": 180}],
        },
    )
    run = tag_rule_apply(rule_id=rule.id)
    assert (run.added, run.matched) == (2, 2)
    assert _tagged(tags["活跃"]) == {"c1": TagSource.RFM}
    assert _tagged(tags["沉睡"]) == {"c2": TagSource.RFM}
    # A band removed: the tags it gave come off.
    tag_rule_update(
        actor=hq,
        rule_id=rule.id,
        params={"metric": "recency", "bands": [{"tag_id": tags["活跃"].id, "min": 0, "max": 30}]},
    )
    assert tag_rule_apply(rule_id=rule.id).removed == 1
    assert _tagged(tags["沉睡"]) == {}
    # Monetary bands, in yuan.
    money = tag_rule_create(
        actor=hq,
        name="高消费",
        kind="rfm",
        params={"metric": "monetary", "bands": [{"tag_id": tags["金卡"].id, "min": 150}]},
    )
    _order(world, "c1", series="面霜", yuan=60, days_ago=1)
    tag_rule_apply(rule_id=money.id)
    assert _tagged(tags["金卡"]) == {"c1": TagSource.RFM}


def test_tier_rule_follows_the_latest_tier_change(world: World, tags: dict[str, Tag]) -> None:
    hq = world.actor("hq")
    now = timezone.now()

    def tier(key: str, value: str, days_ago: int) -> None:
        # member.tier_changed comes with the loyalty issue; the rule reads the event rows as they will be written.
        Event.objects.create(
            tenant=world.tenant_a,
            type="member.tier_changed",
            customer_id=world.customers[key].id,
            occurred_at=now - dt.timedelta(days=days_ago),
            properties={"tier": value},
        )

    tier("c1", "gold", 5)
    tier("c2", "gold", 10)
    tier("c2", "silver", 2)
    rule = tag_rule_create(actor=hq, name="金卡会员", kind="tier", tag_id=tags["金卡"].id, params={"tier": "gold"})
    tag_rule_apply(rule_id=rule.id)
    assert _tagged(tags["金卡"]) == {"c1": TagSource.TIER}


def test_bad_input_is_refused_naming_the_field(world: World, tags: dict[str, Tag]) -> None:
    hq = world.actor("hq")
    b_group = tag_group_create(actor=world.actor("outsider"), name="B组", tags=["B标签"])
    before = (TagRule.objects.count(), AuditLog.objects.count())
    behaviour = {"event_type": "anything.at_all", "min_count": 1, "within_days": 1}
    cases = [
        ({"kind": "behaviour", "tag_id": tags["常看"].id, "params": {**behaviour, "min_count": 0}}, "min_count"),
        ({"kind": "behaviour", "tag_id": tags["常看"].id, "params": {**behaviour, "within_days": -1}}, "within_days"),
        ({"kind": "behaviour", "tag_id": 999_999, "params": behaviour}, "tag_id"),
        ({"kind": "behaviour", "tag_id": None, "params": behaviour}, "tag_id"),
        ({"kind": "nope", "tag_id": tags["常看"].id, "params": behaviour}, "kind"),
        ({"kind": "rfm", "params": {"metric": "recency", "bands": []}}, "bands"),
        ({"kind": "rfm", "params": {"metric": "loyalty", "bands": []}}, "metric"),
    ]
    for kwargs, field in cases:
        with pytest.raises((ValidationFailed, NotFound)) as info:
            tag_rule_create(actor=hq, name="坏规则", **kwargs)  # type: ignore[arg-type]
        assert info.value.field == field, kwargs
    # Another brand's tag is not found.
    with pytest.raises(NotFound):
        tag_rule_create(actor=hq, name="坏规则", kind="behaviour", tag_id=b_group.tags.get().id, params=behaviour)
    with pytest.raises(PermissionDenied):
        tag_rule_create(actor=world.actor("region1"), name="坏规则", kind="behaviour", tag_id=tags["常看"].id,
                        params=behaviour)  # fmt: skip
    assert (TagRule.objects.count(), AuditLog.objects.count()) == before
    # An unknown event type is allowed (events of later features).
    tag_rule_create(actor=hq, name="好规则", kind="behaviour", tag_id=tags["常看"].id, params=behaviour)


def test_nightly_recompute_is_due_once_and_survives_restarts(
    world: World, tags: dict[str, Tag], django_capture_on_commit_callbacks: object
) -> None:
    hq = world.actor("hq")
    rule = tag_rule_create(actor=hq, name="复购精华", kind="purchase", tag_id=tags["精华控"].id,
                           params={"product_series": "精华"})  # fmt: skip
    assert rule.next_run_at == next_night()
    assert tag_rules_due() == 0
    later = rule.next_run_at + dt.timedelta(minutes=1)
    with django_capture_on_commit_callbacks() as jobs:  # type: ignore[operator]
        assert tag_rules_due(now=later) == 1
        assert tag_rules_due(now=later) == 0  # claimed: not enqueued twice
    assert len(jobs) == 1
    rule.refresh_from_db()
    assert rule.next_run_at == next_night(later)


def test_a_run_is_set_based(world: World, tags: dict[str, Tag]) -> None:
    """The query count does not grow with the customers matched."""
    hq = world.actor("hq")
    rule = tag_rule_create(actor=hq, name="复购精华", kind="purchase", tag_id=tags["精华控"].id,
                           params={"product_series": "精华"})  # fmt: skip
    _order(world, "c1", series="精华", yuan=100, days_ago=1)
    with CaptureQueriesContext(connection) as one:
        tag_rule_apply(rule_id=rule.id)
    CustomerTag.objects.filter(tag=tags["精华控"]).delete()
    for key in ("c2", "c3", "c4"):
        if key in world.customers:
            _order(world, key, series="精华", yuan=100, days_ago=1)
    with CaptureQueriesContext(connection) as many:
        run = tag_rule_apply(rule_id=rule.id)
    assert run.added >= 3
    assert len(many) == len(one)
