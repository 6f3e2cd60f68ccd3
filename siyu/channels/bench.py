"""`siyu bench welcome`: how long a new customer waits for the welcome message after scanning a live code.

Everything runs as in production, on a database of the bench's own (a SQLite file or a fresh PostgreSQL database,
dropped afterwards), in separate processes started by siyu.core.stack: the WeCom emulator (`siyu emulator`), siyu's
server (`siyu serve --no-worker`, granian by default) with the real callback endpoint, and one `siyu worker` with
the database job backend. The bench connects a throwaway brand to the emulator, creates a live code over three
guides with a welcome message, then has N simulated customers scan it at a steady rate. The emulator pushes each
add_external_contact callback (with its WelcomeCode) to the server; the worker processes it and sends the welcome
message. Each add is timed from just before the scan to the moment siyu recorded WeCom's acceptance
(WelcomeSend.sent_at); WeCom allows 20 s, the target is p99 ≤ 2 s. Errors in the processes' logs are printed.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from siyu.channels.models import WelcomeSend
from siyu.channels.services import live_code_create
from siyu.core import services as core_services
from siyu.core.models import Role, Tenant
from siyu.core.scopes import Actor
from siyu.core.stack import (
    Stack,
    StackError,
    bench_keys,
    log_errors,
    percentile,
    redacted,
    scratch_database,
    scratch_folder,
    scratch_postgres_url,
    siyu_stack,
    using_database,
)
from siyu.emulator.model import Corp, from_jsonable

CORP_ID = "wwbenchwelcome01"
# The seeded corp: one store of three guides, a few customers (`siyu emulator` flags).
EMULATOR_FLAGS = (
    *("--no-persist", "--seed", "3", "--regions", "1", "--stores-per-region", "1"),
    *("--guides-per-store", "3", "--customers", "5"),
)
SETTLE_SECONDS = 30.0


def run(options: dict[str, Any], console: Console) -> None:
    adds = int(options.get("adds") or 200)
    rate = float(options.get("rate") or 10.0)
    if adds < 1 or rate <= 0:
        raise LookupError("--adds must be at least 1 and --rate above 0")
    postgres = options["database"] == "postgres"
    url = options.get("database_url") or scratch_postgres_url("siyu_bench")
    server = options.get("server") or "granian"
    # The throwaway brand's callback token and EncodingAESKey (WeCom's form: 43 characters, no trailing "=").
    token = secrets.token_hex(16)
    aes_key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")[:43]
    emulator_args = (*EMULATOR_FLAGS, "--callback-token", token, "--callback-aes-key", aes_key)
    try:
        with (
            bench_keys(),
            scratch_folder("bench-welcome-") as folder,
            scratch_database(folder, postgres=postgres, url=url) as database,
        ):
            console.print(f"bench database: {database.label} ({redacted(database.url)})")
            with (
                siyu_stack(
                    database.url, folder, corp_id=CORP_ID, emulator_args=emulator_args, web_workers=1, server=server
                ) as stack,
                using_database(database.url),
            ):
                tenant = stack.connect(
                    name="Bench welcome", slug="bench-welcome", callback_token=token, encoding_aes_key=aes_key
                )
                started, rows = _measure(console, stack, tenant, adds, rate)
            # The processes have stopped: their logs are complete.
            errors = {path.name: log_errors(path.read_text(errors="replace")) for path in folder.glob("*.log")}
    except StackError as exc:
        # What failed, with the errors in the logs (the exception's notes): the folder holding them is gone.
        raise LookupError("\n".join([str(exc), *getattr(exc, "__notes__", [])])) from exc
    _print(console, database.label, server, adds, rate, started, rows)
    for name, found in sorted(errors.items()):
        if found:
            console.print(f"[red]{len(found)} errors in {name}[/], the first:\n{escape(found[0])}")


def _measure(
    console: Console, stack: Stack, tenant: Tenant, adds: int, rate: float
) -> tuple[dict[str, float], list[tuple[Any, ...]]]:
    """A live code over three of the corp's guides, `adds` scans of it at `rate` per second; when each scan
    started (by its welcome code) and the welcome messages siyu recorded."""
    corp = from_jsonable(Corp, stack.corp_export())
    actor = Actor(user_id=None, tenant_id=tenant.id, role=Role.HQ_ADMIN)
    members = [m.userid for m in corp.members.values() if m.customer_contact and m.status == 1][:3]
    guides = [core_services.guide_create(tenant=tenant, name=u, wecom_userid=u) for u in members]
    code = live_code_create(
        actor=actor,
        name="bench",
        guide_ids=[g.id for g in guides],
        state="bench-welcome",
        welcome_text="{客户昵称}您好，我是{导购}，欢迎光临！",
    )
    started: dict[str, float] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        scans = progress.add_task("scans", total=adds)
        sent = progress.add_task("welcomes", total=adds)
        t_first = time.monotonic()
        for i in range(adds):
            # A steady rate: scan i happens at i / rate seconds.
            time.sleep(max(0.0, t_first + i / rate - time.monotonic()))
            at = time.time()
            out = stack.admin("simulate/add_contact", {"config_id": code.config_id, "name": f"顾客{i}"})
            started[out["welcome_code"]] = at
            progress.advance(scans)
            if i % 10 == 0:
                progress.update(sent, completed=_final().count())
        deadline = time.monotonic() + SETTLE_SECONDS
        while _final().count() < adds and time.monotonic() < deadline:
            progress.update(sent, completed=_final().count())
            time.sleep(0.2)
        progress.update(sent, completed=_final().count())
    rows = list(_final().values_list("welcome_code", "status", "errcode", "sent_at", "latency_ms"))
    return started, rows


def _final() -> Any:
    return WelcomeSend.objects.exclude(status__in=[WelcomeSend.Status.PENDING, WelcomeSend.Status.SENDING])


def _print(
    console: Console,
    label: str,
    server: str,
    adds: int,
    rate: float,
    started: dict[str, float],
    rows: list[tuple[Any, ...]],
) -> None:
    end_to_end = sorted(
        (sent_at.timestamp() - started[code]) * 1000
        for code, status, _, sent_at, _ in rows
        if sent_at and code in started
    )
    receipt = sorted(latency for *_, latency in rows if latency is not None)
    statuses = Counter(status for _, status, *_ in rows)
    errcodes = Counter(errcode for _, _, errcode, *_ in rows if errcode)
    table = Table(title=f"welcome messages: {adds} scans at {rate:g}/s ({label}, {server} + 1 db worker)")
    table.add_column("measure")
    for q in ("p50", "p95", "p99", "max"):
        table.add_column(q, justify="right")

    def line(name: str, values: list[float]) -> None:
        qs = [percentile(values, q) for q in (0.5, 0.95, 0.99)] + [values[-1] if values else 0.0]
        table.add_row(name, *(f"{v:,.0f} ms" for v in qs))

    line("scan → sent (end to end)", end_to_end)
    line("callback received → sent", receipt)
    console.print(table)
    missing = adds - len(rows)
    console.print(
        f"welcome: sent={statuses.get('sent', 0)} failed={statuses.get('failed', 0)} "
        f"skipped={statuses.get('skipped', 0)} never recorded={missing} errcodes={dict(errcodes)} "
        f"p99={percentile(end_to_end, 0.99):,.0f} ms (target ≤ 2,000 ms; WeCom allows 20,000 ms)"
    )
