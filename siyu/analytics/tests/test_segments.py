"""Segments: one rule tree, the same customers from the OLTP database and from the DuckDB warehouse.

The fixture is the shared two-brand world plus attributes, orders and events with a known answer for each tree;
each tree is asked of both engines for several personas, and both must give exactly the expected customers within
that persona's scope.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from siyu.analytics.query import Scope, oltp_count, oltp_ids, warehouse_count, warehouse_ids
from siyu.analytics.segments import rule_validate
from siyu.analytics.services import event_record
from siyu.analytics.warehouse import warehouse_connect, warehouse_load
from siyu.commerce.models import Order
from siyu.core.errors import SiyuError
from siyu.customers.models import Customer, FollowRelation
from siyu.tags.services import customer_tag_add
from siyu.testing import VISIBLE, World

UTC = dt.UTC
# 2026-03-01 20:00 in Shanghai: "the last 7 days" begin 2026-02-23 00:00 Shanghai = 2026-02-22 16:00 UTC.
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PERSONAS = ("hq", "region1", "guide1", "franchisee1")


def _build(world: World) -> dict[str, Any]:
    c = world.customers
    attrs = {
        "c1": {"gender": 2, "city": "杭州", "intent_level": 3, "lifecycle_stage": "engaged"},
        "c2": {"gender": 1, "city": "上海", "intent_level": 1, "lifecycle_stage": "repeat"},
        "c3": {"gender": 2, "city": "苏州", "intent_level": 5, "lifecycle_stage": "first_purchase"},
        # Created 00:30 on 6 January in Shanghai, still the 5th in UTC.
        "c4": {
            "city": "杭州",
            "intent_level": 0,
            "lifecycle_stage": "dormant",
            "created_at": dt.datetime(2026, 1, 5, 16, 30, tzinfo=UTC),
        },
        "c5": {"city": "", "intent_level": 0, "lifecycle_stage": "new"},
    }
    for key, values in attrs.items():
        Customer.objects.filter(id=c[key].id).update(**values)
    # c3 deleted its guide: still in the franchisee's scope, but no active follow relation.
    FollowRelation.objects.filter(customer=c["c3"]).update(status=FollowRelation.Status.DELETED_BY_CUSTOMER)
    tenant = world.tenant_a.id

    def order(
        key: str, no: str, cents: int, shop: str, paid: dt.datetime, status: str = "paid", series: str = ""
    ) -> None:
        Order.objects.create(
            tenant_id=tenant,
            customer=c[key],
            shop=shop,
            order_no=no,
            status=status,
            amount_cents=cents,
            product_series=series,
            paid_at=paid,
        )

    order("c1", "o1", 10000, "tmall", NOW - dt.timedelta(days=3), series="精华")
    order("c1", "o2", 5000, "jd", NOW - dt.timedelta(days=60))
    order("c2", "o3", 30000, "tmall", NOW - dt.timedelta(days=40), series="面霜")
    order("c2", "o4", 99999, "tmall", NOW - dt.timedelta(days=1), status="refunded")
    order("c3", "o5", 2000, "store", NOW - dt.timedelta(days=10), status="completed")
    Order.objects.create(tenant_id=tenant, customer=None, shop="jd", order_no="o6", amount_cents=1, paid_at=NOW)

    def event(key: str, type_: str, at: dt.datetime, **props: Any) -> None:
        event_record(tenant_id=tenant, type=type_, customer_id=c[key].id, occurred_at=at, properties=props)

    for days in (1, 2, 4):
        event("c1", "message.received", NOW - dt.timedelta(days=days), guide_id=1)
    event("c2", "message.received", NOW - dt.timedelta(days=20), guide_id=1)
    # 00:30 on 23 February in Shanghai: inside "the last 7 days"; 23:30 on the 22nd: outside.
    event("c3", "message.received", dt.datetime(2026, 2, 22, 16, 30, tzinfo=UTC), guide_id=1)
    event("c4", "message.received", dt.datetime(2026, 2, 22, 15, 30, tzinfo=UTC), guide_id=1)
    event("c3", "material.opened", NOW - dt.timedelta(days=2), material="m")
    event("c3", "material.opened", NOW - dt.timedelta(days=2), material="m")

    # A customer merged into c1 carries every tag and order: never in any answer.
    ghost = Customer.objects.create(tenant_id=tenant, created_at=NOW, updated_at=NOW, city="杭州")
    customer_tag_add(actor=world.actor("hq"), customer_id=ghost.id, tag_id=world.tags["护肤"].id)
    order_ghost = Order(tenant_id=tenant, customer=ghost, shop="jd", order_no="o7", amount_cents=1, paid_at=NOW)
    order_ghost.save()
    Customer.objects.filter(id=ghost.id).update(merged_into=c["c1"])
    return {
        "skin": world.tags["护肤"].id,
        "makeup": world.tags["彩妆"].id,
        "S1": world.stores["S1"].id,
        "S3": world.stores["S3"].id,
        "G2": world.guides["G2"].id,
    }


def tag(key: str, op: str = "has_tag") -> dict[str, Any]:
    return {"op": op, "tag_id": key}


def msgs(cmp: str, value: Any, **window: Any) -> dict[str, Any]:
    return {"op": "event_count", "type": "message.received", "cmp": cmp, "value": value, **window}


def orders(measure: str, cmp: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {"op": "orders", "measure": measure, "cmp": cmp, "value": value, **extra}


def attr(field: str, cmp: str, value: Any) -> dict[str, Any]:
    return {"op": "attr", "field": field, "cmp": cmp, "value": value}


# (rule with symbolic ids, the brand-wide answer)
CASES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "has tag": (tag("skin"), {"c1", "c3"}),
    "has not tag": (tag("skin", "not_has_tag"), {"c2", "c4", "c5"}),
    "city eq": (attr("city", "eq", "杭州"), {"c1", "c4"}),
    "city ne": (attr("city", "ne", "杭州"), {"c2", "c3", "c5"}),
    "city contains": (attr("city", "contains", "州"), {"c1", "c3", "c4"}),
    "source in": (attr("source", "in", ["test", "other"]), {"c1", "c2", "c3", "c4", "c5"}),
    "intent between": (attr("intent_level", "between", [1, 3]), {"c1", "c2"}),
    "intent gt": (attr("intent_level", "gt", 3), {"c3"}),
    "gender in": (attr("gender", "in", [2]), {"c1", "c3"}),
    "created on a Shanghai day": (attr("created_at", "eq", "2026-01-05"), {"c1", "c2", "c3", "c5"}),
    "created from a Shanghai day": (attr("created_at", "gte", "2026-01-06"), {"c4"}),
    "created before": (attr("created_at", "lt", "2026-01-06"), {"c1", "c2", "c3", "c5"}),
    "messages at least 3 in 7 days": (msgs("gte", 3, days=7), {"c1"}),
    "messages in 7 Shanghai days": (msgs("gte", 1, days=7), {"c1", "c3"}),
    "messages at most 0 in 7 days": (msgs("lte", 0, days=7), {"c2", "c4", "c5"}),
    "messages in a date range": (msgs("gte", 1, **{"from": "2026-02-01", "to": "2026-02-22"}), {"c2", "c4"}),
    "order count at least 2": (orders("count", "gte", 2), {"c1"}),
    "order count 0": (orders("count", "eq", 0), {"c4", "c5"}),
    "order sum": (orders("amount_cents", "gte", 20000), {"c2"}),
    "order sum at most": (orders("amount_cents", "lt", 10000), {"c3", "c4", "c5"}),
    "tmall buyers": (orders("count", "gte", 1, shop="tmall"), {"c1", "c2"}),
    "series buyers": (orders("count", "gte", 1, product_series="精华"), {"c1"}),
    "paid in 30 days": (orders("last_paid", "within_days", 30), {"c1", "c3"}),
    "last paid before": (orders("last_paid", "lt", "2026-02-01"), {"c2"}),
    # Order conditions in one group are merged into one pass over the orders; each must still count only its rows.
    "and of order conditions by shop": (
        {
            "op": "and",
            "rules": [orders("count", "gte", 1, shop="jd"), orders("amount_cents", "gte", 10000, shop="tmall")],
        },
        {"c1"},
    ),
    "or of order conditions by shop": (
        {
            "op": "or",
            "rules": [orders("amount_cents", "gte", 8000, shop="jd"), orders("count", "gte", 1, shop="store")],
        },
        {"c3"},
    ),
    "or of order dates and sums between": (
        {
            "op": "or",
            "rules": [
                orders("last_paid", "between", ["2026-01-01", "2026-01-31"]),
                orders("amount_cents", "between", [1000, 3000]),
            ],
        },
        {"c2", "c3"},
    ),
    # Customers without orders satisfy "no Tmall orders": that condition stays apart from the merged two.
    "order conditions with a no-orders sibling": (
        {
            "op": "or",
            "rules": [
                orders("count", "eq", 0, shop="tmall"),
                orders("last_paid", "within_days", 30),
                orders("amount_cents", "between", [1000, 3000]),
            ],
        },
        {"c1", "c3", "c4", "c5"},
    ),
    "not of merged order conditions": (
        {
            "op": "not",
            "rule": {
                "op": "or",
                "rules": [orders("amount_cents", "gte", 20000), orders("last_paid", "within_days", 30)],
            },
        },
        {"c4", "c5"},
    ),
    "lifecycle": ({"op": "lifecycle", "stages": ["engaged", "repeat"]}, {"c1", "c2"}),
    "follow stores": ({"op": "follow", "store_ids": ["S1", "S3"]}, {"c1"}),
    "follow guides": ({"op": "follow", "guide_ids": ["G2"]}, {"c2"}),
    "not or": (
        {"op": "not", "rule": {"op": "or", "rules": [tag("skin"), {"op": "lifecycle", "stages": ["repeat"]}]}},
        {"c4", "c5"},
    ),
    "and of three": (
        {"op": "and", "rules": [tag("skin"), orders("count", "gte", 1), msgs("gte", 1, days=30)]},
        {"c1", "c3"},
    ),
    "nested": (
        {
            "op": "or",
            "rules": [
                {"op": "and", "rules": [tag("makeup"), {"op": "not", "rule": msgs("gte", 5, days=30)}]},
                {"op": "and", "rules": [attr("city", "eq", "杭州"), orders("count", "eq", 0)]},
            ],
        },
        {"c2", "c4"},
    ),
}


def _resolve(node: Any, ids: dict[str, int]) -> Any:
    if isinstance(node, dict):
        return {k: (ids.get(v, v) if k == "tag_id" else _resolve(v, ids)) for k, v in node.items()}
    if isinstance(node, list):
        return [ids.get(v, v) if isinstance(v, str) and v in ("S1", "S3", "G2") else _resolve(v, ids) for v in node]
    return node


@pytest.mark.parametrize("case", sorted(CASES))
def test_oltp_and_warehouse_agree(world: World, tmp_path: Path, case: str) -> None:
    ids = _build(world)
    result = warehouse_load(path=tmp_path / "w.duckdb")
    assert result.rows["customers_customer"] == Customer.objects.count()
    raw, expected = CASES[case]
    rule = rule_validate(actor=world.actor("hq"), rule=_resolve(raw, ids))
    with warehouse_connect(path=result.path) as db:
        for persona in PERSONAS:
            scope = Scope.of(world.actor(persona))
            want = expected & VISIBLE[persona]
            oltp = oltp_ids(rule=rule, scope=scope, now=NOW)
            duck = warehouse_ids(db=db, rule=rule, scope=scope, now=NOW)
            assert world.customer_keys(set(oltp)) == want, (persona, "oltp")
            assert duck == oltp, (persona, "duckdb")
            assert oltp_count(rule=rule, scope=scope, now=NOW) == len(want)
            assert warehouse_count(db=db, rule=rule, scope=scope, now=NOW) == len(want)
    # Brand B's HQ never sees brand A's customers, whatever the rule.
    outsider = Scope.of(world.actor("outsider"))
    assert world.customer_keys(set(oltp_ids(rule=rule, scope=outsider, now=NOW))) <= {"b1"}


BAD: list[tuple[Any, str]] = [
    ([], "rule"),
    ({"op": "xor"}, "rule.op"),
    ({"op": "and", "rules": []}, "rule.rules"),
    ({"op": "and", "rules": [tag("skin"), {"op": "has_tag"}]}, "rule.rules[1].tag_id"),
    ({"op": "or", "rules": [tag("skin"), tag("skin"), msgs("gte", 1, days=0)]}, "rule.rules[2].days"),
    (msgs("gte", 1), "rule.days"),
    (msgs("gte", 1, **{"from": "2026-02-10", "to": "2026-02-01"}), "rule.to"),
    (attr("phone_enc", "eq", "x"), "rule.field"),
    (attr("city", "gt", "x"), "rule.cmp"),
    (attr("intent_level", "eq", 9), "rule.value"),
    (attr("intent_level", "between", [3, 1]), "rule.value"),
    (attr("created_at", "eq", "2026-13-01"), "rule.value"),
    (attr("gender", "eq", True), "rule.value"),
    (orders("count", "within_days", 3), "rule.cmp"),
    ({"op": "lifecycle", "stages": ["vip"]}, "rule.stages[0]"),
    ({"op": "follow", "store_ids": [1], "guide_ids": [1]}, "rule.store_ids"),
    ({**tag("skin"), "extra": 1}, "rule.extra"),
    ({"op": "has_tag", "tag_id": 10**9}, "rule.tag_id"),
]


@pytest.mark.parametrize(("rule", "field"), BAD)
def test_bad_trees_name_the_node(world: World, rule: Any, field: str) -> None:
    ids = {"skin": world.tags["护肤"].id, "makeup": world.tags["彩妆"].id}
    with pytest.raises(SiyuError) as failed:
        rule_validate(actor=world.actor("hq"), rule=_resolve(rule, ids))
    # An unknown tag is not found (404); any other bad node is a tree that does not hold together (409).
    status = 404 if isinstance(rule, dict) and rule.get("tag_id") == 10**9 else 409
    assert (failed.value.status_code, failed.value.field) == (status, field)


def test_other_brands_and_out_of_scope_references_are_unknown(world: World) -> None:
    from siyu.tags.services import tag_group_create

    b_tag = tag_group_create(actor=world.actor("outsider"), name="会员", tags=["VIP"]).tags.get()
    with pytest.raises(SiyuError) as failed:
        rule_validate(
            actor=world.actor("hq"),
            rule={"op": "and", "rules": [tag("x"), tag("x")]}
            | {"rules": [{"op": "has_tag", "tag_id": world.tags["护肤"].id}, {"op": "has_tag", "tag_id": b_tag.id}]},
        )
    assert failed.value.field == "rule.rules[1].tag_id"
    # A store manager cannot name another store's guides (nor learn that they exist).
    with pytest.raises(SiyuError) as failed:
        rule_validate(actor=world.actor("store1"), rule={"op": "follow", "guide_ids": [world.guides["G2"].id]})
    assert failed.value.field == "rule.guide_ids"


def test_depth_and_size_limits(world: World) -> None:
    leaf: dict[str, Any] = {"op": "lifecycle", "stages": ["new"]}
    deep = leaf
    for _ in range(8):
        deep = {"op": "not", "rule": deep}
    with pytest.raises(SiyuError) as failed:
        rule_validate(actor=world.actor("hq"), rule=deep)
    assert failed.value.field == "rule" + ".rule" * 8
    wide = {"op": "or", "rules": [leaf] * 120}
    with pytest.raises(SiyuError) as failed:
        rule_validate(actor=world.actor("hq"), rule=wide)
    assert failed.value.field == "rule.rules[99]"
