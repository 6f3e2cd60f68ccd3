"""The customer export as a real background job: requested in a committed transaction, run by a real worker.

The database-backend tests run `siyu worker --burst` against the test database; the RQ tests enqueue into the
real Redis on 127.0.0.1:6379 (a Redis database of their own, locked for the run) and run an in-process RQ
burst worker. Both check the file's exact rows against the requester's data scope.
"""

from __future__ import annotations

import csv
import io
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.db import transaction
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.core import pii
from siyu.core.models import AuditLog
from siyu.customers.models import CustomerExport
from siyu.customers.selectors import customer_export_get, customer_export_path
from siyu.customers.services import EXPORT_HEADER, customer_export_request
from siyu.customers.tasks import customer_export_run
from siyu.testing import VISIBLE, World, build_world

QUEUES = ["default", "fast"]
REDIS_HOST = "redis://127.0.0.1:6379"
# Test runs on one machine (SQLite and PostgreSQL suites side by side) must not run each other's jobs:
# each run takes one of these Redis databases under a lock key and clears only the rq:* keys in it.
REDIS_TEST_DBS = range(15, 7, -1)
REDIS_LOCK = "siyu:test-lock"


@pytest.fixture
def committed_world(transactional_db: None) -> World:
    """The fixed personas, committed, so a worker reading through its own transaction sees them."""
    return build_world()


