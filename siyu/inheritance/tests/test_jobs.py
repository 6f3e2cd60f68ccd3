"""Jobs of the inheritance context: lost submit and poll jobs are found again from the rows, and a backend that
cannot defer a job gets no schedule (the refresh button follows up instead)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from siyu.core.scopes import Actor
from siyu.inheritance.models import Transfer, TransferItem
from siyu.inheritance.services import _schedule_poll, transfer_start, transfer_sweep
from siyu.testing import IMMEDIATE_TASKS, World

IMMEDIATE = IMMEDIATE_TASKS


def _transfer(world: World, code: str, customer: str) -> Transfer:
    return transfer_start(
        actor=Actor.system(world.tenant_a.id),
        kind="on_job",
        handover_guide_id=world.guides[code].id,
        takeover_guide_id=world.guides["IP"].id,
        customer_ids=[world.customers[customer].id],
    )


def _jobs() -> list[tuple[str, list[Any]]]:
    return sorted((r.task_path.rsplit(".", 1)[1], r.args_kwargs["args"]) for r in DBTaskResult.objects.all())


def test_the_sweep_finds_work_whose_job_was_lost(world: World, django_capture_on_commit_callbacks: Any) -> None:
    old, fresh, overdue = _transfer(world, "G1", "c1"), _transfer(world, "G2", "c2"), _transfer(world, "G3", "c3")
    ten_minutes_ago = timezone.now() - dt.timedelta(minutes=10)
    Transfer.objects.filter(id__in=[old.id, overdue.id]).update(created_at=ten_minutes_ago)
    # `overdue` was sent; its 24 hours ended an hour ago and no poll has run since.
    TransferItem.objects.filter(transfer=overdue).update(
        status=TransferItem.Status.WAITING, due_at=timezone.now() - dt.timedelta(hours=1)
    )
    Transfer.objects.filter(id=overdue.id).update(status=Transfer.Status.IN_PROGRESS)
    with django_capture_on_commit_callbacks(execute=True):
        assert transfer_sweep() == 2
    assert _jobs() == [("transfer_poll_run", [overdue.id]), ("transfer_submit_run", [old.id])]
    assert fresh.id not in {a[0] for _, a in _jobs()}  # a transfer just started is its own request's business


@pytest.mark.parametrize("backend", ["db", "immediate"])
def test_the_poll_is_scheduled_only_where_jobs_can_wait(
    world: World, settings: Any, django_capture_on_commit_callbacks: Any, backend: str
) -> None:
    transfer = _transfer(world, "G1", "c1")
    due = timezone.now() + dt.timedelta(hours=20)
    TransferItem.objects.filter(transfer=transfer).update(status=TransferItem.Status.WAITING, due_at=due)
    if backend == "immediate":
        settings.TASKS = IMMEDIATE
    with django_capture_on_commit_callbacks(execute=True):
        _schedule_poll(transfer)
    if backend == "db":
        job = DBTaskResult.objects.get()
        assert job.task_path == "siyu.inheritance.tasks.transfer_poll_run"
        assert job.run_after == due + dt.timedelta(minutes=2)
    else:
        assert not DBTaskResult.objects.exists()
