"""Background jobs: enqueue after commit, and tell which backend runs them.

Jobs are django-tasks `@task` functions in each context's `tasks.py`: thin, idempotent, taking ids and calling
a service. Services enqueue them with `enqueue_on_commit`, never with `task.enqueue` inside a transaction: a
worker may pick the job up before the transaction commits (and find no row), or run it for a rolled-back one.

The backend is chosen by SIYU_TASKS_BACKEND (see settings): `db` (django-tasks-db, the default), `rq`
(django-tasks-rq on Redis) or `immediate` (in-process, after commit). `siyu worker` runs the matching worker.

Crash recovery (database backend): django-tasks-db marks a job RUNNING when a worker claims it and never looks at
it again, so a worker killed mid-job (kill -9, OOM, power loss) leaves it RUNNING for ever and nobody runs it.
`db_jobs_recover` (run by every `siyu worker` at start and then periodically) puts such jobs back in line: a
worker's id names its host, pid and process start time (`worker_id_new`), so a job whose worker was on this host
and is gone is known lost at once; a job of another host's worker is taken as lost once it has run longer than
its queue's time limit (the one RQ enforces, `job_time_limit`).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, TaskResultStatus, task_backends
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


def job_time_limit(queue_name: str) -> dt.timedelta:
    """How long a job of the queue may run: RQ kills it then (RQ_QUEUES), and the database worker's recovery takes
    a job of another host's worker that has run longer as lost."""
    queue = settings.RQ_QUEUES.get(queue_name, {})
    return dt.timedelta(seconds=int(queue.get("DEFAULT_TIMEOUT", settings.RQ_QUEUES["default"]["DEFAULT_TIMEOUT"])))


# -- telling a dead worker from a live one -----------------------------------------------------------------------

_PROC = Path("/proc")
_WORKER_ID = re.compile(r"siyu-(?P<host>[0-9a-f]{12})-(?P<pid>[0-9]+)-(?P<start>[0-9]*)")


@functools.cache
def _host_key() -> str:
    # Pids are only comparable inside one pid namespace: containers sharing a host name have different ones.
    try:
        namespace = os.readlink(_PROC / "self" / "ns" / "pid")
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}|{namespace}".encode()).hexdigest()[:12]


