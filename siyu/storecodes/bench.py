"""`siyu bench stores`: the store locator over a brand of N stores (default 10,000), M lookups.

Builds a throwaway brand in the configured database (deleted afterwards, even on failure): 70 % of the stores
around 40 Chinese cities, 30 % scattered over the country; weekly hours mixed (every day, longer weekends,
closed Mondays, overnight bars open Thursday to Saturday, 24 h) and 2 % temporarily closed. Lookups: 70 % near
a city, 20 % anywhere in the country (often nothing near), 10 % at sea; at random times of the week, nights and
weekends included. Prints latency percentiles of `store_locate` (the SQL prefilter plus the
haversine on the candidates) and, for comparison, of a brute-force scan of every store in Python.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import statistics
import time
from decimal import Decimal
from typing import Any

from django.db import connection
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from siyu.core.hours import parse_hours, spans_open, week_spans
from siyu.core.models import Region, Store, Tenant
from siyu.core.stack import percentile
from siyu.storecodes.geo import Point, haversine_m
from siyu.storecodes.selectors import store_locate

CITIES = [
    (39.90, 116.40), (31.23, 121.47), (23.13, 113.26), (22.54, 114.06), (30.27, 120.15), (32.06, 118.80),
    (30.57, 104.07), (29.56, 106.55), (30.59, 114.31), (34.34, 108.94), (36.07, 120.38), (38.04, 114.51),
    (41.80, 123.43), (45.80, 126.53), (43.82, 125.32), (36.65, 117.12), (34.75, 113.62), (28.23, 112.94),
    (26.07, 119.30), (24.48, 118.09), (25.04, 102.71), (26.65, 106.63), (22.82, 108.37), (20.04, 110.20),
    (31.82, 117.23), (28.68, 115.86), (37.87, 112.55), (40.84, 111.75), (36.06, 103.83), (43.83, 87.62),
    (38.49, 106.23), (36.62, 101.78), (29.65, 91.13), (39.08, 117.20), (31.30, 120.59), (31.49, 120.31),
    (29.87, 121.55), (22.27, 113.57), (23.02, 113.75), (24.80, 113.60),
]  # fmt: skip
CHINA = (18.0, 53.0, 73.0, 135.0)
HOURS = [parse_hours(text) for text in (
    "daily 10:00-22:00", "mon-fri 09:30-21:30; sat-sun 09:00-22:30", "mon closed; tue-sun 10:00-22:00",
    "mon-wed 18:00-24:00; thu-sat 18:00-02:00; sun closed", "daily 24h", "daily 07:00-11:00, 16:00-23:00",
)]  # fmt: skip
TEMPORARILY_CLOSED = 0.02


def _build(tenant: Tenant, region: Region, count: int, rng: random.Random, progress: Progress) -> list[Store]:
    job = progress.add_task(f"creating {count:,} stores", total=count)
    stores = []
    for i in range(count):
        if rng.random() < 0.7:
            lat0, lng0 = rng.choice(CITIES)
            lat, lng = lat0 + rng.gauss(0, 0.08), lng0 + rng.gauss(0, 0.08)
        else:
            lat, lng = rng.uniform(CHINA[0], CHINA[1]), rng.uniform(CHINA[2], CHINA[3])
        stores.append(
            Store(
                tenant=tenant,
                region=region,
                name=f"门店{i:05d}",
                code=f"B{i:05d}",
                latitude=Decimal(f"{lat:.6f}"),
                longitude=Decimal(f"{lng:.6f}"),
                hours=rng.choice(HOURS),
                temporarily_closed=rng.random() < TEMPORARILY_CLOSED,
            )
        )
    for start in range(0, count, 2000):
        Store.objects.bulk_create(stores[start : start + 2000])
        progress.advance(job, min(2000, count - start))
    return list(Store.objects.filter(tenant=tenant))


def _points(count: int, rng: random.Random) -> list[tuple[Point, dt.datetime]]:
    points = []
    week = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)  # a Monday
    for _ in range(count):
        kind = rng.random()
        if kind < 0.7:
            lat0, lng0 = rng.choice(CITIES)
            point = Point(lat0 + rng.gauss(0, 0.06), lng0 + rng.gauss(0, 0.06))
        elif kind < 0.9:
            point = Point(rng.uniform(CHINA[0], CHINA[1]), rng.uniform(CHINA[2], CHINA[3]))
        else:
            point = Point(rng.uniform(10.0, 20.0), rng.uniform(125.0, 140.0))  # western Pacific
        points.append((point, week + dt.timedelta(minutes=rng.randrange(7 * 24 * 60))))
    return points


Spans = dict[int, tuple[tuple[int, int], ...] | None]


def _spans(stores: list[Store]) -> Spans:
    """Each store's hours as minutes of the week, read once (None: no hours, open), so the scan compares numbers."""
    return {s.id: week_spans(s.hours) if s.hours else None for s in stores}


