"""CSV exports and the right to erasure: an erasure withdraws every export that may hold the person, exports
expire after SIYU_EXPORT_RETENTION_DAYS, and an export running while its rows are erased is never offered."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.analytics import privacy as analytics_privacy
from siyu.analytics.models import SegmentExport
from siyu.analytics.selectors import segment_export_path
from siyu.analytics.services import segment_create, segment_export_execute, segment_export_request
from siyu.console.tests.conftest import login
from siyu.core.errors import Conflict
from siyu.core.exports import csv_export_execute, csv_exports_expire
from siyu.core.models import AuditLog
from siyu.core.scopes import Actor
from siyu.customers import privacy as customers_privacy
from siyu.customers.models import CustomerExport
from siyu.customers.selectors import customer_export_path
from siyu.customers.services import customer_export_download, customer_export_execute, customer_export_request
from siyu.privacy import services
from siyu.tags.services import customer_tag_add
from siyu.testing import World


@pytest.fixture(autouse=True)
def _media(settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def _customer_export(world: World, persona: str) -> CustomerExport:
    export = customer_export_request(actor=world.actor(persona), filters={}, reveal=False)
    done = customer_export_execute(export_id=export.id)
    assert done is not None
    assert done.status == CustomerExport.Status.DONE
    assert customer_export_path(done).is_file()
    return done


def _segment_export(world: World) -> SegmentExport:
    hq = world.actor("hq")
    customer_tag_add(actor=hq, customer_id=world.customers["c1"].id, tag_id=world.tags["护肤"].id)
    segment = segment_create(actor=hq, name="护肤", rule={"op": "has_tag", "tag_id": world.tags["护肤"].id})
    export = segment_export_request(actor=hq, segment_id=segment.id)
    done = segment_export_execute(export_id=export.id)
    assert done is not None
    assert done.status == SegmentExport.Status.DONE
    assert segment_export_path(done).is_file()
    return done


def test_erasure_withdraws_the_brands_exports_after_commit(
    world: World, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    mine = _customer_export(world, "hq")
    segment = _segment_export(world)
    other_brand = _customer_export(world, "outsider")
    c1 = world.customers["c1"].id

    with django_capture_on_commit_callbacks(execute=False) as pending:
        request = services.privacy_erase(actor=world.actor("hq"), customer_id=c1, reason="客户要求删除")
        # Before the commit the files are still there: a rolled-back erasure must not take them.
        assert customer_export_path(mine).is_file()
    for callback in pending:
        callback()

    assert request.counts["customers.exports_withdrawn"] == 1
    assert request.counts["analytics.exports_withdrawn"] == 1
    for model, export, path_of in (
        (CustomerExport, mine, customer_export_path),
        (SegmentExport, segment, segment_export_path),
    ):
        row = model.objects.get(id=export.id)
        assert row.status == "expired"
        assert "erased" in row.error
        assert not path_of(row).exists()
    with pytest.raises(Conflict) as caught:
        customer_export_download(actor=world.actor("hq"), export_id=mine.id)
    assert "expired" in caught.value.message
    # The other brand's export is untouched.
    assert CustomerExport.objects.get(id=other_brand.id).status == "done"
    assert customer_export_path(other_brand).is_file()
    # An export asked for after the erasure is offered as usual.
    assert _customer_export(world, "hq").status == "done"


def test_retention_sweep_expires_only_old_exports(
    world: World, settings: SettingsWrapper, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    settings.SIYU_EXPORT_RETENTION_DAYS = 7
    old, recent = _customer_export(world, "hq"), _customer_export(world, "region1")
    old_segment = _segment_export(world)
    eight_days_ago = timezone.now() - dt.timedelta(days=8)
    CustomerExport.objects.filter(id=old.id).update(created_at=eight_days_ago)
    SegmentExport.objects.filter(id=old_segment.id).update(created_at=eight_days_ago)

    with django_capture_on_commit_callbacks(execute=True):
        assert customers_privacy.exports_expire_due() == 1
        assert analytics_privacy.exports_expire_due() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert customers_privacy.exports_expire_due() == 0  # idempotent

    assert CustomerExport.objects.get(id=old.id).status == "expired"
    assert "7 days" in CustomerExport.objects.get(id=old.id).error
    assert not customer_export_path(old).exists()
    assert not segment_export_path(old_segment).exists()
    assert CustomerExport.objects.get(id=recent.id).status == "done"
    assert customer_export_path(recent).is_file()


def test_an_export_expired_while_it_runs_is_never_offered(
    world: World, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks, caplog: Any
) -> None:
    export = customer_export_request(actor=world.actor("hq"), filters={}, reveal=False)

    def rows(row: CustomerExport, actor: Actor) -> tuple[int, Iterator[list[list[Any]]]]:
        def batches() -> Iterator[list[list[Any]]]:
            yield [["1", "王小明"]]
            # The erasure commits while the job is between batches.
            csv_exports_expire(
                model=CustomerExport,
                path_of=customer_export_path,
                tenant_id=row.tenant_id,
                created_before=timezone.now(),
                reason="withdrawn: a customer's data was erased",
            )
            yield [["2", "李雷"]]

        return 2, batches()

    with caplog.at_level(logging.INFO), django_capture_on_commit_callbacks(execute=True):
        result = csv_export_execute(
            model=CustomerExport,
            export_id=export.id,
            path_of=customer_export_path,
            header=["id", "name"],
            rows=rows,
            audit_target="customer_export",
            audit_detail=lambda e: {},
        )

    assert result is not None
    assert (result.status, result.file_name) == ("expired", "")
    assert not customer_export_path(result).exists()
    assert not AuditLog.objects.filter(action="pii.export", target_id=str(export.id)).exists()
    assert "expired while it ran" in caplog.text


def test_console_shows_an_expired_export_and_stops_polling(
    client: Client, world: World, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    export = _customer_export(world, "hq")
    with django_capture_on_commit_callbacks(execute=True):
        services.privacy_erase(actor=world.actor("hq"), customer_id=world.customers["c1"].id, reason="客户要求删除")
    login(client, "hq")

    page = client.get(reverse("console:customer_export_status", args=[export.id])).content.decode()

    assert 'data-export-status="expired"' in page
    assert "该导出文件已删除" in page
    assert "every 1s" not in page  # nothing left to wait for
    assert client.get(reverse("console:customer_export_file", args=[export.id])).status_code == 409
