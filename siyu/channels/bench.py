"""`siyu bench welcome`: how long a new customer waits for the welcome message after scanning a live code.

Everything runs as in production, on a database of the bench's own (SQLite file or a fresh PostgreSQL database,
dropped afterwards): the WeCom emulator over HTTP (in this process), siyu's production server (granian) with the
real callback endpoint, and one `siyu worker` with the database job backend. The bench connects a throwaway brand
to the emulator, creates a live code over three guides with a welcome message, then has N simulated customers
scan it at a steady rate. The emulator pushes each add_external_contact callback (with its WelcomeCode) to the
server; the worker processes it and sends the welcome message. Each add is timed from just before the scan to
the moment siyu recorded WeCom's acceptance (WelcomeSend.sent_at); WeCom allows 20 s, the target is p99 ≤ 2 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from django.core.management import call_command
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from siyu.channels.models import WelcomeSend
from siyu.channels.services import live_code_create
from siyu.core import services as core_services
from siyu.core.models import Role
from siyu.core.scopes import Actor
from siyu.emulator.config import EmulatorConfig
from siyu.emulator.core import Emulator
from siyu.emulator.seed import SeedSpec, build_corp
from siyu.emulator.server import serve_in_thread
from siyu.wecom.bench import (
    _percentile,
    _redacted,
    bench_database,
    bench_keys,
    production_server,
    server_env,
    using_database,
)
from siyu.wecom.services import connection_create
from siyu.wecom.tests.support import AES_KEY, TOKEN

SPEC = SeedSpec(seed=3, corp_id="wwbenchwelcome01", regions=1, stores_per_region=1, guides_per_store=3, customers=5)
SETTLE_SECONDS = 30.0


@contextmanager
def _worker(database_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """One `siyu worker` on the bench database (its own process group, stopped afterwards)."""
    env = {**server_env(database_url), "SIYU_TASKS_BACKEND": "db"}
    argv = [sys.executable, "-m", "siyu.cli", "worker"]
    process = subprocess.Popen(argv, env=env, start_new_session=True)  # noqa: S603 - fixed argv
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def run(options: dict[str, Any], console: Console) -> None:
    adds = int(options.get("adds") or 200)
    rate = float(options.get("rate") or 10.0)
    if adds < 1 or rate <= 0:
        raise LookupError("--adds must be at least 1 and --rate above 0")
    with bench_keys(), bench_database(options["database"], options.get("database_url") or "", False) as database:
        console.print(f"bench database: {database.label} ({_redacted(database.url)})")
        with using_database(database.url):
            call_command("migrate", verbosity=0, interactive=False)
            _measure(console, database.url, database.label, adds, rate, options)


def _measure(console: Console, database_url: str, label: str, adds: int, rate: float, options: dict[str, Any]) -> None:
    emulator = serve_in_thread(Emulator(EmulatorConfig(), [build_corp(SPEC)]))
    try:
        corp = next(iter(emulator.emulator.corps.values()))
        tenant = core_services.tenant_create(name="Bench welcome", slug="bench-welcome", wecom_corp_id=corp.corp_id)
        actor = Actor(user_id=None, tenant_id=tenant.id, role=Role.HQ_ADMIN)
        connection_create(
            actor=actor,
            corp_id=corp.corp_id,
            agent_id=str(corp.apps[0].agentid),
            contact_secret=corp.apps[0].secret,
            callback_token=TOKEN,
            encoding_aes_key=AES_KEY,
            api_base_url=f"{emulator.url}/cgi-bin/",
        )
        members = [m.userid for m in corp.members.values() if m.customer_contact and m.status == 1][:3]
        guides = [core_services.guide_create(tenant=tenant, name=u, wecom_userid=u) for u in members]
        code = live_code_create(
            actor=actor,
            name="bench",
            guide_ids=[g.id for g in guides],
            state="bench-welcome",
            welcome_text="{客户昵称}您好，我是{导购}，欢迎光临！",
        )
        server_kind = options.get("server") or "granian"
        with (
            production_server(database_url, kind=server_kind, workers=1, threads=8) as server,
            _worker(database_url),
        ):
            httpx.post(
                f"{emulator.url}/emulator/callback",
                json={
                    "url": f"http://127.0.0.1:{server.port}/wecom/callback/{corp.corp_id}/",
                    "token": TOKEN,
                    "encoding_aes_key": AES_KEY,
                },
                timeout=10,
            ).raise_for_status()
            started: dict[str, float] = {}
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, console=console) as progress, httpx.Client(timeout=30) as http:
                scans = progress.add_task("scans", total=adds)
                sent = progress.add_task("welcomes", total=adds)
                t_first = time.monotonic()
                for i in range(adds):
                    # A steady rate: scan i happens at i / rate seconds.
                    time.sleep(max(0.0, t_first + i / rate - time.monotonic()))
                    at = time.time()
                    out = http.post(
                        f"{emulator.url}/emulator/simulate/add_contact",
                        json={"config_id": code.config_id, "name": f"顾客{i}"},
                    ).json()
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
    finally:
        emulator.stop()
    _print(console, label, adds, rate, started, rows)


def _final() -> Any:
    return WelcomeSend.objects.exclude(status__in=[WelcomeSend.Status.PENDING, WelcomeSend.Status.SENDING])


def _print(
    console: Console, label: str, adds: int, rate: float, started: dict[str, float], rows: list[tuple[Any, ...]]
) -> None:
    end_to_end = sorted(
        (sent_at.timestamp() - started[code]) * 1000
        for code, status, _, sent_at, _ in rows
        if sent_at and code in started
    )
    receipt = sorted(latency for *_, latency in rows if latency is not None)
    statuses = Counter(status for _, status, *_ in rows)
    errcodes = Counter(errcode for _, _, errcode, *_ in rows if errcode)
    table = Table(title=f"welcome messages: {adds} scans at {rate:g}/s ({label}, granian + 1 db worker)")
    table.add_column("measure")
    for q in ("p50", "p95", "p99", "max"):
        table.add_column(q, justify="right")

    def line(name: str, values: list[float]) -> None:
        qs = [_percentile(values, q) for q in (0.5, 0.95, 0.99)] + [values[-1] if values else 0.0]
        table.add_row(name, *(f"{v:,.0f} ms" for v in qs))

    line("scan → sent (end to end)", end_to_end)
    line("callback received → sent", receipt)
    console.print(table)
    missing = adds - len(rows)
    console.print(
        f"welcome: sent={statuses.get('sent', 0)} failed={statuses.get('failed', 0)} "
        f"skipped={statuses.get('skipped', 0)} never recorded={missing} errcodes={dict(errcodes)} "
        f"p99={_percentile(end_to_end, 0.99):,.0f} ms (target ≤ 2,000 ms; WeCom allows 20,000 ms)"
    )
