"""Customer export services and selectors: validation, permissions, scoping, batching, download.

These run inside the test transaction; the job itself is exercised end to end in test_export_jobs.py.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog, Membership, Role
from siyu.core.scopes import Actor
from siyu.customers.models import CustomerExport
from siyu.customers.selectors import customer_export_get, customer_export_list, customer_export_path
from siyu.customers.services import (
    EXPORT_HEADER,
    customer_export_download,
    customer_export_execute,
    customer_export_request,
)
from siyu.testing import World


@pytest.fixture(autouse=True)
def _db_backend_and_media(settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "fast"]}}
    settings.MEDIA_ROOT = tmp_path / "media"


def _rows(export: CustomerExport) -> list[list[str]]:
    with customer_export_path(export).open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


def test_request_stores_clean_filters_audits_and_enqueues_on_commit(
    world: World, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    actor = world.actor("region1")
    filters = {"q": " 王 ", "tag_ids": [str(world.tags["护肤"].id)], "lifecycle_stage": "new",
               "store_id": world.stores["S1"].id, "guide_id": str(world.guides["G1"].id)}
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        export = customer_export_request(actor=actor, filters=filters, reveal=False, ip="10.1.2.3")
        assert DBTaskResult.objects.count() == 0

    assert len(callbacks) == 1
    job = DBTaskResult.objects.get()
    assert (job.task_path, job.args_kwargs) == (
        "siyu.customers.tasks.customer_export_run", {"args": [export.id], "kwargs": {}}
    )
    export = CustomerExport.objects.get(id=export.id)
    assert (export.tenant_id, export.requested_by_id, export.requested_ip, export.reveal) == (
        world.tenant_a.id, world.users["region1"].id, "10.1.2.3", False
    )
    assert (export.status, export.progress, export.total, export.file_name) == ("pending", 0, 0, "")
    clean = {"q": "王", "tag_ids": [world.tags["护肤"].id], "lifecycle_stage": "new",
             "store_id": world.stores["S1"].id, "guide_id": world.guides["G1"].id}
    assert export.filters == clean
    audit = AuditLog.objects.get(action="customer_export.request")
    assert (audit.actor_id, audit.target_type, audit.target_id, audit.detail, audit.ip) == (
        world.users["region1"].id, "customer_export", str(export.id), {"filters": clean, "revealed": False},
        "10.1.2.3",
    )


def test_rolled_back_request_enqueues_nothing(
    world: World, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                customer_export_request(actor=world.actor("hq"), filters={}, reveal=True)
                raise RuntimeError("the caller's transaction fails after the request")
        except RuntimeError:
            pass
    assert callbacks == []
    assert DBTaskResult.objects.count() == 0
    assert CustomerExport.objects.count() == 0


@pytest.mark.parametrize("persona", ["guide1", "store1", "region1", "franchisee1"])
def test_only_hq_may_request_a_revealed_export(
    world: World, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks, persona: str
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(PermissionDenied) as exc:
        customer_export_request(actor=world.actor(persona), filters={}, reveal=True)
    assert (exc.value.status_code, exc.value.field) == (403, "reveal")
    assert callbacks == []
    assert DBTaskResult.objects.count() == 0
    assert CustomerExport.objects.count() == 0
    assert AuditLog.objects.filter(action__startswith="customer_export").count() == 0


def test_hq_may_request_a_revealed_export(
    world: World, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        export = customer_export_request(actor=world.actor("hq"), filters={}, reveal=True)
    assert CustomerExport.objects.get(id=export.id).reveal is True
    assert DBTaskResult.objects.count() == 1


BAD_FILTERS: list[tuple[str, Callable[[World], Any], str]] = [
    ("not an object", lambda w: ["q"], "filters"),
    ("unknown key", lambda w: {"phone": "138"}, "phone"),
    ("q too long", lambda w: {"q": "王" * 101}, "q"),
    ("q not text", lambda w: {"q": 5}, "q"),
    ("tag_ids not a list", lambda w: {"tag_ids": w.tags["护肤"].id}, "tag_ids"),
    ("tag id not an id", lambda w: {"tag_ids": ["abc"]}, "tag_ids"),
    ("tag of no brand", lambda w: {"tag_ids": [10**9]}, "tag_ids"),
    ("stage not a choice", lambda w: {"lifecycle_stage": "vip"}, "lifecycle_stage"),
    ("store out of scope", lambda w: {"store_id": w.stores["S3"].id}, "store_id"),
    ("store of brand B", lambda w: {"store_id": w.stores["B1"].id}, "store_id"),
    ("store id a bool", lambda w: {"store_id": True}, "store_id"),
    ("guide out of scope", lambda w: {"guide_id": w.guides["G3"].id}, "guide_id"),
    ("guide id negative", lambda w: {"guide_id": -1}, "guide_id"),
]


@pytest.mark.parametrize(("case", "make", "field"), BAD_FILTERS, ids=[c[0] for c in BAD_FILTERS])
def test_bad_filters_name_the_field(
    world: World,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    case: str,
    make: Callable[[World], Any],
    field: str,
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(ValidationFailed) as exc:
        customer_export_request(actor=world.actor("region1"), filters=make(world), reveal=False)
    assert (exc.value.status_code, exc.value.field) == (422, field)
    assert callbacks == []
    assert CustomerExport.objects.count() == 0


def test_brand_b_tags_are_not_found_for_brand_a(world: World) -> None:
    other = world.tags["护肤"].id
    with pytest.raises(ValidationFailed) as exc:
        customer_export_request(actor=world.actor("outsider"), filters={"tag_ids": [other]}, reveal=False)
    assert (exc.value.field, exc.value.message) == ("tag_ids", f"tag {other} not found")


def test_execute_writes_every_batch_in_order(world: World) -> None:
    export = customer_export_request(actor=world.actor("hq"), filters={}, reveal=True)

    with CaptureQueriesContext(connection) as queries:
        done = customer_export_execute(export_id=export.id, batch_size=2)

    assert done is not None
    progress_updates = [
        q["sql"] for q in queries.captured_queries
        if q["sql"].startswith("UPDATE") and 'SET "progress" = ' in q["sql"]
    ]
    # Batches of 2, 2 and 1: the progress bar moves after each one.
    assert [sql.split('SET "progress" = ')[1].split()[0] for sql in progress_updates] == ["2", "4", "5"]
    assert (done.status, done.progress, done.total) == ("done", 5, 5)
    newest_first = ["c5", "c4", "c3", "c2", "c1"]
    rows = _rows(done)
    assert rows[0] == EXPORT_HEADER
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [
        (str(world.customers[k].id), world.names[k], world.phones[k]) for k in newest_first
    ]


def test_execute_only_claims_pending_exports(world: World) -> None:
    export = customer_export_request(actor=world.actor("store1"), filters={}, reveal=False)
    CustomerExport.objects.filter(id=export.id).update(status=CustomerExport.Status.RUNNING)

    assert customer_export_execute(export_id=export.id) is None
    assert customer_export_execute(export_id=10**9) is None
    export.refresh_from_db()
    assert (export.status, export.file_name) == ("running", "")
    assert not customer_export_path(export).exists()
    assert AuditLog.objects.filter(action="pii.export").count() == 0


def test_execute_uses_the_requesters_scope_of_today(world: World) -> None:
    """The job re-reads the requester's membership: a narrowed scope narrows an export still queued."""
    export = customer_export_request(actor=world.actor("region1"), filters={}, reveal=False)
    Membership.objects.filter(id=world.memberships["region1"].id).update(
        role=Role.STORE_MANAGER, store=world.stores["S1"]
    )

    done = customer_export_execute(export_id=export.id)

    assert done is not None
    assert [r[0] for r in _rows(done)[1:]] == [str(world.customers["c1"].id)]


