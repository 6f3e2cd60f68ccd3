"""Recovering the jobs a dead worker left RUNNING (database backend): `db_jobs_recover` and `siyu worker` at start.

django-tasks-db never looks at a RUNNING job again, so without recovery a worker killed mid-job would leave its
job unrun for ever. The whole kill -9 story, with real processes, is siyu/wecom/tests/test_crash.py.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tasks import TaskResultStatus, task
from django_tasks_db.models import DBTaskResult
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.core.jobs import MAX_CLAIMS, JobRecovery, db_jobs_prune, db_jobs_recover, worker_alive, worker_id_new

DB = {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "fast"]}


@task(queue_name="fast")
def echo(value: str) -> str:
    return value


@pytest.fixture(autouse=True)
def db_backend(settings: SettingsWrapper) -> None:
    settings.TASKS = {"default": DB}


@pytest.fixture(scope="module")
def dead_worker() -> str:
    """The id of a worker process that has exited (and been reaped)."""
    code = "import django; django.setup(); from siyu.core.jobs import worker_id_new; print(worker_id_new())"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "siyu.settings", "SIYU_TESTING": "1"}
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.strip()


def _running(value: str, owner: str, *, claims: int = 1, ago: float = 1.0, queue: str = "fast") -> str:
    """A job claimed by `owner` (after `claims - 1` earlier owners) `ago` seconds ago and still RUNNING."""
    result = echo.using(queue_name=queue).enqueue(value)
    DBTaskResult.objects.filter(id=result.id).update(
        status=TaskResultStatus.RUNNING,
        worker_ids=[f"earlier-{n}" for n in range(claims - 1)] + [owner],
        started_at=timezone.now() - dt.timedelta(seconds=ago),
    )
    return str(result.id)


def _status(job_id: str) -> str:
    return str(DBTaskResult.objects.get(id=job_id).status)


def test_a_worker_id_tells_whether_its_process_still_runs(dead_worker: str) -> None:
    me = worker_id_new()
    host, pid, start = me.rsplit("-", 2)
    assert pid == str(os.getpid())
    assert worker_alive(me) is True
    assert worker_alive(dead_worker) is False
    assert worker_alive(f"{host}-{pid}-{int(start or 0) + 1}") is False  # the pid now runs another process
    assert worker_alive(f"siyu-000000000000-{pid}-{start}") is None  # another host: cannot tell
    assert worker_alive("Xq3v9aZ0b1c2d3e4f5g6h7i8j9k0l1m2") is None  # a plain db_worker's random id


def test_a_job_of_a_dead_worker_is_run_again_before_the_rest(transactional_db: None, dead_worker: str) -> None:
    interrupted = _running("interrupted", dead_worker, ago=0.5)
    later = echo.enqueue("later")

    call_command("worker", burst=True, max_jobs=1, stdout=io.StringIO(), stderr=io.StringIO())

    job = DBTaskResult.objects.get(id=interrupted)
    assert (job.status, job.return_value) == (TaskResultStatus.SUCCESSFUL, "interrupted")
    assert job.worker_ids[0] == dead_worker
    assert len(job.worker_ids) == 2
    assert _status(str(later.id)) == TaskResultStatus.READY


def test_a_job_whose_workers_keep_dying_fails(db: None, dead_worker: str) -> None:
    again = _running("again", dead_worker, claims=MAX_CLAIMS - 1)
    given_up = _running("given up", dead_worker, claims=MAX_CLAIMS)

    assert db_jobs_recover() == JobRecovery(requeued=1, failed=1)

    assert _status(again) == TaskResultStatus.READY
    job = DBTaskResult.objects.get(id=given_up)
    assert job.status == TaskResultStatus.FAILED
    assert job.exception_class_path == "siyu.core.jobs.WorkerLost"
    assert job.traceback == f"worker {dead_worker} died while running this job ({MAX_CLAIMS} claims)"
    assert job.finished_at is not None


def test_a_job_of_a_worker_elsewhere_fails_only_after_its_queues_time_limit(db: None) -> None:
    elsewhere = f"siyu-000000000000-{os.getpid()}-1"
    fast_recent = _running("fast, 30 s", elsewhere, ago=30)
    fast_overdue = _running("fast, 2 min", elsewhere, ago=120)  # the fast queue's limit is 60 s
    default_running = _running("default, 2 min", elsewhere, ago=120, queue="default")  # 3600 s
    plain_overdue = _running("plain db_worker, 2 min", "Xq3v9aZ0b1c2d3e4f5g6h7i8j9k0l1m2", ago=120)

    assert db_jobs_recover() == JobRecovery(requeued=0, failed=2)

    assert _status(fast_recent) == TaskResultStatus.RUNNING
    assert _status(default_running) == TaskResultStatus.RUNNING
    assert _status(fast_overdue) == TaskResultStatus.FAILED
    assert _status(plain_overdue) == TaskResultStatus.FAILED
    assert DBTaskResult.objects.get(id=fast_overdue).traceback == (
        f"worker {elsewhere} did not finish this job within 0:01:00"
    )


def test_a_live_workers_job_is_left_alone_however_long_it_runs(db: None) -> None:
    mine = _running("long export", worker_id_new(), ago=7200)

    assert db_jobs_recover() == JobRecovery()

    assert _status(mine) == TaskResultStatus.RUNNING


def test_the_worker_refuses_a_negative_sweep_interval(db: None) -> None:
    with pytest.raises(CommandError, match="--sweep-seconds must be 0 or more"):
        call_command("worker", burst=True, sweep_seconds=-1)


def _finished(value: str, status: TaskResultStatus, *, days_ago: float) -> str:
    result = echo.enqueue(value)
    DBTaskResult.objects.filter(id=result.id).update(
        status=status, finished_at=timezone.now() - dt.timedelta(days=days_ago)
    )
    return str(result.id)


def test_old_finished_jobs_are_pruned_and_nothing_else(db: None) -> None:
    old_done = _finished("old", TaskResultStatus.SUCCESSFUL, days_ago=8)
    recent_done = _finished("recent", TaskResultStatus.SUCCESSFUL, days_ago=1)
    old_failure = _finished("failed a while ago", TaskResultStatus.FAILED, days_ago=8)
    ancient_failure = _finished("failed long ago", TaskResultStatus.FAILED, days_ago=31)
    waiting = str(echo.enqueue("waiting").id)
    running = _running("running", "someone", ago=10 * 86_400)
    pruned = db_jobs_prune(keep=dt.timedelta(days=7), keep_failed=dt.timedelta(days=30), batch=1)
    assert pruned == 2
    left = {str(i) for i in DBTaskResult.objects.values_list("id", flat=True)}
    assert left == {recent_done, old_failure, waiting, running}
    assert not left & {old_done, ancient_failure}
