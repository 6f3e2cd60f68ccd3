"""`siyu bench segments`: the live count of the segment builder, on the OLTP database and on the DuckDB warehouse.

Five realistic rule trees over the demo brand (`--tenant`, default demo; run `siyu demo` first), each counted
`--repeat` times for HQ (the whole brand) and for a region manager, on the OLTP database (SQLite or PostgreSQL,
whichever is configured) and on a freshly loaded warehouse file. Prints p50 and p95 latency per rule and engine
(the builder's budget is 300 ms) and checks that both engines give the same count.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from django.utils import timezone
from rich.console import Console
from rich.table import Table

from siyu.analytics.query import Scope, oltp_count, warehouse_count
from siyu.analytics.segments import rule_validate
from siyu.analytics.warehouse import warehouse_connect, warehouse_load
from siyu.core.models import Membership, Role, Store, Tenant
from siyu.core.scopes import Actor
from siyu.customers.models import Customer
from siyu.tags.models import CustomerTag


def _rules(tenant: Tenant) -> dict[str, dict[str, Any]]:
    tags = [
        tag_id
        for tag_id, _n in Counter(
            CustomerTag.objects.filter(tenant=tenant).values_list("tag_id", flat=True).iterator()
        ).most_common(2)
    ]
    while len(tags) < 2:
        tags.append(tags[0] if tags else 1)
    cities = Counter(Customer.objects.filter(tenant=tenant).values_list("city", flat=True).iterator()).most_common(1)
    city = cities[0][0] if cities and cities[0][0] else "上海"
    stores = list(Store.objects.filter(tenant=tenant).order_by("id").values_list("id", flat=True)[:3])
    return {
        "tag and bought": {
            "op": "and",
            "rules": [
                {"op": "has_tag", "tag_id": tags[0]},
                {"op": "orders", "measure": "count", "cmp": "gte", "value": 1},
            ],
        },
        "buyers without tag": {
            "op": "and",
            "rules": [
                {"op": "lifecycle", "stages": ["first_purchase", "repeat"]},
                {"op": "not", "rule": {"op": "has_tag", "tag_id": tags[1]}},
            ],
        },
        "chatty in 30 days": {"op": "event_count", "type": "message.received", "cmp": "gte", "value": 3, "days": 30},
        "big spenders or recent": {
            "op": "or",
            "rules": [
                {"op": "orders", "measure": "amount_cents", "cmp": "gte", "value": 50000, "shop": "tmall"},
                {"op": "orders", "measure": "last_paid", "cmp": "within_days", "value": 90},
            ],
        },
        "stores, city, intent": {
            "op": "and",
            "rules": [
                {"op": "follow", "store_ids": stores or [1]},
                {"op": "attr", "field": "city", "cmp": "eq", "value": city},
                {"op": "attr", "field": "intent_level", "cmp": "gte", "value": 2},
            ],
        },
    }


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(options: dict[str, Any], console: Console) -> None:
    tenant = Tenant.objects.filter(slug=options["tenant"]).first()
    if tenant is None:
        raise LookupError(f"no brand with slug {options['tenant']!r}: run `siyu demo` first")
    repeat = max(3, options["repeat"])
    hq = Actor.system(tenant.id)
    actors = {"HQ": hq}
    region = Membership.objects.filter(tenant=tenant, role=Role.REGION_MANAGER).first()
    if region is not None:
        actors["region"] = Actor.from_membership(region)
    customers = Customer.objects.filter(tenant=tenant, merged_into__isnull=True).count()
    rules = {name: rule_validate(actor=hq, rule=rule) for name, rule in _rules(tenant).items()}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        loaded = warehouse_load(path=Path(tmp) / "bench.duckdb")
        load_s = time.perf_counter() - started
        console.print(
            f"[bold]segments[/bold]: brand {tenant.slug} with {customers:,} customers; warehouse loaded in "
            f"{load_s:.1f} s ({', '.join(f'{t} {n:,}' for t, n in loaded.rows.items())})"
        )
        table = Table("rule", "scope", "count", "OLTP p50 ms", "OLTP p95 ms", "DuckDB p50 ms", "DuckDB p95 ms", "same")
        now = timezone.now()
        with warehouse_connect(path=loaded.path) as db:
            for name, rule in rules.items():
                for scope_name, actor in actors.items():
                    scope = Scope.of(actor)
                    timings: dict[str, list[float]] = {"oltp": [], "duckdb": []}
                    counts: dict[str, int] = {}
                    for _ in range(repeat):
                        t0 = time.perf_counter()
                        counts["oltp"] = oltp_count(rule=rule, scope=scope, now=now)
                        timings["oltp"].append((time.perf_counter() - t0) * 1000)
                        t0 = time.perf_counter()
                        counts["duckdb"] = warehouse_count(db=db, rule=rule, scope=scope, now=now)
                        timings["duckdb"].append((time.perf_counter() - t0) * 1000)
                    table.add_row(
                        name,
                        scope_name,
                        f"{counts['oltp']:,}",
                        f"{statistics.median(timings['oltp']):.1f}",
                        f"{_pct(timings['oltp'], 0.95):.1f}",
                        f"{statistics.median(timings['duckdb']):.1f}",
                        f"{_pct(timings['duckdb'], 0.95):.1f}",
                        "yes" if counts["oltp"] == counts["duckdb"] else "[red]NO[/red]",
                    )
        console.print(table)
