"""Background jobs: enqueue after commit, and tell which backend runs them.

Jobs are django-tasks `@task` functions in each context's `tasks.py`: thin, idempotent, taking ids and calling
a service. Services enqueue them with `enqueue_on_commit`, never with `task.enqueue` inside a transaction: a
worker may pick the job up before the transaction commits (and find no row), or run it for a rolled-back one.

The backend is chosen by SIYU_TASKS_BACKEND (see settings): `db` (django-tasks-db, the default), `rq`
(django-tasks-rq on Redis) or `immediate` (in-process, after commit). `siyu worker` runs the matching worker.
"""

from __future__ import annotations

import logging
from typing import Literal, ParamSpec, TypeVar

from django.db import transaction
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
from django_tasks.base import Task

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

BackendKind = Literal["db", "rq", "immediate"]

# Workers poll queues in this order: the fast queue carries WeCom work with deadlines (welcome codes live 20 s).
QUEUE_ORDER = ("fast", "default")


def enqueue_on_commit(task: Task[P, T], *args: P.args, **kwargs: P.kwargs) -> None:
    """Enqueue `task` once the current transaction commits; at once when there is none.

    Nothing is enqueued when the transaction rolls back, so a job never sees a row that does not exist.
    """

    def enqueue() -> None:
        result = task.enqueue(*args, **kwargs)
        logger.info("enqueued %s id=%s on %s", task.name, result.id, task.queue_name)

    transaction.on_commit(enqueue)


def backend_kind(alias: str = DEFAULT_TASK_BACKEND_ALIAS) -> BackendKind | None:
    """Which kind of backend runs jobs (read from the live TASKS setting); None for any other backend."""
    from django_tasks.backends.immediate import ImmediateBackend
    from django_tasks_db import DatabaseBackend

    backend = task_backends[alias]
    if isinstance(backend, DatabaseBackend):
        return "db"
    if isinstance(backend, ImmediateBackend):
        return "immediate"
    # Imported last: django_tasks_rq pulls in redis and rq, which the database set-up never needs.
    from django_tasks_rq import RQBackend

    if isinstance(backend, RQBackend):
        return "rq"
    return None


def backend_queues(alias: str = DEFAULT_TASK_BACKEND_ALIAS) -> list[str]:
    """The backend's queues in polling order (QUEUE_ORDER first, then any others by name)."""
    queues = task_backends[alias].queues
    known = [q for q in QUEUE_ORDER if q in queues]
    return known + sorted(set(queues) - set(known))


def needs_worker(alias: str = DEFAULT_TASK_BACKEND_ALIAS) -> bool:
    """False when jobs run inside the process that enqueues them (the immediate backend)."""
    return backend_kind(alias) != "immediate"