def _brute(stores: list[Store], spans: Spans, point: Point, local: dt.datetime, radius: float) -> Store | None:
    best: tuple[float, str, int] | None = None
    found = None
    weekday, minute = local.weekday(), local.hour * 60 + local.minute
    for s in stores:
        week = spans[s.id]
        if s.temporarily_closed or (week is not None and not spans_open(week, weekday, minute)):
            continue
        d = haversine_m(point.latitude, point.longitude, float(s.latitude), float(s.longitude))  # type: ignore[arg-type]
        if d <= radius and (best is None or (d, s.code, s.id) < best):
            best, found = (d, s.code, s.id), s
    return found


def run(options: dict[str, Any], console: Console) -> None:
    n_stores, n_lookups = options["stores"], options["lookups"]
    rng = random.Random(20260302)  # noqa: S311 - reproducible test data, not secrets
    tenant = Tenant.objects.create(name="bench stores", slug=f"bench-stores-{secrets.token_hex(4)}")
    try:
        region = Region.objects.create(tenant=tenant, name="全国", code="ALL")
        with Progress(console=console, transient=True) as progress:
            stores = _build(tenant, region, n_stores, rng, progress)
            points = _points(n_lookups, rng)
            store_locate(tenant_id=tenant.id, point=points[0][0], at=points[0][1])  # warm the connection
            timings, found = [], 0
            job = progress.add_task(f"{n_lookups:,} lookups", total=n_lookups)
            started = time.perf_counter()
            for point, at in points:
                t0 = time.perf_counter()
                result = store_locate(tenant_id=tenant.id, point=point, at=at)
                timings.append((time.perf_counter() - t0) * 1000)
                found += result.store is not None
                progress.advance(job)
            elapsed = time.perf_counter() - started
            brute_n = min(200, n_lookups)
            brute, mismatches, spans = [], 0, _spans(stores)
            job = progress.add_task(f"brute force on {brute_n} lookups", total=brute_n)
            for point, at in points[:brute_n]:
                result = store_locate(tenant_id=tenant.id, point=point, at=at)
                t0 = time.perf_counter()
                expected = _brute(stores, spans, point, result.local_time, result.radius_m)
                brute.append((time.perf_counter() - t0) * 1000)
                mismatches += (expected.id if expected else None) != (result.store.id if result.store else None)
                progress.advance(job)
        table = Table(title=f"store locator: {n_stores:,} stores, {n_lookups:,} lookups ({connection.vendor})")
        for column in ("", "p50 ms", "p95 ms", "p99 ms", "max ms", "lookups/s"):
            table.add_column(column, justify="right" if column else "left")
        table.add_row(
            "store_locate",
            f"{statistics.median(timings):.2f}",
            f"{percentile(sorted(timings), 0.95):.2f}",
            f"{percentile(sorted(timings), 0.99):.2f}",
            f"{max(timings):.2f}",
            f"{n_lookups / elapsed:,.0f}",
        )
        table.add_row(
            "brute force (Python scan)",
            f"{statistics.median(brute):.2f}",
            f"{percentile(sorted(brute), 0.95):.2f}",
            f"{percentile(sorted(brute), 0.99):.2f}",
            f"{max(brute):.2f}",
            f"{1000 / statistics.mean(brute):,.0f}",
        )
        console.print(table)
        console.print(
            f"found an open store for {found / n_lookups:.0%} of lookups, fallback for the rest; "
            f"{mismatches} disagreement(s) with brute force on {brute_n} lookups"
        )
    finally:
        Store.objects.filter(tenant=tenant).delete()
        Region.objects.filter(tenant=tenant).delete()
        tenant.delete()
