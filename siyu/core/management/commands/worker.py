"""`siyu worker`: run the background-job worker of the configured backend, on the fast and default queues.

Which worker runs follows the TASKS setting, i.e. the environment:

    siyu worker                                   # SIYU_TASKS_BACKEND=db (default): django-tasks-db's db_worker
    SIYU_TASKS_BACKEND=rq REDIS_URL=redis://host:6379/0 siyu worker
                                                  # an RQ worker (django-tasks-rq's Job class) on Redis

Switching to Redis needs nothing but those two variables, set for the web processes and the workers alike;
start as many RQ workers, on as many hosts, as the load needs. With SIYU_TASKS_BACKEND=immediate jobs run in
the web process after commit and there is nothing for a worker to do.

`--burst` processes what is queued and exits (tests, cron-style runs). `--in-process` (RQ only) runs each job
in the worker process (rq.SimpleWorker) instead of a forked work horse: what tests need, since a fork would
not share their database connection; the database worker always runs jobs in-process.

Recovery sweep (恢复): a worker killed mid-job (kill -9, OOM, a lost machine) leaves work behind that nobody would
pick up. Every worker sweeps for it before it takes its first job and then every `--sweep-seconds`
(SIYU_WORKER_SWEEP_SECONDS, default 60) in a background thread: on the database backend the jobs dead workers
left RUNNING go back in line, first (siyu.core.jobs.db_jobs_recover; RQ does this itself for its workers), and
callbacks still unprocessed with no job on its way are enqueued again (siyu.wecom.services.raw_callback_requeue),
and so are customer transfers whose submit or poll job was lost (siyu.inheritance.services.transfer_sweep).
Everything it needs is in the database, so a restarted worker, or any other worker, finishes what a dead one
started; several workers sweeping at once do no harm, because jobs are idempotent.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from argparse import ArgumentParser
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.utils import timezone

from siyu.core.jobs import BackendKind, backend_kind, backend_queues, db_jobs_prune, db_jobs_recover, worker_id_new

logger = logging.getLogger("siyu.worker")


def recovery_sweep(*, kind: BackendKind, older_than: dt.timedelta) -> None:
    """One pass of the recovery sweep (see the module docstring); logs what it found, raises nothing."""
    # `worker` is a composition root, like `serve`: it may call into the contexts whose work it recovers.
    from siyu.analytics.privacy import exports_expire_due as segment_exports_expire_due
    from siyu.analytics.services import segment_refresh_due
    from siyu.campaigns.services import fission_settle_due
    from siyu.channels.services import live_codes_rebalance_due
    from siyu.customers.lifecycle import lifecycle_due
    from siyu.customers.privacy import exports_expire_due as customer_exports_expire_due
    from siyu.inheritance.services import transfer_sweep
    from siyu.leads.services import leads_due
    from siyu.tags.push import tag_pushes_due
    from siyu.tags.rules import tag_rules_due
    from siyu.tags.services import chat_archive_pull_due
    from siyu.wecom.services import raw_callback_requeue

    def recover_jobs() -> None:
        if kind == "db":
            jobs = db_jobs_recover()
            if jobs.requeued or jobs.failed:
                logger.warning("recovered jobs of dead workers: %d queued again, %d failed", jobs.requeued, jobs.failed)
            _prune_finished_jobs()

    steps: tuple[tuple[str, Callable[[], object]], ...] = (
        ("jobs", recover_jobs),
        ("callbacks", lambda: raw_callback_requeue(older_than=older_than)),
        # Live codes whose guide rota changes with the clock (schedules, daily caps reset at midnight).
        ("live codes", live_codes_rebalance_due),
        # Fission invites whose 24-hour hold ended while their settle job was lost.
        ("fission", fission_settle_due),
        # Transfers whose submit or poll job was lost (their own, longer threshold: a poll waits out 24 hours).
        ("transfers", transfer_sweep),
        # Keyword tagging: brands with an enabled keyword rule read their new archived chat messages (a job each).
        ("chat archive", chat_archive_pull_due),
        # Segments whose scheduled (hourly or daily) recount is due.
        ("segments", segment_refresh_due),
        # Tag changes WeCom has not received yet (lost jobs, backoffs), and nightly automatic tagging rules.
        ("tag pushes", tag_pushes_due),
        ("tag rules", tag_rules_due),
        # Lifecycle: brands whose nightly stage rules are due (a job each).
        ("lifecycle", lifecycle_due),
        # Leads nobody followed up in time go back to the public pool (a job per brand).
        ("leads", leads_due),
        # CSV exports of personal data past SIYU_EXPORT_RETENTION_DAYS: files deleted.
        ("customer exports", customer_exports_expire_due),
        ("segment exports", segment_exports_expire_due),
    )
    for name, step in steps:
        try:
            step()
        except Exception:
            # Each step on its own: one that fails (database briefly away, a bug in one context) is tried again
            # next time and does not hold back the others; the worker keeps working.
            logger.exception("recovery sweep step %s failed", name)


PRUNE_EVERY = dt.timedelta(hours=1)
_last_prune: dt.datetime | None = None


def _prune_finished_jobs() -> None:
    """Finished jobs older than SIYU_JOB_RETENTION_DAYS (failed: SIYU_FAILED_JOB_RETENTION_DAYS) go, once an hour
    per worker: the job table would otherwise grow forever."""
    global _last_prune
    now = timezone.now()
    if _last_prune is not None and now - _last_prune < PRUNE_EVERY:
        return
    _last_prune = now
    pruned = db_jobs_prune(
        keep=dt.timedelta(days=settings.SIYU_JOB_RETENTION_DAYS),
        keep_failed=dt.timedelta(days=settings.SIYU_FAILED_JOB_RETENTION_DAYS),
        now=now,
    )
    if pruned:
        logger.info("pruned %d finished jobs", pruned)


class _Sweeper(threading.Thread):
    """Runs `recovery_sweep` every `every` seconds until the process ends (a daemon: kill -9 needs no clean-up)."""

    def __init__(self, kind: BackendKind, every: float) -> None:
        super().__init__(name="siyu-recovery-sweep", daemon=True)
        self.kind, self.every = kind, every

    def run(self) -> None:
        while True:
            time.sleep(self.every)
            recovery_sweep(kind=self.kind, older_than=dt.timedelta(seconds=self.every))
            # This thread's own connection: not kept open between sweeps.
            connections.close_all()


class Command(BaseCommand):
    help = "Run the background-job worker of the configured backend (SIYU_TASKS_BACKEND=db|rq)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--burst", action="store_true", help="process the queued jobs, then exit")
        parser.add_argument(
            "--queues",
            default="",
            help="comma-separated queues to work on (default: every queue of the backend, fast first)",
        )
        parser.add_argument(
            "--in-process",
            action="store_true",
            help="rq: run jobs in the worker process (rq.SimpleWorker), without forking a work horse",
        )
        parser.add_argument("--max-jobs", type=int, default=None, help="exit after this many jobs")
        parser.add_argument(
            "--sweep-seconds",
            type=float,
            default=settings.SIYU_WORKER_SWEEP_SECONDS,
            help="recover work dead workers left behind at start and then this often (0: at start only)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        kind = backend_kind()
        configured = backend_queues()
        queues = [q.strip() for q in options["queues"].split(",") if q.strip()] or configured
        unknown = sorted(set(queues) - set(configured))
        if unknown:
            raise CommandError(f"unknown queue {unknown[0]!r}: the backend has {', '.join(configured)}")
        every = options["sweep_seconds"]
        if every < 0:
            raise CommandError("--sweep-seconds must be 0 or more")
        if kind in ("db", "rq"):
            # Before the first job: a job its dead predecessor was running goes back in line first.
            # With no periodic sweep, a callback still counts as lost only after a minute without a job.
            recovery_sweep(kind=kind, older_than=dt.timedelta(seconds=every or 60))
            if every and not options["burst"]:
                _Sweeper(kind, every).start()
        if kind == "db":
            self._db_worker(
                queues, burst=options["burst"], max_jobs=options["max_jobs"], verbosity=options["verbosity"]
            )
        elif kind == "rq":
            self._rq_worker(
                queues,
                burst=options["burst"],
                in_process=options["in_process"],
                max_jobs=options["max_jobs"],
                verbosity=options["verbosity"],
            )
        elif kind == "immediate":
            raise CommandError(
                "SIYU_TASKS_BACKEND=immediate runs jobs in the web process; no worker is needed. "
                "Set SIYU_TASKS_BACKEND=db or rq to run jobs in a worker."
            )
        else:
            raise CommandError(
                "siyu worker knows the db and rq backends only; set SIYU_TASKS_BACKEND=db or rq "
                "(TASKS['default'] is a backend it cannot run)"
            )

    def _db_worker(self, queues: list[str], *, burst: bool, max_jobs: int | None, verbosity: int) -> None:
        self.stdout.write(f"siyu worker: database backend, queues {', '.join(queues)}")
        call_command(
            "db_worker",
            queue_name=",".join(queues),
            batch=burst,
            reload=False,
            # The start-up jitter spreads a fleet's polling; a burst run wants its jobs done now.
            startup_delay=not burst,
            max_tasks=max_jobs,
            # How long an idle worker waits before looking for jobs again. Short, because a welcome message must
            # reach WeCom within 20 s of the add (siyu aims at 2 s): django-tasks-db's default second would be
            # half of that budget. An idle poll is one indexed query.
            interval=settings.SIYU_WORKER_POLL_SECONDS,
            # Names this process (host, pid, start time), so a later sweep can tell it died (siyu.core.jobs).
            worker_id=worker_id_new(),
            verbosity=verbosity,
            stdout=self.stdout,
            stderr=self.stderr,
        )

    def _rq_worker(
        self, queues: list[str], *, burst: bool, in_process: bool, max_jobs: int | None, verbosity: int
    ) -> None:
        # Imported here so the database set-up never needs redis or rq.
        from django_rq.workers import get_worker
        from django_tasks_rq import Job
        from redis.exceptions import ConnectionError as RedisConnectionError
        from rq import SimpleWorker, Worker

        worker = get_worker(*queues, job_class=Job, worker_class=SimpleWorker if in_process else Worker)
        self.stdout.write(f"siyu worker: RQ backend on {worker.connection}, queues {', '.join(queues)}")
        if not in_process:
            # A forked work horse must not share the parent's database sockets.
            connections.close_all()
        level = "DEBUG" if verbosity >= 2 else "WARNING" if verbosity == 0 else "INFO"
        try:
            # The scheduler moves jobs enqueued with run_after into their queue when due.
            worker.work(burst=burst, with_scheduler=True, max_jobs=max_jobs, logging_level=level)
        except RedisConnectionError as exc:
            raise CommandError(f"cannot reach Redis for the RQ worker: {exc}") from exc
