"""The live count's plan on SQLite: order conditions read the orders once, from the covering index alone.

Without the index (or with a rule column it lacks) SQLite fetches every order row and sorts them by customer, and
the "big spenders or recent" count of the demo brand takes 0.2-0.6 s instead of 60-80 ms (docs/benchmarks.md). The
plan does not depend on the rows (the test database has no statistics), so an empty database shows it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection

from siyu.analytics.query import Scope, compile_count

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the plan pinned here is SQLite's"),
]

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
HQ = Scope(tenant_id=1, brand_wide=True)
REGION = Scope(tenant_id=1, brand_wide=False, store_ids=(1, 2, 3))


def _plan(rule: dict[str, Any], scope: Scope) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + compile_count(rule=rule, scope=scope, now=NOW, dialect="sqlite"))
        return [row[-1] for row in cursor.fetchall()]


def _order_steps(plan: list[str]) -> list[str]:
    """The plan's steps that read commerce_order (aliased t) or sort for grouping."""
    return [
        step
        for step in plan
        if "order_customer" in step or "commerce_order" in step or step == "SCAN t" or "TEMP B-TREE" in step
    ]


BIG_SPENDERS_OR_RECENT = {
    "op": "or",
    "rules": [
        {"op": "orders", "measure": "amount_cents", "cmp": "gte", "value": 50000, "shop": "tmall"},
        {"op": "orders", "measure": "last_paid", "cmp": "within_days", "value": 90},
    ],
}


@pytest.mark.parametrize("scope", [HQ, REGION], ids=["hq", "region"])
def test_order_sum_or_recency_reads_orders_once_from_the_covering_index(scope: Scope) -> None:
    steps = _order_steps(_plan(BIG_SPENDERS_OR_RECENT, scope))
    assert steps == ["SEARCH t USING COVERING INDEX order_customer_cover (tenant_id=?)"]


def test_every_order_column_a_rule_reads_is_in_the_index() -> None:
    rule = {
        "op": "and",
        "rules": [
            {"op": "orders", "measure": "count", "cmp": "gte", "value": 2, "product_series": "精华", "shop": "jd"},
            {"op": "orders", "measure": "last_paid", "cmp": "between", "value": ["2026-01-01", "2026-02-01"]},
            {"op": "orders", "measure": "amount_cents", "cmp": "lt", "value": 100, "shop": "tmall"},
        ],
    }
    steps = _order_steps(_plan(rule, HQ))
    # The third condition holds for customers without orders too, so it is its own pass; both from the index.
    assert steps == ["SEARCH t USING COVERING INDEX order_customer_cover (tenant_id=?)"] * 2


def test_bought_at_all_reads_the_index_not_the_table() -> None:
    rule = {"op": "orders", "measure": "count", "cmp": "gte", "value": 1}
    assert _order_steps(_plan(rule, HQ)) == ["SEARCH t USING COVERING INDEX order_customer_cover (tenant_id=?)"]
