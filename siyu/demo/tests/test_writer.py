"""`rows_insert`, the loader's bulk path: it must store exactly what the ORM would store."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from siyu.analytics.models import Event
from siyu.analytics.services import event_build, event_record
from siyu.core.models import Tenant
from siyu.demo.services import events_insert, rows_insert
from siyu.tags.models import TagGroup

pytestmark = pytest.mark.django_db

MOMENTS = [
    dt.datetime(2026, 3, 8, 9, 30, tzinfo=dt.UTC),
    dt.datetime(2026, 3, 8, 9, 30, 1, 250_000, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 11, 0, 0, 5, tzinfo=ZoneInfo("Asia/Shanghai")),  # not UTC: converted on the way in
]


def _raw(ids: list[int]) -> list[tuple[object, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT type, occurred_at, properties, customer_id FROM {Event._meta.db_table} "  # noqa: S608
            f"WHERE id IN ({', '.join(['%s'] * len(ids))}) ORDER BY id",
            ids,
        )
        return cursor.fetchall()


def test_bulk_rows_are_stored_exactly_like_orm_rows() -> None:
    tenant = Tenant.objects.create(name="澄光", slug="writer")
    properties = {"tag_id": 7, "tag": "敏感肌", "source": "keyword", "fields": ["city"]}
    orm_ids = [
        event_record(tenant_id=tenant.id, type="tag.added", customer_id=i, occurred_at=m, properties=properties).id
        for i, m in enumerate(MOMENTS)
    ]
    written = events_insert(
        events=[
            event_build(tenant_id=tenant.id, type="tag.added", customer_id=i, occurred_at=m, properties=properties)
            for i, m in enumerate(MOMENTS)
        ]
    )
    assert written == len(MOMENTS)
    bulk = Event.objects.filter(tenant=tenant).exclude(id__in=orm_ids).order_by("id")
    bulk_ids = list(bulk.values_list("id", flat=True))
    assert _raw(bulk_ids) == _raw(orm_ids)
    read_back = list(Event.objects.filter(id__in=bulk_ids).order_by("id"))
    assert [e.occurred_at for e in read_back] == MOMENTS
    assert all(e.properties == properties for e in read_back)
    assert all(e.recorded_at is not None for e in read_back)  # auto_now_add filled in


def test_defaults_are_filled_and_progress_is_reported() -> None:
    tenant = Tenant.objects.create(name="澄光", slug="writer")
    reported: list[int] = []
    count = rows_insert(
        model=TagGroup,
        columns=("tenant_id", "name"),
        rows=((tenant.id, f"组{i}") for i in range(12)),
        on_rows=reported.append,
    )
    assert count == 12
    assert sum(reported) == 12
    group = TagGroup.objects.get(tenant=tenant, name="组3")
    assert (group.order, group.wecom_group_id) == (0, "")
    assert group.created_at is not None


def test_unknown_or_missing_columns_are_refused() -> None:
    tenant = Tenant.objects.create(name="澄光", slug="writer")
    with pytest.raises(ValueError, match="no column colour"):
        rows_insert(model=TagGroup, columns=("tenant_id", "colour"), rows=[])
    with pytest.raises(ValueError, match=r"TagGroup\.name needs a value"):
        rows_insert(model=TagGroup, columns=("tenant_id",), rows=[(tenant.id,)])
