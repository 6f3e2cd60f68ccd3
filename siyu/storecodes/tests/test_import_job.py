"""The store CSV import as a real background job: queued in a committed transaction, run by `siyu worker --burst`
on the database backend, in batches with its progress and report; the same file again changes nothing."""

from __future__ import annotations

import io
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.core.hours import format_hours
from siyu.core.models import AuditLog, Membership, Role, Store
from siyu.storecodes.models import StoreImport
from siyu.storecodes.selectors import access_store_import
from siyu.storecodes.services import ImportRow, store_import_execute, store_import_request
from siyu.testing import World, build_world


@pytest.fixture
def committed_world(transactional_db: None) -> World:
    return build_world()


@pytest.fixture
def db_backend(settings: SettingsWrapper) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "fast"]}}


@pytest.fixture(autouse=True)
def _restore_signals() -> Iterator[None]:
    # The worker installs its own SIGINT/SIGTERM handlers; give pytest its own back.
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _run_worker() -> str:
    out = io.StringIO()
    call_command("worker", burst=True, stdout=out, stderr=out)
    return out.getvalue()


ROWS = [
    ImportRow(line=2, code="S1", latitude="30.2590", longitude="120.1300", hours="mon-fri 10:00-22:00; sat-sun closed"),
    ImportRow(line=3, code="S2", latitude="31", longitude="", hours=""),
    ImportRow(line=4, code="S3", latitude="", longitude="", hours="fri-sat 18:00-02:00", temporarily_closed="yes"),
    ImportRow(line=5, code="B1", latitude="39.9", longitude="116.4"),
]


def _state() -> list[tuple[Any, ...]]:
    return list(Store.objects.order_by("id").values_list("id", "latitude", "longitude", "hours", "temporarily_closed"))


def test_the_import_runs_on_the_database_worker_and_again_changes_nothing(
    committed_world: World, db_backend: None
) -> None:
    w = committed_world
    hq = w.actor("hq")
    with transaction.atomic():
        job = store_import_request(
            actor=hq, file_name="stores.csv", columns=["latitude", "longitude", "hours"], rows=ROWS
        )
        # Enqueued on commit: a worker polling now must not find a job for a row it cannot see yet.
        assert DBTaskResult.objects.count() == 0
    assert DBTaskResult.objects.get().status == TaskResultStatus.READY
    assert access_store_import(actor=hq, import_id=job.id).status == StoreImport.Status.PENDING

    _run_worker()

    job.refresh_from_db()
    assert (job.status, job.total, job.processed, job.updated, job.unchanged, job.skipped) == ("done", 4, 4, 2, 0, 2)
    assert job.problems == [
        [3, "longitude", "give both latitude and longitude, or neither"],
        [5, "code", "unknown store code 'B1'"],
    ]
    assert DBTaskResult.objects.get().status == TaskResultStatus.SUCCESSFUL
    s1, s3 = (Store.objects.get(id=w.stores[k].id) for k in ("S1", "S3"))
    assert format_hours(s1.hours) == "mon-fri 10:00-22:00; sat-sun closed"
    assert (s3.latitude, s3.temporarily_closed, format_hours(s3.hours)) == (
        None,
        True,
        "mon-thu closed; fri-sat 18:00-02:00; sun closed",
    )
    assert Store.objects.get(id=w.stores["B1"].id).latitude is None  # brand B's store of that code: untouched
    after = _state()

    with transaction.atomic():
        again = store_import_request(
            actor=hq, file_name="stores.csv", columns=["latitude", "longitude", "hours"], rows=ROWS
        )
    _run_worker()
    again.refresh_from_db()
    assert (again.status, again.updated, again.unchanged, again.skipped) == ("done", 0, 2, 2)
    assert _state() == after
    assert AuditLog.objects.filter(action="store.geo_import").count() == 1  # only the first run changed anything


def test_batches_keep_progress_and_a_code_repeated_across_batches_is_refused(committed_world: World) -> None:
    w = committed_world
    rows = [ImportRow(line=2 + i, code=code, hours="daily 24h") for i, code in enumerate(["S1", "S2", "S3", "S1"])]
    job = StoreImport.objects.create(
        tenant=w.tenant_a,
        requested_by=w.users["region1"],
        rows=[r.as_json() for r in rows],
        total=len(rows),
    )
    done = store_import_execute(import_id=job.id, batch_size=1)
    assert done is not None
    assert (done.processed, done.updated, done.skipped) == (4, 2, 2)
    # S3 is outside region1's scope; the second S1 repeats line 2 though it came in a later batch.
    assert done.problems == [[4, "code", "unknown store code 'S3'"], [5, "code", "store S1 already on line 2"]]
    # One audit row per batch that changed something, each naming the import.
    audits = AuditLog.objects.filter(action="store.geo_import").order_by("id")
    assert [(a.target_id, a.detail["codes"]) for a in audits] == [(str(job.id), ["S1"]), (str(job.id), ["S2"])]


def test_a_requester_who_lost_the_role_fails_the_import_and_saves_nothing(committed_world: World) -> None:
    w = committed_world
    before = _state()
    with transaction.atomic():
        job = store_import_request(actor=w.actor("store1"), file_name="s.csv", columns=["hours"], rows=ROWS[:1])
    Membership.objects.filter(user=w.users["store1"]).update(role=Role.FRANCHISEE, franchisee=w.franchisees["F1"])
    store_import_execute(import_id=job.id)
    job.refresh_from_db()
    assert job.status == StoreImport.Status.FAILED
    assert "only HQ, region and store managers" in job.error
    assert _state() == before
