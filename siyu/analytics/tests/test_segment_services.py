"""Saved segments: counts in the caller's scope, scheduled refresh through the worker's sweep, audited CSV export."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
from django.test import override_settings

from siyu.analytics.models import Segment, SegmentExport
from siyu.analytics.segments import RuleInvalid
from siyu.analytics.selectors import segment_export_path
from siyu.analytics.services import (
    segment_create,
    segment_export_download,
    segment_export_execute,
    segment_export_request,
    segment_next_refresh,
    segment_refresh_due,
    segment_update,
)
from siyu.core import pii
from siyu.core.errors import PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog
from siyu.tags.services import customer_tag_add
from siyu.testing import World

UTC = dt.UTC


def _skin(world: World, name: str = "护肤人群", **kwargs: object) -> Segment:
    return segment_create(
        actor=world.actor("hq"), name=name, rule={"op": "has_tag", "tag_id": world.tags["护肤"].id}, **kwargs
    )


def test_next_refresh_is_hourly_or_daily_in_shanghai() -> None:
    at = dt.datetime(2026, 3, 1, 1, 20, tzinfo=UTC)  # 09:20 in Shanghai
    assert segment_next_refresh(schedule="hourly", daily_at=None, after=at) == dt.datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    # 08:30 Shanghai has passed today: tomorrow's, which is 00:30 UTC.
    assert segment_next_refresh(schedule="daily", daily_at=dt.time(8, 30), after=at) == dt.datetime(
        2026, 3, 2, 0, 30, tzinfo=UTC
    )
    assert segment_next_refresh(schedule="daily", daily_at=dt.time(21, 0), after=at) == dt.datetime(
        2026, 3, 1, 13, 0, tzinfo=UTC
    )
    assert segment_next_refresh(schedule="manual", daily_at=None, after=at) is None


def test_create_counts_and_refuses_bad_input(world: World) -> None:
    segment = _skin(world, schedule="daily", daily_at=dt.time(8, 0))
    assert (segment.cached_count, segment.next_refresh_at is not None) == (2, True)
    assert AuditLog.objects.filter(action="segment.create", target_id=str(segment.id)).exists()
    before = Segment.objects.count()
    with pytest.raises(RuleInvalid) as failed:
        segment_create(actor=world.actor("hq"), name="坏", rule={"op": "and", "rules": [{"op": "nope"}]})
    assert (failed.value.status_code, failed.value.field) == (409, "rule.rules[0].op")
    with pytest.raises(ValidationFailed) as failed:
        _skin(world, name="每日", schedule="daily")
    assert failed.value.field == "daily_at"
    assert Segment.objects.count() == before
    # A store manager uses the segment but may not change HQ's.
    with pytest.raises(PermissionDenied):
        segment_update(actor=world.actor("store1"), segment_id=segment.id, name="改名")


def test_scheduled_refresh_is_picked_up_by_the_sweep(world: World, django_capture_on_commit_callbacks) -> None:
    segment = _skin(world, schedule="hourly")
    customer_tag_add(actor=world.actor("hq"), customer_id=world.customers["c2"].id, tag_id=world.tags["护肤"].id)
    assert Segment.objects.get(id=segment.id).cached_count == 2
    # Not due yet: nothing happens.
    assert segment_refresh_due() == 0
    due = Segment.objects.get(id=segment.id).next_refresh_at
    with (
        override_settings(
            TASKS={"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["default"]}}
        ),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert segment_refresh_due(now=due + dt.timedelta(seconds=1)) == 1
    refreshed = Segment.objects.get(id=segment.id)
    assert refreshed.cached_count == 3
    assert refreshed.next_refresh_at == due + dt.timedelta(hours=1)
    # The due time moved on: a second sweep at the same instant enqueues nothing.
    assert segment_refresh_due(now=due + dt.timedelta(seconds=1)) == 0


def test_export_is_masked_scoped_and_audited(world: World, tmp_path: Path) -> None:
    segment = _skin(world)
    with override_settings(MEDIA_ROOT=str(tmp_path)):
        export = segment_export_request(actor=world.actor("region1"), segment_id=segment.id, ip="10.0.0.1")
        with pytest.raises(PermissionDenied):
            segment_export_request(actor=world.actor("region1"), segment_id=segment.id, reveal=True)
        done = segment_export_execute(export_id=export.id)
        assert done is not None
        assert (done.status, done.progress, done.total) == (SegmentExport.Status.DONE, 1, 1)
        # Claimed once: a second delivery of the job does nothing.
        assert segment_export_execute(export_id=export.id) is None
        path = segment_export_path(done)
        with path.open(encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
        # Region R1 sees c1 (tagged 护肤) but not c3 (another region's); the phone is masked.
        assert rows[1][:3] == [
            str(world.customers["c1"].id),
            pii.mask_name(world.names["c1"]),
            pii.mask_phone(world.phones["c1"]),
        ]
        assert len(rows) == 2
        assert world.phones["c1"] not in path.read_text(encoding="utf-8-sig")
        assert AuditLog.objects.filter(action="pii.export", target_id=str(export.id)).count() == 1
        file = segment_export_download(actor=world.actor("region1"), export_id=export.id)
        assert file.path == path
        assert AuditLog.objects.filter(action="segment_export.download", target_id=str(export.id)).count() == 1
