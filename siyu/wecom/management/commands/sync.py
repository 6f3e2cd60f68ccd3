"""`siyu sync`: pull members, corp tags, contacts with follow relations and customer groups from WeCom.

    siyu sync                          # every brand with a WeCom connection, all phases
    siyu sync --tenant demo --only contacts,groups
    siyu sync --restart                # abandon an unfinished run instead of resuming it

Resumable: a run that failed or was interrupted (Ctrl-C, kill) continues from its last committed page the next
time the same phases are synced. Idempotent: a second run changes nothing. See siyu.wecom.sync.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from siyu.core.errors import SiyuError
from siyu.wecom.models import SyncRun
from siyu.wecom.selectors import COUNT_KEYS, sync_run_summary, sync_targets
from siyu.wecom.services import SYNC_PHASES
from siyu.wecom.sync import SyncOptions, sync_run

LABELS = {
    "members": "Members (guides)",
    "tags": "Corp tags",
    "contacts": "Contacts and follow relations",
    "groups": "Customer groups",
}
UNITS = {"members": "departments", "tags": "tag library", "contacts": "follow relations", "groups": "groups"}


class RichReporter:
    """One progress bar per phase: departments for members, rows for contacts and groups (whose totals WeCom
    does not tell in advance: the bar pulses and the count grows)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<32}"),
            BarColumn(),
            TextColumn("{task.completed:>7,.0f}{task.fields[of]} {task.fields[unit]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.progress.stop()

    def run_start(self, run: SyncRun, *, resumed: bool) -> None:
        if resumed:
            self.console.print(
                f"Resuming sync #{run.id} (attempt {run.attempts}) at {run.phase}, after {run.pages} committed pages."
            )

    def phase_start(self, phase: str, *, total: int | None, completed: int) -> None:
        of = f" / {total:,}" if total is not None else ""
        self.tasks[phase] = self.progress.add_task(
            LABELS[phase], total=total, completed=completed, of=of, unit=UNITS[phase]
        )

    def phase_advance(self, phase: str, *, advance: int, note: str = "") -> None:
        self.progress.advance(self.tasks[phase], advance)

    def phase_end(self, phase: str, *, counts: Mapping[str, int]) -> None:
        task_id = self.tasks.get(phase)
        if task_id is None:  # finished by an earlier attempt
            task_id = self.tasks[phase] = self.progress.add_task(
                f"{LABELS[phase]} (earlier attempt)", total=1, completed=1, of="", unit=UNITS[phase]
            )
        task = next(t for t in self.progress.tasks if t.id == task_id)
        self.progress.update(task_id, total=max(task.completed, 1), completed=max(task.completed, 1))


def _counts_table(run: SyncRun) -> Table:
    summary = sync_run_summary(run)
    table = Table(title_justify="left", show_edge=False)
    table.add_column("phase")
    for key in COUNT_KEYS:
        table.add_column(key, justify="right")
    table.add_column("also")
    for phase in summary.phases:
        counts = summary.counts.get(phase, {})
        extra = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()) if k not in COUNT_KEYS and v)
        table.add_row(phase, *(f"{counts.get(k, 0):,}" for k in COUNT_KEYS), extra)
    return table


class Command(BaseCommand):
    help = (
        "Pull WeCom members, corp tags, contacts with follow relations and customer groups into siyu. "
        "Resumes an interrupted run from its last committed page; a second run changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", default="", help="the brand's slug (default: every brand connected to WeCom)")
        parser.add_argument(
            "--only",
            default="",
            help=f"comma-separated phases to run, of {','.join(SYNC_PHASES)} (default: all, in that order)",
        )
        parser.add_argument(
            "--restart", action="store_true", help="abandon an unfinished run and start afresh instead of resuming"
        )
        parser.add_argument(
            "--force", action="store_true", help="take over a run that still looks alive (its process is known dead)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        console = Console(file=self.stdout._out, highlight=False)  # type: ignore[attr-defined]
        phases = [p.strip() for p in options["only"].split(",") if p.strip()] or list(SYNC_PHASES)
        unknown = sorted(set(phases) - set(SYNC_PHASES))
        if unknown:
            raise CommandError(f"unknown phase {unknown[0]!r}: use {', '.join(SYNC_PHASES)}")
        connections = sync_targets(slug=options["tenant"])
        if not connections:
            raise CommandError(
                f"no brand {options['tenant']!r} with a WeCom connection"
                if options["tenant"]
                else "no brand is connected to WeCom yet"
            )
        failed: list[str] = []
        for connection in connections:
            tenant = connection.tenant
            console.rule(f"{tenant.name} ({tenant.slug}) · corp {connection.corp_id}")
            sync_options = SyncOptions(phases=phases, restart=options["restart"], force=options["force"])
            try:
                with RichReporter(console) as reporter:
                    sync_options.reporter = reporter
                    run = sync_run(tenant_id=tenant.id, options=sync_options)
            except SiyuError as exc:  # busy, not configured
                console.print(f"[red]{tenant.slug}: {exc.message}[/red]")
                failed.append(tenant.slug)
                continue
            except Exception as exc:
                console.print(
                    f"[red]{tenant.slug}: the sync stopped: {type(exc).__name__}: {exc}[/red]\n"
                    "Its progress is saved: run `siyu sync` again to resume from the last committed page."
                )
                failed.append(tenant.slug)
                continue
            summary = sync_run_summary(run)
            console.print(_counts_table(run))
            console.print(
                f"Sync #{run.id} of {tenant.slug} done in {summary.duration_seconds:.1f} s "
                f"({summary.pages} pages, {summary.attempts} attempt{'s' if summary.attempts > 1 else ''}); "
                f"{summary.changed:,} changes."
            )
        if failed:
            raise CommandError(f"sync failed for {', '.join(failed)}")