def test_execute_fails_when_the_requester_left_the_brand(world: World) -> None:
    export = customer_export_request(actor=world.actor("store1"), filters={}, reveal=False)
    Membership.objects.filter(id=world.memberships["store1"].id).delete()

    failed = customer_export_execute(export_id=export.id)

    assert failed is not None
    assert (failed.status, failed.error) == (
        "failed", "PermissionDenied: the requester no longer belongs to this brand"
    )
    assert not customer_export_path(failed).exists()
    assert AuditLog.objects.filter(action="pii.export").count() == 0


def test_execute_refuses_a_reveal_the_requester_may_no_longer_make(world: World) -> None:
    export = customer_export_request(actor=world.actor("hq"), filters={}, reveal=True)
    Membership.objects.filter(id=world.memberships["hq"].id).update(
        role=Role.REGION_MANAGER, region=world.regions["R1"]
    )

    failed = customer_export_execute(export_id=export.id)

    assert failed is not None
    assert failed.status == "failed"
    assert failed.error == "PermissionDenied: the requester may no longer export unmasked personal data"


@pytest.mark.parametrize(
    ("viewer", "requester", "visible"),
    [
        ("store1", "store1", True),
        ("hq", "store1", True),
        ("region1", "store1", False),
        ("guide1", "store1", False),
        ("outsider", "store1", False),
        ("outsider", "hq", False),
    ],
)
def test_export_get_shows_own_exports_and_hq_the_brands(
    world: World, viewer: str, requester: str, visible: bool
) -> None:
    export = customer_export_request(actor=world.actor(requester), filters={}, reveal=False)
    if visible:
        assert customer_export_get(actor=world.actor(viewer), export_id=export.id).id == export.id
        assert list(customer_export_list(actor=world.actor(viewer)).values_list("id", flat=True)) == [export.id]
    else:
        with pytest.raises(NotFound) as exc:
            customer_export_get(actor=world.actor(viewer), export_id=export.id)
        assert exc.value.field == "export_id"
        assert customer_export_list(actor=world.actor(viewer)).count() == 0


def test_download_is_audited_and_needs_a_finished_export(world: World) -> None:
    export = customer_export_request(actor=world.actor("store1"), filters={}, reveal=False)
    with pytest.raises(Conflict) as exc:
        customer_export_download(actor=world.actor("store1"), export_id=export.id)
    assert (exc.value.field, exc.value.message) == ("export_id", f"export {export.id} is pending, not done")

    customer_export_execute(export_id=export.id)
    file = customer_export_download(actor=world.actor("hq"), export_id=export.id, ip="10.0.0.9")

    assert file.path == customer_export_path(export)
    assert file.path.read_text(encoding="utf-8-sig").startswith(",".join(EXPORT_HEADER))
    assert file.download_name == f"customers-{timezone.localtime(export.created_at):%Y%m%d-%H%M}-{export.id}.csv"
    assert file.revealed is False
    audit = AuditLog.objects.get(action="customer_export.download")
    assert (audit.actor_id, audit.target_id, audit.ip) == (world.users["hq"].id, str(export.id), "10.0.0.9")
    with pytest.raises(NotFound):
        customer_export_download(actor=world.actor("region1"), export_id=export.id)


def test_system_actor_cannot_request(world: World) -> None:
    with pytest.raises(ValidationFailed) as exc:
        customer_export_request(actor=Actor.system(world.tenant_a.id), filters={}, reveal=False)
    assert exc.value.field == "actor"