@pytest.fixture
def media(settings: SettingsWrapper, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def _restore_signals() -> Iterator[None]:
    # Workers install their own SIGINT/SIGTERM handlers; give pytest its own back.
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def db_backend(settings: SettingsWrapper) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": QUEUES}}


def _clear_rq_keys(conn: redis.Redis) -> None:
    for key in conn.scan_iter(match="rq:*"):
        conn.delete(key)


@pytest.fixture
def rq_backend(settings: SettingsWrapper) -> Iterator[redis.Redis]:
    """django-tasks-rq on the real Redis, in a Redis database this test run holds alone."""
    for db in REDIS_TEST_DBS:
        conn = redis.Redis.from_url(f"{REDIS_HOST}/{db}")
        try:
            locked = conn.set(REDIS_LOCK, os.getpid(), nx=True, ex=600)
        except redis.ConnectionError as exc:
            pytest.fail(f"these tests need the real Redis on {REDIS_HOST}: {exc}")
        if locked:
            break
    else:
        pytest.fail(f"every Redis test database {list(REDIS_TEST_DBS)} is locked by another run")
    url = f"{REDIS_HOST}/{db}"
    settings.RQ_QUEUES = {name: {"URL": url, "DEFAULT_TIMEOUT": 120} for name in QUEUES}
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": QUEUES}}
    _clear_rq_keys(conn)
    try:
        yield conn
    finally:
        _clear_rq_keys(conn)
        conn.delete(REDIS_LOCK)
        conn.close()


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


def _expected_rows(w: World, keys: set[str], *, reveal: bool) -> list[list[str]]:
    """The export of `keys`: header, then newest first, masked unless revealed."""
    customers = sorted((w.customers[k] for k in keys), key=lambda c: (c.created_at, c.id), reverse=True)
    by_id = {c.id: k for k, c in w.customers.items()}
    rows = [EXPORT_HEADER]
    for c in customers:
        name, phone = w.names[by_id[c.id]], w.phones[by_id[c.id]]
        if not reveal:
            name, phone = pii.mask_name(name), pii.mask_phone(phone)
        rows.append([str(c.id), name, phone, c.city, c.lifecycle_stage, "", c.created_at.isoformat()])
    return rows


def _visible(persona: str) -> set[str]:
    # VISIBLE lists brand A's customers; the outsider is HQ of brand B and sees its one customer.
    return {"b1"} if persona == "outsider" else VISIBLE[persona]


def _run_worker(**options: Any) -> str:
    out = io.StringIO()
    call_command("worker", burst=True, stdout=out, stderr=out, **options)
    return out.getvalue()


def _export_audits() -> list[AuditLog]:
    return list(AuditLog.objects.filter(action="pii.export").order_by("id"))


def test_export_runs_on_the_database_worker(committed_world: World, db_backend: None, media: Path) -> None:
    w = committed_world
    with transaction.atomic():
        export = customer_export_request(actor=w.actor("store1"), filters={}, reveal=False, ip="10.0.0.8")
        # Enqueued on commit: a worker polling now must not find a job for a row it cannot see yet.
        assert DBTaskResult.objects.count() == 0
    job = DBTaskResult.objects.get()
    assert (job.task_path, job.status, job.queue_name) == (
        "siyu.customers.tasks.customer_export_run", TaskResultStatus.READY, "default"
    )

    _run_worker()

    job.refresh_from_db()
    assert (job.status, job.return_value) == (TaskResultStatus.SUCCESSFUL, "done")
    export = customer_export_get(actor=w.actor("store1"), export_id=export.id)
    assert (export.status, export.progress, export.total, export.error) == (CustomerExport.Status.DONE, 1, 1, "")
    assert export.file_name == f"exports/{w.tenant_a.id}/{export.id}.csv"
    assert export.finished_at is not None
    c1 = w.customers["c1"]
    assert _read_csv(media / export.file_name) == [
        EXPORT_HEADER,
        [str(c1.id), "王**", "138****0001", "杭州", "new", "", "2026-01-05T10:00:00+00:00"],
    ]
    assert _read_csv(media / export.file_name) == _expected_rows(w, VISIBLE["store1"], reveal=False)
    [audit] = _export_audits()
    assert (audit.tenant_id, audit.actor_id, audit.target_type, audit.target_id, audit.ip) == (
        w.tenant_a.id, w.users["store1"].id, "customer_export", str(export.id), "10.0.0.8"
    )
    assert audit.detail == {"rows": 1, "revealed": False, "filters": {}}


def test_every_persona_exports_exactly_its_scope(committed_world: World, db_backend: None, media: Path) -> None:
    w = committed_world
    personas = sorted(VISIBLE)
    with transaction.atomic():
        exports = {p: customer_export_request(actor=w.actor(p), filters={}, reveal=False) for p in personas}
        revealed = customer_export_request(actor=w.actor("hq"), filters={}, reveal=True)

    _run_worker()

    for persona, export in exports.items():
        export.refresh_from_db()
        expected = _expected_rows(w, _visible(persona), reveal=False)
        assert (export.status, export.progress, export.total) == ("done", len(expected) - 1, len(expected) - 1)
        assert _read_csv(customer_export_path(export)) == expected, persona
    revealed.refresh_from_db()
    assert revealed.status == CustomerExport.Status.DONE
    assert _read_csv(customer_export_path(revealed)) == _expected_rows(w, VISIBLE["hq"], reveal=True)
    audits = {(a.target_id, a.actor_id, a.detail["rows"], a.detail["revealed"]) for a in _export_audits()}
    assert audits == {(str(e.id), w.users[p].id, len(_visible(p)), False) for p, e in exports.items()} | {
        (str(revealed.id), w.users["hq"].id, 5, True)
    }
    assert len(_export_audits()) == len(personas) + 1


def test_filters_apply_in_the_job(committed_world: World, db_backend: None, media: Path) -> None:
    w = committed_world
    with transaction.atomic():
        by_tag = customer_export_request(
            actor=w.actor("region1"), filters={"tag_ids": [w.tags["护肤"].id]}, reveal=False
        )
        by_store = customer_export_request(
            actor=w.actor("hq"), filters={"store_id": str(w.stores["S3"].id), "q": ""}, reveal=False
        )

    _run_worker()

    by_tag.refresh_from_db()
    by_store.refresh_from_db()
    # 护肤 is on c1 and c3; region1 sees c1 and c2: the scope and the filter both apply.
    assert _read_csv(customer_export_path(by_tag)) == _expected_rows(w, {"c1"}, reveal=False)
    assert by_store.filters == {"store_id": w.stores["S3"].id}
    assert _read_csv(customer_export_path(by_store)) == _expected_rows(w, {"c3"}, reveal=False)


def test_export_runs_on_the_rq_worker(committed_world: World, rq_backend: redis.Redis, media: Path) -> None:
    w = committed_world
    with transaction.atomic():
        export = customer_export_request(actor=w.actor("store1"), filters={}, reveal=False)
        revealed = customer_export_request(actor=w.actor("hq"), filters={"lifecycle_stage": "new"}, reveal=True)
        assert rq_backend.llen("rq:queue:default") == 0
    assert rq_backend.llen("rq:queue:default") == 2
    assert DBTaskResult.objects.count() == 0

    output = _run_worker(in_process=True)

    assert "RQ backend" in output
    assert rq_backend.llen("rq:queue:default") == 0
    export = customer_export_get(actor=w.actor("store1"), export_id=export.id)
    assert (export.status, export.progress, export.total) == (CustomerExport.Status.DONE, 1, 1)
    assert _read_csv(media / export.file_name) == _expected_rows(w, VISIBLE["store1"], reveal=False)
    revealed.refresh_from_db()
    assert (revealed.status, revealed.progress, revealed.total) == (CustomerExport.Status.DONE, 5, 5)
    assert _read_csv(media / revealed.file_name) == _expected_rows(w, VISIBLE["hq"], reveal=True)
    assert [(a.actor_id, a.target_id, a.detail) for a in _export_audits()] == [
        (w.users["store1"].id, str(export.id), {"rows": 1, "revealed": False, "filters": {}}),
        (w.users["hq"].id, str(revealed.id), {"rows": 5, "revealed": True, "filters": {"lifecycle_stage": "new"}}),
    ]


def test_rq_job_result_records_the_outcome(committed_world: World, rq_backend: redis.Redis, media: Path) -> None:
    w = committed_world
    with transaction.atomic():
        export = customer_export_request(actor=w.actor("guide1"), filters={}, reveal=False)
    # A second delivery of the same job, as a retry or a duplicate enqueue would make.
    duplicate = customer_export_run.enqueue(export.id)

    _run_worker(in_process=True)

    result = customer_export_run.get_result(duplicate.id)
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, "skipped")
    export.refresh_from_db()
    assert export.status == CustomerExport.Status.DONE
    assert _read_csv(customer_export_path(export)) == _expected_rows(w, VISIBLE["guide1"], reveal=False)
    assert len(_export_audits()) == 1


