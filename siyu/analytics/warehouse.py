"""The DuckDB warehouse (数据仓库): a file copied from the OLTP tables the query layer reads.

A full reload for now (issue 7 makes it incremental from the event log's id cursor): each table is written to a
CSV in a temporary directory, loaded with COPY into a fresh database file, and the file is swapped in with an
atomic rename, so readers never see a half-loaded warehouse. Tables and columns keep their OLTP names, and
instants are stored as UTC TIMESTAMPs, so siyu.analytics.query compiles one rule tree to the same query for both.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from django.conf import settings
from django.db import models

from siyu.analytics.models import Event
from siyu.commerce.models import Order
from siyu.core.models import Guide
from siyu.customers.models import Customer, FollowRelation
from siyu.tags.models import CustomerTag

# table → (model, [(column, DuckDB type)])
TABLES: dict[str, tuple[type[models.Model], list[tuple[str, str]]]] = {
    "customers_customer": (
        Customer,
        [
            ("id", "BIGINT"),
            ("tenant_id", "BIGINT"),
            ("merged_into_id", "BIGINT"),
            ("gender", "INTEGER"),
            ("city", "VARCHAR"),
            ("lifecycle_stage", "VARCHAR"),
            ("intent_level", "INTEGER"),
            ("source", "VARCHAR"),
            ("owner_guide_id", "BIGINT"),
            ("created_at", "TIMESTAMP"),
        ],
    ),
    "customers_followrelation": (
        FollowRelation,
        [
            ("id", "BIGINT"),
            ("tenant_id", "BIGINT"),
            ("customer_id", "BIGINT"),
            ("guide_id", "BIGINT"),
            ("status", "VARCHAR"),
            ("added_at", "TIMESTAMP"),
        ],
    ),
    "core_guide": (Guide, [("id", "BIGINT"), ("tenant_id", "BIGINT"), ("store_id", "BIGINT"), ("status", "VARCHAR")]),
    "tags_customertag": (
        CustomerTag,
        [("id", "BIGINT"), ("tenant_id", "BIGINT"), ("customer_id", "BIGINT"), ("tag_id", "BIGINT")],
    ),
    "commerce_order": (
        Order,
        [
            ("id", "BIGINT"),
            ("tenant_id", "BIGINT"),
            ("customer_id", "BIGINT"),
            ("shop", "VARCHAR"),
            ("status", "VARCHAR"),
            ("amount_cents", "BIGINT"),
            ("product_series", "VARCHAR"),
            ("paid_at", "TIMESTAMP"),
        ],
    ),
    "analytics_event": (
        Event,
        [
            ("id", "BIGINT"),
            ("tenant_id", "BIGINT"),
            ("customer_id", "BIGINT"),
            ("type", "VARCHAR"),
            ("occurred_at", "TIMESTAMP"),
        ],
    ),
}


def warehouse_path() -> Path:
    """SIYU_WAREHOUSE_PATH, or warehouse.duckdb in the data directory."""
    return Path(getattr(settings, "SIYU_WAREHOUSE_PATH", "") or Path(settings.VAR_DIR) / "warehouse.duckdb")


def _cell(value: Any) -> Any:
    if value is None:
        return ""  # COPY reads an empty unquoted field as NULL
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    return value


@dataclass(frozen=True)
class LoadResult:
    path: Path
    rows: dict[str, int]


def warehouse_load(*, path: Path | None = None) -> LoadResult:
    """Reload every table from the OLTP database into a new warehouse file and swap it in."""
    target = path or warehouse_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fresh = Path(tmp) / "load.duckdb"
        db = duckdb.connect(str(fresh))
        try:
            for table, (model, columns) in TABLES.items():
                names = [c for c, _type in columns]
                db.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns)})")
                csv_path = Path(tmp) / f"{table}.csv"
                count = 0
                with csv_path.open("w", newline="", encoding="utf-8") as fh:
                    writer = csv.writer(fh)
                    for row in model.objects.order_by().values_list(*names).iterator(chunk_size=20000):
                        writer.writerow([_cell(v) for v in row])
                        count += 1
                if count:
                    # Strings stay strings ('' is a city too): only the nullable id columns read '' as NULL.
                    nullable = [c for c in names if c.endswith("_id") and c != "tenant_id"]
                    db.execute(
                        f"COPY {table} FROM '{csv_path.as_posix()}' (HEADER false, FORCE_NOT_NULL "
                        f"({', '.join(c for c in names if c not in nullable)}))"
                    )
                rows[table] = count
            db.execute("CHECKPOINT")
        finally:
            db.close()
        os.replace(fresh, target)
    return LoadResult(path=target, rows=rows)


@contextmanager
def warehouse_connect(*, path: Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the warehouse file."""
    db = duckdb.connect(str(path or warehouse_path()), read_only=True)
    try:
        yield db
    finally:
        db.close()
