"""`siyu demo`: load the demo brand 澄光美妆 (deterministic, resumable, about a minute at full size)."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import translation
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from siyu.core import pii
from siyu.core.errors import SiyuError
from siyu.demo import reference as ref
from siyu.demo.selectors import demo_load_states, demo_logins
from siyu.demo.services import demo_load
from siyu.demo.wecom import demo_wecom_connect

URL = "http://127.0.0.1:8000"


class RichReporter:
    """Shows each phase of the load as a progress bar with the rows written so far."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<34}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            console=console,
        )
        self.task: TaskID | None = None
        self.planning_task: TaskID | None = None

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.progress.stop()

    def planning(self, what: str) -> None:
        self._end_planning()
        self.planning_task = self.progress.add_task(what, total=None)

    def _end_planning(self) -> None:
        if self.planning_task is not None:
            self.progress.remove_task(self.planning_task)
            self.planning_task = None

    def phase_started(self, phase: str, label: str, total: int) -> None:
        self._end_planning()
        self.task = self.progress.add_task(label, total=total)

    def phase_already_done(self, phase: str, label: str, rows: int) -> None:
        self.progress.add_task(f"{label} (earlier run)", total=rows, completed=rows)

    def advance(self, rows: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, rows)

    def phase_finished(self, phase: str, rows: int, seconds: float) -> None:
        if self.task is not None:
            task = next(t for t in self.progress.tasks if t.id == self.task)
            self.progress.update(self.task, total=max(task.completed, rows), completed=max(task.completed, rows))
            self.task = None


class Command(BaseCommand):
    help = (
        "Load the demo brand 澄光美妆 with its stores, guides, customers, tags, timeline and orders. "
        "Deterministic (same seed, same brand); re-running finishes an interrupted load or does nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--customers",
            type=int,
            default=None,
            help=f"number of customers; orders, events and tags scale with it (default {ref.DEFAULT_CUSTOMERS:,})",
        )
        parser.add_argument("--seed", type=int, default=None, help=f"random seed (default {ref.DEFAULT_SEED})")
        parser.add_argument("--slug", default=ref.BRAND_SLUG, help="the demo brand's slug (default: demo)")

    def handle(self, *args: Any, **options: Any) -> None:
        self._check_ready()
        console = Console(file=self.stdout._out, highlight=False)  # type: ignore[attr-defined]
        translation.activate("en")  # role labels in the summary; the console itself stays in Chinese
        # The load holds back the jobs its services enqueue (siyu.demo.services.jobs_held); any it queues after a
        # phase would log a line each, which would tear through the progress bars.
        jobs_log = logging.getLogger("siyu.core.jobs")
        level = jobs_log.level
        jobs_log.setLevel(max(level, logging.WARNING))
        try:
            with RichReporter(console) as reporter:
                result = demo_load(
                    slug=options["slug"], seed=options["seed"], customers=options["customers"], reporter=reporter
                )
        except SiyuError as exc:
            raise CommandError(exc.message) from exc
        finally:
            jobs_log.setLevel(level)
        load = result.load
        # Connected even when the load was done earlier: an install from before the emulator existed gets it now.
        if load.tenant is not None:
            demo_wecom_connect(tenant=load.tenant, emulator_url=settings.SIYU_EMULATOR_URL)
        if result.already_loaded:
            console.print(
                f"Demo brand {ref.BRAND_NAME} ({load.slug}) is already loaded "
                f"({load.customers:,} customers, seed {load.seed}): nothing to load; `siyu serve` hands the WeCom "
                "emulator the brand afresh."
            )
        else:
            rows = sum(s.rows for s in demo_load_states(load=load))
            console.print(
                f"Loaded demo brand {ref.BRAND_NAME} ({load.slug}): {rows:,} rows, "
                f"this run {result.seconds:.1f} s on {connection.vendor}."
            )
        self._logins(console, load)

    def _check_ready(self) -> None:
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            raise CommandError("the database is not fully migrated: run `siyu migrate` first")
        try:
            pii.encrypt("check", field="name")
            pii.phone_hash("13800000000")
        except ImproperlyConfigured as exc:
            raise CommandError(f"{exc} (the demo encrypts its customers' personal data)") from exc

    def _logins(self, console: Console, load: Any) -> None:
        table = Table(title=f"{ref.BRAND_NAME} demo · {URL}", title_justify="left", show_edge=False)
        table.add_column("login")
        table.add_column("role")
        table.add_column("sees")
        for login in demo_logins(load=load):
            table.add_row(login.username, login.role, login.scope)
        console.print()
        console.print(table)
        console.print(f"\nURL       {URL}\nPassword  {ref.DEMO_PASSWORD}  (the same for every login above)\n")