def _process_start(pid: int) -> str | None:
    """The start time of live process `pid` (clock ticks since boot, from /proc), "" where there is no /proc, and
    None when no such process runs (a zombie counts as gone: it runs nothing)."""
    if not _PROC.joinpath("self", "stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return ""  # it exists, under another user
        return ""
    try:
        stat = _PROC.joinpath(str(pid), "stat").read_text()
    except OSError:
        return None
    # Field 2 (the command) is in parentheses and may hold spaces; the state is field 3, the start time field 22.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def worker_id_new() -> str:
    """This worker process's id in the task results it claims: host key, pid and process start time, so that
    `worker_alive` can later tell whether it still runs (a reused pid has another start time)."""
    pid = os.getpid()
    return f"siyu-{_host_key()}-{pid}-{_process_start(pid) or ''}"


def worker_alive(worker_id: str) -> bool | None:
    """False when `worker_id` names a worker process of this host that is gone, True when it still runs, None when
    this process cannot tell (another host's worker, or an id `worker_id_new` did not make)."""
    match = _WORKER_ID.fullmatch(worker_id)
    if match is None or match["host"] != _host_key():
        return None
    started = _process_start(int(match["pid"]))
    if started is None:
        return False
    return not (match["start"] and started and started != match["start"])


class WorkerLost(Exception):
    """Recorded on a job whose worker died while running it."""


@dataclass(frozen=True)
class JobRecovery:
    """What `db_jobs_recover` did: jobs put back in line (to run again) and jobs marked failed."""

    requeued: int = 0
    failed: int = 0


# A job whose worker died this many times is marked failed rather than run again: it may be what kills them.
MAX_CLAIMS = 3


def db_jobs_recover(*, alias: str = DEFAULT_TASK_BACKEND_ALIAS, now: dt.datetime | None = None) -> JobRecovery:
    """Recover the database backend's jobs left RUNNING by workers that died (see the module docstring).

    A job whose worker is known dead goes back to READY with its original enqueue time, so it is the next one
    run (the events it was applying keep their order); after MAX_CLAIMS claims it is marked failed instead. A job
    of a worker this host cannot see is marked failed once it has run longer than its queue's time limit: it may
    still be running, so it is not run a second time; the work it stood for is re-driven by its context's own
    sweep (e.g. `siyu.wecom.services.raw_callback_requeue`). Safe for several workers at once: each change is
    made under the job's row lock and only if nobody claimed the job meanwhile. State lives only in the database.
    """
    from django_tasks_db.models import DBTaskResult

    now = now or timezone.now()
    requeued = failed = 0
    running = DBTaskResult.objects.filter(backend_name=alias, status=TaskResultStatus.RUNNING).values_list(
        "id", "queue_name", "started_at", "worker_ids"
    )
    for job_id, queue_name, started_at, worker_ids in list(running):
        owner = worker_ids[-1] if worker_ids else ""
        alive = worker_alive(owner)
        if alive is False:
            again = len(worker_ids) < MAX_CLAIMS
        elif alive is None and started_at is not None and now - started_at > job_time_limit(queue_name):
            again = False
        else:
            continue
        with transaction.atomic(using=DBTaskResult.objects.db):
            job = DBTaskResult.objects.select_for_update().filter(id=job_id, status=TaskResultStatus.RUNNING).first()
            if job is None or job.worker_ids != worker_ids:
                continue  # finished, or claimed again, since we looked
            if again:
                job.status = TaskResultStatus.READY
                job.save(update_fields=["status"])
                requeued += 1
            else:
                job.status = TaskResultStatus.FAILED
                job.finished_at = now
                job.exception_class_path = f"{WorkerLost.__module__}.{WorkerLost.__qualname__}"
                job.traceback = (
                    f"worker {owner} died while running this job ({len(worker_ids)} claims)"
                    if alive is False
                    else f"worker {owner} did not finish this job within {job_time_limit(queue_name)}"
                )
                job.save(update_fields=["status", "finished_at", "exception_class_path", "traceback"])
                failed += 1
        logger.warning(
            "job %s (%s) of lost worker %s %s", job_id, job.task_path, owner, "queued again" if again else "failed"
        )
    return JobRecovery(requeued=requeued, failed=failed)


def db_jobs_prune(
    *,
    keep: dt.timedelta,
    keep_failed: dt.timedelta,
    alias: str = DEFAULT_TASK_BACKEND_ALIAS,
    now: dt.datetime | None = None,
    batch: int = 5000,
) -> int:
    """Delete the database backend's finished jobs: successful ones older than `keep`, failed ones older than
    `keep_failed` (kept longer: they are what someone may still be looking into). Returns how many went.

    Without it the job table only grows (the callback endpoint alone enqueues a job per few hundred events). Deletes
    in batches of `batch` rows, so the table is never locked for long; READY and RUNNING jobs are never touched.
    """
    from django_tasks_db.models import DBTaskResult

    now = now or timezone.now()
    finished = DBTaskResult.objects.filter(backend_name=alias).filter(
        Q(status=TaskResultStatus.SUCCESSFUL, finished_at__lt=now - keep)
        | Q(status=TaskResultStatus.FAILED, finished_at__lt=now - keep_failed)
    )
    deleted = 0
    while True:
        ids = list(finished.values_list("id", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += DBTaskResult.objects.filter(id__in=ids).delete()[0]


def pending_job_calls(
    task: Task[P, T], *, running_since: dt.datetime, alias: str = DEFAULT_TASK_BACKEND_ALIAS
) -> list[tuple[Sequence[Any], Mapping[str, Any]]] | None:
    """The (args, kwargs) of `task`'s jobs that are waiting to run, or running and started after `running_since`;
    None when the backend cannot tell (the immediate backend has no queue).

    For sweeps that re-enqueue lost work: what already has a job on its way needs no second one.
    """
    kind = backend_kind(alias)
    if kind == "db":
        from django_tasks_db.models import DBTaskResult

        jobs = DBTaskResult.objects.filter(backend_name=alias, task_path=task.module_path).filter(
            Q(status=TaskResultStatus.READY) | Q(status=TaskResultStatus.RUNNING, started_at__gte=running_since)
        )
        return [(job["args"], job["kwargs"]) for job in jobs.values_list("args_kwargs", flat=True)]
    if kind == "rq":
        return _rq_pending_calls(task, running_since=running_since)
    return None


def _rq_pending_calls(task: Task[P, T], *, running_since: dt.datetime) -> list[tuple[Sequence[Any], Mapping[str, Any]]]:
    import django_rq
    from rq.job import Job
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    queue = django_rq.get_queue(task.queue_name)
    waiting = [*queue.get_job_ids(), *ScheduledJobRegistry(queue=queue).get_job_ids()]
    started = set(StartedJobRegistry(queue=queue).get_job_ids())
    calls: list[tuple[Sequence[Any], Mapping[str, Any]]] = []
    for job in Job.fetch_many([*waiting, *started], connection=queue.connection):
        if job is None or job.func_name != task.module_path:
            continue
        if job.id in started:
            started_at = job.started_at
            if started_at is not None and started_at.tzinfo is None:  # rq before 2 kept naive UTC times
                started_at = started_at.replace(tzinfo=dt.UTC)
            if started_at is None or started_at < running_since:
                continue
        calls.append((job.args, job.kwargs))
    return calls
