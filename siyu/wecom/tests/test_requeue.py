"""The recovery sweep for callbacks (`raw_callback_requeue`, run by every `siyu worker`), on the database backend
and on RQ.

A callback whose job was lost is enqueued again, once; a callback whose job is waiting or running is left alone,
so a sweep during a long backlog adds nothing; failed callbacks are retried with backoff up to max_attempts.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import Any

import django_rq
import pytest
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.customers.tests import test_export_jobs
from siyu.testing import World
from siyu.wecom.models import RawCallback
from siyu.wecom.services import raw_callback_requeue
from siyu.wecom.tasks import raw_callback_run
from siyu.wecom.tests.support import contact_xml

CaptureOnCommit = Callable[..., Any]
FIVE_MINUTES = dt.timedelta(minutes=5)

# django-tasks-rq on the real Redis, in a Redis database this test run holds alone.
rq_backend = test_export_jobs.rq_backend


@pytest.fixture(autouse=True)
def db_backend(settings: SettingsWrapper) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "fast"]}}


@pytest.fixture
def add(world: World, store: Callable[..., RawCallback]) -> Callable[..., RawCallback]:
    """A stored add callback received `minutes_ago` (its own job, if any, is up to the test)."""
    count = iter(range(1000))

    def add(minutes_ago: float = 10) -> RawCallback:
        row = store(contact_xml("add_external_contact", "guide1", f"wmREQ{next(count):03d}"))
        RawCallback.objects.filter(id=row.id).update(received_at=timezone.now() - dt.timedelta(minutes=minutes_ago))
        return row

    return add


def _jobs() -> Counter[tuple[int, ...]]:
    """The raw_callback_run jobs waiting, by the row ids they carry."""
    return Counter(
        tuple(job["args"])
        for job in DBTaskResult.objects.filter(
            task_path=raw_callback_run.module_path, status=TaskResultStatus.READY
        ).values_list("args_kwargs", flat=True)
    )


def _sweep(capture: CaptureOnCommit, **kwargs: Any) -> int:
    with capture(execute=True):  # the sweep enqueues after commit
        return raw_callback_requeue(older_than=FIVE_MINUTES, **kwargs)


def test_a_callback_whose_job_was_lost_is_enqueued_again_once(
    add: Callable[..., RawCallback], django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    lost = add()

    assert _sweep(django_capture_on_commit_callbacks) == 1

    row = RawCallback.objects.get(id=lost.id)
    assert (row.status, row.attempts, row.error) == ("received", 1, "queued again: its job was lost")
    assert _jobs() == {(lost.id,): 1}
    # The next sweeps find its job on the way and add nothing.
    assert _sweep(django_capture_on_commit_callbacks) == 0
    assert _sweep(django_capture_on_commit_callbacks) == 0
    assert _jobs() == {(lost.id,): 1}


def test_callbacks_with_a_job_on_its_way_are_left_alone(
    add: Callable[..., RawCallback], django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    waiting = add()
    raw_callback_run.enqueue(waiting.id)
    first, second = add(), add()
    raw_callback_run.enqueue(first.id, second.id)  # the endpoint's job for a group of callbacks
    running, stuck = add(), add()
    for row, started in ((running, 1), (stuck, 30)):  # minutes ago; the sweep's cut-off is 5
        job = raw_callback_run.enqueue(row.id)
        DBTaskResult.objects.filter(id=job.id).update(
            status=TaskResultStatus.RUNNING, started_at=timezone.now() - dt.timedelta(minutes=started)
        )
    add(minutes_ago=1)  # just stored: its job may still be on its way from the web process

    assert _sweep(django_capture_on_commit_callbacks) == 1

    assert _jobs() == {(waiting.id,): 1, (first.id, second.id): 1, (stuck.id,): 1}
    assert RawCallback.objects.exclude(error="").get().id == stuck.id


def test_failed_callbacks_are_retried_with_backoff_up_to_max_attempts(
    add: Callable[..., RawCallback], django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    def failed(attempts: int, minutes_ago: float) -> RawCallback:
        row = add(minutes_ago=60)
        RawCallback.objects.filter(id=row.id).update(
            status=RawCallback.Status.FAILED,
            attempts=attempts,
            error="WeComAPIError: system busy",
            processed_at=timezone.now() - dt.timedelta(minutes=minutes_ago),
        )
        return row

    due_first = failed(1, 6)  # retried 5 minutes after the first attempt
    not_yet = failed(2, 6)  # ... 10 minutes after the second
    due_third = failed(3, 21)  # ... 20 minutes after the third
    failed(5, 600)  # max_attempts: given up

    assert _sweep(django_capture_on_commit_callbacks) == 2

    assert _jobs() == {(due_first.id,): 1, (due_third.id,): 1}
    assert not_yet.id not in {ids[0] for ids in _jobs()}
    # A failed row keeps its status, attempts and error until its retry runs.
    assert sorted(RawCallback.objects.values_list("status", "attempts")) == [
        ("failed", 1),
        ("failed", 2),
        ("failed", 3),
        ("failed", 5),
    ]


def test_one_sweep_enqueues_at_most_limit(
    add: Callable[..., RawCallback], django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    rows = [add() for _ in range(5)]

    assert _sweep(django_capture_on_commit_callbacks, limit=3) == 3
    assert _sweep(django_capture_on_commit_callbacks, limit=3) == 2

    assert _jobs() == {(row.id,): 1 for row in rows}


def test_on_rq_a_callback_with_a_queued_job_is_left_alone(
    add: Callable[..., RawCallback], rq_backend: Any, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    waiting, lost = add(), add()
    raw_callback_run.enqueue(waiting.id)

    assert _sweep(django_capture_on_commit_callbacks) == 1
    assert _sweep(django_capture_on_commit_callbacks) == 0

    queued = django_rq.get_queue("fast").get_jobs()
    assert sorted(job.args[0] for job in queued) == [waiting.id, lost.id]