def test_running_twice_writes_one_file_and_one_audit(committed_world: World, db_backend: None, media: Path) -> None:
    w = committed_world
    with transaction.atomic():
        export = customer_export_request(actor=w.actor("franchisee1"), filters={}, reveal=False)
    customer_export_run.enqueue(export.id)

    _run_worker()

    assert sorted(DBTaskResult.objects.values_list("status", "return_value")) == [
        (TaskResultStatus.SUCCESSFUL, "done"), (TaskResultStatus.SUCCESSFUL, "skipped")
    ]
    # And once more, by hand, after it is done.
    assert customer_export_run.call(export.id) == "skipped"
    export.refresh_from_db()
    assert (export.status, export.progress, export.total) == (CustomerExport.Status.DONE, 2, 2)
    assert sorted(p.name for p in (media / "exports" / str(w.tenant_a.id)).iterdir()) == [f"{export.id}.csv"]
    assert _read_csv(customer_export_path(export)) == _expected_rows(w, VISIBLE["franchisee1"], reveal=False)
    assert len(_export_audits()) == 1


def test_failing_export_is_marked_failed_and_the_worker_carries_on(
    committed_world: World, db_backend: None, media: Path
) -> None:
    w = committed_world
    with transaction.atomic():
        broken = customer_export_request(actor=w.actor("hq"), filters={}, reveal=False)
        fine = customer_export_request(actor=w.actor("store1"), filters={}, reveal=False)
        # A directory where the finished file must go: writing succeeds, publishing the file cannot.
        customer_export_path(broken).mkdir(parents=True)

    _run_worker()

    broken.refresh_from_db()
    assert broken.status == CustomerExport.Status.FAILED
    assert broken.error.startswith("IsADirectoryError: ")
    assert str(customer_export_path(broken)) in broken.error
    assert broken.file_name == ""
    assert broken.finished_at is not None
    assert not customer_export_path(broken).with_name(f"{broken.id}.csv.part").exists()
    fine.refresh_from_db()
    assert fine.status == CustomerExport.Status.DONE
    assert _read_csv(customer_export_path(fine)) == _expected_rows(w, VISIBLE["store1"], reveal=False)
    assert [a.target_id for a in _export_audits()] == [str(fine.id)]
    # The job itself succeeded: the export row, not a crashed task, carries the failure.
    assert sorted(DBTaskResult.objects.values_list("status", "return_value")) == [
        (TaskResultStatus.SUCCESSFUL, "done"), (TaskResultStatus.SUCCESSFUL, "failed")
    ]


def test_unwritable_media_root_fails_the_export(
    committed_world: World, db_backend: None, settings: SettingsWrapper, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "media"
    not_a_dir.write_text("a file where the media directory should be")
    settings.MEDIA_ROOT = not_a_dir
    with transaction.atomic():
        export = customer_export_request(actor=committed_world.actor("hq"), filters={}, reveal=True)

    _run_worker()

    export.refresh_from_db()
    assert export.status == CustomerExport.Status.FAILED
    assert export.error.startswith("NotADirectoryError: ")
    assert export.progress == 0
    assert _export_audits() == []
