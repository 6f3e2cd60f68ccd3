"""Job plumbing: enqueue after commit, the active backend, and `siyu worker` on the database backend.

The RQ worker runs for real in siyu/customers/tests/test_export_jobs.py (it needs the Redis fixture there).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django_tasks import TaskResultStatus, task
from django_tasks_db.models import DBTaskResult
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.core.jobs import backend_kind, backend_queues, enqueue_on_commit, needs_worker

QUEUES = ["default", "fast"]
DB = {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": QUEUES}


@task(queue_name="fast")
def echo(value: str) -> str:
    """A job with nothing to do but return its argument, to watch the plumbing."""
    return value


@pytest.fixture(autouse=True)
def _restore_signals() -> Iterator[None]:
    # db_worker installs its own SIGINT/SIGTERM handlers; give pytest its own back.
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.fixture
def db_backend(settings: SettingsWrapper) -> None:
    settings.TASKS = {"default": DB}


def _results() -> list[tuple[str, str, object]]:
    return sorted(DBTaskResult.objects.values_list("queue_name", "status", "return_value"))


def test_enqueue_waits_for_commit(transactional_db: None, db_backend: None) -> None:
    with transaction.atomic():
        enqueue_on_commit(echo, "committed")
        assert DBTaskResult.objects.count() == 0
    assert _results() == [("fast", TaskResultStatus.READY, None)]
    assert DBTaskResult.objects.get().args_kwargs == {"args": ["committed"], "kwargs": {}}


def test_enqueue_is_dropped_on_rollback(transactional_db: None, db_backend: None) -> None:
    try:
        with transaction.atomic():
            enqueue_on_commit(echo, "rolled back")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert DBTaskResult.objects.count() == 0


def test_enqueue_outside_a_transaction_is_immediate(transactional_db: None, db_backend: None) -> None:
    enqueue_on_commit(echo, value="now")
    assert DBTaskResult.objects.get().args_kwargs == {"args": [], "kwargs": {"value": "now"}}


def test_worker_burst_runs_the_database_queue(transactional_db: None, db_backend: None) -> None:
    enqueue_on_commit(echo, "fast one")
    enqueue_on_commit(echo.using(queue_name="default"), "default one")
    out = io.StringIO()

    call_command("worker", burst=True, stdout=out, stderr=out)

    assert "database backend, queues fast, default" in out.getvalue()
    assert _results() == [
        ("default", TaskResultStatus.SUCCESSFUL, "default one"),
        ("fast", TaskResultStatus.SUCCESSFUL, "fast one"),
    ]


def test_worker_works_only_the_queues_asked_for(transactional_db: None, db_backend: None) -> None:
    enqueue_on_commit(echo, "fast one")
    enqueue_on_commit(echo.using(queue_name="default"), "default one")

    call_command("worker", burst=True, queues="fast", stdout=io.StringIO(), stderr=io.StringIO())

    assert _results() == [
        ("default", TaskResultStatus.READY, None),
        ("fast", TaskResultStatus.SUCCESSFUL, "fast one"),
    ]


def test_worker_refuses_an_unknown_queue(db_backend: None) -> None:
    with pytest.raises(CommandError, match="unknown queue 'slow': the backend has fast, default"):
        call_command("worker", burst=True, queues="fast,slow")


def test_worker_explains_the_immediate_backend(settings: SettingsWrapper) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": QUEUES}}
    with pytest.raises(CommandError, match="runs jobs in the web process; no worker is needed"):
        call_command("worker", burst=True)


def test_worker_refuses_a_backend_it_cannot_run(settings: SettingsWrapper) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "QUEUES": QUEUES}}
    with pytest.raises(CommandError, match="knows the db and rq backends only; set SIYU_TASKS_BACKEND=db or rq"):
        call_command("worker", burst=True)


@pytest.mark.parametrize(
    ("backend", "kind", "worker"),
    [
        ("django_tasks_db.DatabaseBackend", "db", True),
        ("django_tasks_rq.RQBackend", "rq", True),
        ("django_tasks.backends.immediate.ImmediateBackend", "immediate", False),
        ("django_tasks.backends.dummy.DummyBackend", None, True),
    ],
)
def test_backend_kind_follows_the_tasks_setting(
    settings: SettingsWrapper, backend: str, kind: str | None, worker: bool
) -> None:
    settings.TASKS = {"default": {"BACKEND": backend, "QUEUES": ["default", "fast", "bulk"]}}
    assert backend_kind() == kind
    assert needs_worker() is worker
    assert backend_queues() == ["fast", "default", "bulk"]


@pytest.mark.parametrize(
    ("env", "backend"), [("db", "django_tasks_db.DatabaseBackend"), ("rq", "django_tasks_rq.RQBackend")]
)
def test_switching_backend_is_one_environment_variable(env: str, backend: str) -> None:
    result = _settings_in_subprocess(env, "print(settings.TASKS['default']['BACKEND'], settings.RQ['JOB_CLASS'])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [backend, "django_tasks_rq.Job"]


def test_unknown_backend_is_a_clear_configuration_error() -> None:
    result = _settings_in_subprocess("celery", "")
    assert result.returncode != 0
    assert "SIYU_TASKS_BACKEND must be one of db, rq, immediate, got 'celery'" in result.stderr


def _settings_in_subprocess(backend: str, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIYU_TASKS_BACKEND": backend, "SIYU_TESTING": "1", "DJANGO_SETTINGS_MODULE": "siyu.settings"}
    script = f"from django.conf import settings; settings.TASKS; {code}"
    return subprocess.run(  # noqa: S603 - fixed argv, no shell
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
        cwd=django_settings.BASE_DIR, check=False,
    )
