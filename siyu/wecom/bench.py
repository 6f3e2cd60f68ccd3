"""`siyu bench callbacks`: how fast the callback endpoint (回调URL) acknowledges WeCom's event pushes.

The bench never touches the user's data. It creates a database of its own (a temporary SQLite file under
VAR_DIR, or a fresh PostgreSQL database `siyu_bench` that it drops afterwards; siyu.core.stack), migrates it,
connects a throwaway brand, and starts a production server on a free 127.0.0.1 port with that database: granian
(`--server granian`, the default) or gunicorn's gthread worker as `siyu serve` runs it (`--server gunicorn`),
both serving siyu.wsgi:application, tuned here (threads, connections per worker, no access log) rather than
started through `siyu serve`; it logs to a folder under VAR_DIR, whose errors are printed when a check fails.
Before the clock starts it builds N distinct callbacks exactly as WeCom sends them — contact adds, deletes and
edits and group changes, encrypted and signed with the connection's token and key, each with its own nonce and a
fresh timestamp — then fires them over keep-alive HTTP/1.1 connections from an asyncio load generator and times
each one from the first byte sent to the last byte of the 200.

Afterwards it checks the contract: every answer was an empty 200, exactly N rows are stored (each request's row
was committed before its 200, so what is stored once the last answer is in is final), the stored nonces are the
ones sent, a sample of WeCom's retries (the same event again, identical or re-signed) stored nothing new, and
(database job backend) every stored row is named by exactly one processing job. Nothing is processed: the bench
runs no `siyu worker`. It prints the figures and one plain `callbacks: ...` line with the checks.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import secrets
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.management import call_command
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from siyu.core import services as core_services
from siyu.core.jobs import backend_kind
from siyu.core.models import Role
from siyu.core.scopes import Actor
from siyu.core.stack import (
    Processes,
    ScratchDatabase,
    StackError,
    bench_keys,
    free_port,
    percentile,
    redacted,
    scratch_database,
    scratch_folder,
    scratch_postgres_url,
    using_database,
)
from siyu.emulator import ids
from siyu.emulator.callbacks import Event, chat_event, contact_event
from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.intake import KICK_SECONDS
from siyu.wecom.models import RawCallback
from siyu.wecom.services import connection_create

CORP_ID = "wwbenchcallbacks"
AGENT_ID = "1000002"
READY_TIMEOUT = 60.0  # seconds the server's workers may take to boot
REQUEST_TIMEOUT = 30.0  # a request not answered in this long counts as an error and the run stops


# -- the brand and its callbacks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchBrand:
    corp_id: str
    token: str
    aes_key: str


def bench_brand_create() -> BenchBrand:
    """A throwaway brand connected to corp CORP_ID, with a fresh callback token and EncodingAESKey."""
    tenant = core_services.tenant_create(name="Bench brand", slug="bench-callbacks", wecom_corp_id=CORP_ID)
    token = secrets.token_hex(16)
    aes_key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")[:43]  # WeCom's form: no trailing "="
    connection_create(
        actor=Actor(user_id=None, tenant_id=tenant.id, role=Role.HQ_ADMIN),
        corp_id=CORP_ID,
        agent_id=AGENT_ID,
        callback_token=token,
        encoding_aes_key=aes_key,
        api_base_url="http://127.0.0.1:9/cgi-bin/",  # nothing is fetched: processing is not part of the bench
    )
    return BenchBrand(corp_id=CORP_ID, token=token, aes_key=aes_key)


def _event(n: int, rng: random.Random, now: int) -> Event:
    """The n-th event of a busy corp, in the mix WeCom sends: mostly adds, then deletes, edits, group changes."""
    guide = f"guide{rng.randrange(200):03d}"
    external = ids.external_userid(CORP_ID, n)
    # CreateTime spread over the last hour, with n in the ids: every event has its own dedupe key.
    create_time = now - rng.randrange(3600)
    kind = rng.random()
    if kind < 0.45:
        extra = {"State": f"store-{rng.randrange(30)}"}
        if rng.random() < 0.7:
            extra["WelcomeCode"] = ids.welcome_code(CORP_ID, n)
        return contact_event(
            CORP_ID, create_time, "add_external_contact", userid=guide, external_userid=external, **extra
        )
    if kind < 0.60:
        return contact_event(CORP_ID, create_time, "del_follow_user", userid=guide, external_userid=external)
    if kind < 0.70:
        return contact_event(CORP_ID, create_time, "del_external_contact", userid=guide, external_userid=external)
    if kind < 0.80:
        return contact_event(CORP_ID, create_time, "edit_external_contact", userid=guide, external_userid=external)
    chat = ids.chat_id(CORP_ID, rng.randrange(500))
    if kind < 0.95:
        members = [ids.external_userid(CORP_ID, 10_000_000 + n * 3 + i) for i in range(rng.randrange(1, 4))]
        detail = rng.choice(["add_member", "del_member"])
        scene = {"JoinScene": 3} if detail == "add_member" else {"QuitScene": 0}
        return chat_event(
            CORP_ID,
            create_time,
            "update",
            chat_id=chat,
            UpdateDetail=detail,
            **scene,
            MemChangeCnt=len(members),
            MemChangeList=members,
            LastMemVer=secrets.token_hex(16),
            CurMemVer=f"v{n}",
        )
    return chat_event(CORP_ID, create_time, "update", chat_id=chat, UpdateDetail="change_name", CurMemVer=f"v{n}")


@dataclass
class Callback:
    """One POST, ready to write to a socket."""

    nonce: str
    request: bytes


class CallbackFactory:
    """Signs and encrypts events the way WeCom does, into complete HTTP/1.1 requests."""

    def __init__(self, brand: BenchBrand, host: str) -> None:
        self.crypto = WeComCrypto(brand.token, brand.aes_key, brand.corp_id)
        self.brand = brand
        self.host = host
        self._nonces: set[str] = set()

    def nonce(self) -> str:
        while True:
            nonce = str(secrets.randbelow(10**10)).zfill(10)
            if nonce not in self._nonces:
                self._nonces.add(nonce)
                return nonce

    def build(self, xml: str, *, timestamp: int) -> Callback:
        nonce = self.nonce()
        ts = str(timestamp)
        encrypted, signature = self.crypto.encrypt_message(plaintext=xml, timestamp=ts, nonce=nonce)
        body = self.crypto.build_envelope(to_user=self.brand.corp_id, encrypted=encrypted, agent_id=AGENT_ID)
        query = urlencode({"msg_signature": signature, "timestamp": ts, "nonce": nonce})
        head = (
            f"POST /wecom/callback/{self.brand.corp_id}/?{query} HTTP/1.1\r\n"
            f"Host: {self.host}\r\n"
            "User-Agent: Mozilla/4.0\r\n"
            "Content-Type: text/xml\r\n"
            f"Content-Length: {len(body)}\r\n"
            "\r\n"
        )
        return Callback(nonce=nonce, request=head.encode("ascii") + body)


# -- the load generator ------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    sent: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, one per answered request
    statuses: Counter[int] = field(default_factory=Counter)
    bad_bodies: Counter[bytes] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # transport errors (reset, timeout)
    elapsed: float = 0.0

    @property
    def failed(self) -> int:
        return (
            sum(n for status, n in self.statuses.items() if status != 200)
            + sum(self.bad_bodies.values())
            + sum(self.errors.values())
        )


class _Connection(asyncio.Protocol):
    """One keep-alive connection: sends the next request when the previous answer is complete."""

    def __init__(self, load: _Load) -> None:
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.started = 0.0
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - TCP connections are always Transports
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport
        self._send_next()

    def _send_next(self) -> None:
        request = self.load.next_request()
        if request is None:
            self.transport.close()  # type: ignore[union-attr]
            return
        self.started = time.perf_counter()
        self.transport.write(request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        length = 0
        start = head.find(b"content-length:")
        if start >= 0:
            length = int(head[start + 15 : head.find(b"\r\n", start) if head.find(b"\r\n", start) > 0 else None])
        elif b"transfer-encoding: chunked" in head:
            if not self.buffer.endswith(b"0\r\n\r\n"):
                return
            length = len(self.buffer) - end - 4
        if len(self.buffer) < end + 4 + length:
            return
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        status = int(head[9:12])
        self.load.answered(time.perf_counter() - self.started, status, body)
        if b"connection: close" in head:
            self.transport.close()  # type: ignore[union-attr]
            self.load.reconnect()
            return
        self._send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Load:
    """Feeds the requests to `concurrency` connections and collects the answers."""

    def __init__(self, requests: list[bytes], port: int, concurrency: int, progress: Any) -> None:
        self.requests = iter(requests)
        self.port = port
        self.concurrency = concurrency
        self.result = LoadResult()
        self.progress = progress
        self.pending: set[asyncio.Task[None]] = set()

    def next_request(self) -> bytes | None:
        request = next(self.requests, None)
        if request is not None:
            self.result.sent += 1
        return request

    def answered(self, latency: float, status: int, body: bytes) -> None:
        self.result.latencies.append(latency)
        self.result.statuses[status] += 1
        if status == 200 and body:
            self.result.bad_bodies[body[:60]] += 1

    def reconnect(self) -> None:
        # The server closed the connection after its answer (a worker without keep-alive): open the next one.
        self.pending.add(asyncio.get_running_loop().create_task(self._connection()))

    async def _connection(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_connection(lambda: _Connection(self), "127.0.0.1", self.port)
            await asyncio.wait_for(protocol.closed, timeout=None)
        except OSError as exc:
            self.result.errors[type(exc).__name__] += 1

    async def run(self) -> LoadResult:
        start = time.perf_counter()
        ticker = asyncio.get_running_loop().create_task(self._tick())
        self.pending = {asyncio.get_running_loop().create_task(self._connection()) for _ in range(self.concurrency)}
        answered, progressed = 0, time.monotonic()
        while self.pending:
            # A connection's task ends only when its connection closes; what shows the server is alive is answers.
            done, _ = await asyncio.wait(self.pending, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            self.pending -= done
            if len(self.result.latencies) != answered:
                answered, progressed = len(self.result.latencies), time.monotonic()
            elif self.pending and time.monotonic() - progressed > REQUEST_TIMEOUT:
                self.result.errors[f"no answer within {REQUEST_TIMEOUT:.0f} s"] += len(self.pending)
                for task in self.pending:
                    task.cancel()
                break
        self.result.elapsed = time.perf_counter() - start
        ticker.cancel()
        self.progress(len(self.result.latencies))
        return self.result

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self.progress(len(self.result.latencies))


def fire(requests: list[bytes], *, port: int, concurrency: int, progress: Any = lambda done: None) -> LoadResult:
    """Send every request over `concurrency` keep-alive connections; time each from send to complete answer."""
    return asyncio.run(_Load(requests, port, concurrency, progress).run())


# -- the server --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    port: int
    pid: int

    def _stats(self) -> dict[int, tuple[int, int]] | None:
        """pid → (parent pid, CPU ticks) of the server and its workers (Linux /proc; None elsewhere)."""
        found: dict[int, tuple[int, int]] = {}
        try:
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue  # the process ended while we looked
                pid, ppid = int(stat.parent.name), int(fields[1])
                if self.pid in (pid, ppid):
                    found[pid] = (ppid, int(fields[11]) + int(fields[12]))  # utime + stime
        except OSError:
            return None
        return found

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by the server and its workers."""
        stats = self._stats()
        return None if stats is None else sum(ticks for _, ticks in stats.values()) / os.sysconf("SC_CLK_TCK")

    def children(self) -> list[int]:
        return [pid for pid, (ppid, _) in (self._stats() or {}).items() if ppid == self.pid]


SERVERS = ("granian", "gunicorn")


def server_argv(kind: str, *, port: int, workers: int, threads: int, connections_per_worker: int) -> list[str]:
    """The production server's command line: granian (Rust HTTP, Python threads for the WSGI app) or gunicorn
    (gthread, as `siyu serve` runs it by default), on 127.0.0.1:`port`."""
    if kind == "granian":
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--blocking-threads",
            str(threads),
            "--backlog",
            "2048",
            "--no-ws",
            "--log-level",
            "warning",
            "siyu.wsgi:application",
        ]
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "siyu.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        # Keep-alive connections stay with the worker that accepted them; capping each worker's share spreads
        # them evenly, as a proxy in front would (one worker holding most connections would be the bottleneck).
        "--worker-connections",
        str(connections_per_worker),
        "--keep-alive",
        "30",
        "--backlog",
        "2048",
        "--graceful-timeout",
        "5",
        "--no-control-socket",
        "--log-level",
        "warning",
    ]


@contextmanager
def production_server(
    processes: Processes, *, kind: str, workers: int, threads: int, connections_per_worker: int = 1000
) -> Iterator[Server]:
    """The production server serving siyu on a free 127.0.0.1 port with the processes' database (logging to
    server.log); yields it once every worker has booted."""
    port = free_port()
    argv = server_argv(kind, port=port, workers=workers, threads=threads, connections_per_worker=connections_per_worker)
    process = processes.spawn("server", argv)
    try:
        # The console's front page (a redirect to the login): Django is loaded once it answers without an error.
        processes.wait_answers("server", process, f"http://127.0.0.1:{port}/", ok=lambda status: status < 400)
        server = Server(port=port, pid=process.pid)
        _wait_settled(server, workers)
        yield server
    finally:
        processes.stop(process)  # its own process group: its workers go with it


def _wait_settled(server: Server, workers: int) -> None:
    """Wait until every worker has booted (they go idle once Django is loaded): the load generator's keep-alive
    connections stay with the worker that accepted them, so a worker still booting would get none."""
    deadline = time.monotonic() + READY_TIMEOUT
    last: float | None = None
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = server.cpu_seconds()
        if now is None or (last is not None and now - last < 0.05 and len(server.children()) >= workers):
            return
        last = now


# -- the bench ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchReport:
    count: int
    acknowledged: int  # answered 200 with an empty body
    failed: int
    stored: int
    nonces_match: bool
    repeats: int
    repeats_acknowledged: int
    stored_after_repeats: int
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    server_cpu_ms: float | None  # the server's CPU time per callback
    jobs: ProcessingJobs | None  # None when the jobs are not in the database (RQ)

    @property
    def ok(self) -> bool:
        return (
            self.acknowledged == self.count
            and self.stored == self.count
            and self.nonces_match
            and self.repeats_acknowledged == self.repeats
            and self.stored_after_repeats == self.count
            and (self.jobs is None or self.jobs.every_row_once)
        )

    def summary(self) -> str:
        """One plain line with the checks, for scripts and tests."""
        jobs = "-" if self.jobs is None else f"{self.jobs.jobs} naming {self.jobs.rows_named} rows"
        return (
            f"callbacks: sent={self.count} acknowledged={self.acknowledged} stored={self.stored} "
            f"errors={self.failed} retries={self.repeats} retries_acknowledged={self.repeats_acknowledged} "
            f"rows_after_retries={self.stored_after_repeats} jobs={jobs} ok={'yes' if self.ok else 'no'}"
        )


def run(options: dict[str, Any], console: Console) -> None:
    count = int(options["count"])
    for option in ("count", "concurrency", "server_workers", "server_threads"):
        if int(options[option]) < 1:
            raise LookupError(f"--{option.replace('_', '-')} must be at least 1")
    concurrency = int(options["concurrency"])
    keep = bool(options["keep"])
    postgres = options["database"] == "postgres"
    url = options.get("database_url") or scratch_postgres_url("siyu_bench")
    try:
        with (
            bench_keys(),
            scratch_folder("bench-callbacks-", keep=keep) as folder,
            scratch_database(folder, postgres=postgres, url=url, keep=keep) as database,
        ):
            console.print(f"bench database: {database.label} ({redacted(database.url)})")
            # The server follows the configured job backend: the checks read its jobs when they are in the database.
            processes = Processes(database.url, folder, env_extra={"SIYU_TASKS_BACKEND": settings.SIYU_TASKS_BACKEND})
            with using_database(database.url):
                call_command("migrate", verbosity=0, interactive=False)
                brand = bench_brand_create()
                report = _measure(options, console, processes, brand, count, concurrency)
            errors = "" if report.ok else processes.errors()
            if keep:
                console.print(f"kept the bench database: {redacted(database.url)} (and the server's log: {folder})")
    except StackError as exc:
        # What failed, with the errors in the server's log (the exception's notes): the folder holding it is gone.
        raise LookupError("\n".join([str(exc), *getattr(exc, "__notes__", [])])) from exc
    _print(console, options, database, report, concurrency)
    if not report.ok:
        console.print(errors, markup=False, highlight=False, soft_wrap=True)
        raise LookupError("the endpoint did not acknowledge and store every callback exactly once (see above)")


def _measure(
    options: dict[str, Any],
    console: Console,
    processes: Processes,
    brand: BenchBrand,
    count: int,
    concurrency: int,
) -> BenchReport:
    rng = random.Random(int(options.get("seed") or 7))  # noqa: S311 - a reproducible mix of events, not a secret
    workers = int(options["server_workers"])
    threads = int(options["server_threads"])
    with production_server(
        processes,
        kind=options["server"],
        workers=workers,
        threads=threads,
        connections_per_worker=-(-concurrency // workers),
    ) as server:
        port = server.port
        factory = CallbackFactory(brand, f"127.0.0.1:{port}")
        now = int(time.time())
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            building = progress.add_task("signing and encrypting", total=count)
            events: list[str] = []
            callbacks: list[Callback] = []
            for n in range(count):
                xml = _event(n, rng, now).to_xml()
                events.append(xml)
                callbacks.append(factory.build(xml, timestamp=now))
                if n % 1000 == 999:
                    progress.update(building, completed=n + 1)
            progress.update(building, completed=count)
            # WeCom's retries: the identical request again (its 200 was lost), and the event re-signed under a
            # new nonce and timestamp.
            sample = rng.sample(range(count), min(count, max(10, count // 100)))
            repeats = [callbacks[i].request for i in sample[::2]]
            repeats += [factory.build(events[i], timestamp=int(time.time())).request for i in sample[1::2]]
            sending = progress.add_task("sending", total=count)
            cpu_before = server.cpu_seconds()
            result = fire(
                [c.request for c in callbacks],
                port=port,
                concurrency=concurrency,
                progress=lambda done: progress.update(sending, completed=done),
            )
            cpu_after = server.cpu_seconds()
        # Every 200 was sent after its row committed, so what is stored now is final.
        stored_nonces = set(RawCallback.objects.values_list("nonce", flat=True))
        stored = RawCallback.objects.count()
        retried = fire(repeats, port=port, concurrency=min(concurrency, 8))
        # Each server process enqueues the processing of what it stored every KICK_SECONDS; let the last ones go
        # before stopping it (a server stopped sooner leaves them to the worker's requeue sweep).
        time.sleep(4 * KICK_SECONDS)
    # The server has stopped, and with it every pending enqueue of processing jobs.
    jobs = _processing_jobs()
    latencies = sorted(result.latencies)
    acknowledged = result.statuses[200] - sum(result.bad_bodies.values())
    if result.failed:
        console.print(
            f"[red]failures:[/] statuses {dict(result.statuses)}, transport {dict(result.errors)}, "
            f"non-empty 200 bodies {dict(result.bad_bodies)}"
        )
    return BenchReport(
        count=count,
        acknowledged=acknowledged,
        failed=count - acknowledged,
        stored=stored,
        nonces_match=stored_nonces == {c.nonce for c in callbacks},
        repeats=len(repeats),
        repeats_acknowledged=retried.statuses[200] - sum(retried.bad_bodies.values()),
        stored_after_repeats=RawCallback.objects.count(),
        throughput=len(latencies) / result.elapsed if result.elapsed else 0.0,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p95_ms=percentile(latencies, 0.95) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=(latencies[-1] if latencies else 0.0) * 1000,
        mean_ms=(statistics.fmean(latencies) if latencies else 0.0) * 1000,
        server_cpu_ms=(cpu_after - cpu_before) * 1000 / count if cpu_before is not None and cpu_after else None,
        jobs=jobs,
    )


@dataclass(frozen=True)
class ProcessingJobs:
    """The processing jobs the endpoint enqueued (database backend): how many, and whether they name every
    stored row exactly once."""

    jobs: int
    rows_named: int
    every_row_once: bool


def _processing_jobs() -> ProcessingJobs | None:
    if backend_kind() != "db":
        return None  # RQ keeps its jobs in Redis, out of the bench database
    from django_tasks_db.models import DBTaskResult

    from siyu.wecom.tasks import raw_callback_run

    named: list[int] = []
    jobs = 0
    for args_kwargs in DBTaskResult.objects.filter(task_path=raw_callback_run.module_path).values_list(
        "args_kwargs", flat=True
    ):
        jobs += 1
        named.extend(args_kwargs["args"])
    stored = set(RawCallback.objects.values_list("id", flat=True))
    return ProcessingJobs(
        jobs=jobs,
        rows_named=len(named),
        every_row_once=len(named) == len(stored) == len(set(named)) and set(named) == stored,
    )


def _print(
    console: Console, options: dict[str, Any], database: ScratchDatabase, report: BenchReport, concurrency: int
) -> None:
    title = (
        f"{report.count:,} callbacks on {database.label}: {options['server']} {options['server_workers']} workers × "
        f"{options['server_threads']} threads, {concurrency} keep-alive connections"
    )
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("throughput", f"{report.throughput:,.0f} callbacks/s"),
        ("acknowledge p50", f"{report.p50_ms:.1f} ms"),
        ("acknowledge p95", f"{report.p95_ms:.1f} ms"),
        ("acknowledge p99", f"{report.p99_ms:.1f} ms"),
        ("acknowledge max", f"{report.max_ms:.1f} ms"),
        ("acknowledge mean", f"{report.mean_ms:.1f} ms"),
        ("server CPU per callback", f"{report.server_cpu_ms:.2f} ms" if report.server_cpu_ms is not None else "-"),
        ("acknowledged (200, empty body)", f"{report.acknowledged:,} of {report.count:,}"),
        ("errors", f"{report.failed:,}"),
        ("stored rows", f"{report.stored:,}"),
        ("stored nonces = sent nonces", "yes" if report.nonces_match else "NO"),
        ("retries acknowledged", f"{report.repeats_acknowledged:,} of {report.repeats:,}"),
        ("rows after retries", f"{report.stored_after_repeats:,}"),
        (
            "processing jobs enqueued",
            "- (jobs not in the database)"
            if report.jobs is None
            else f"{report.jobs.jobs:,}, naming every row once: {'yes' if report.jobs.every_row_once else 'NO'}",
        ),
    ]
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
    console.print(report.summary(), markup=False, highlight=False, soft_wrap=True)
    console.print("all callbacks acknowledged and stored exactly once" if report.ok else "[red]CHECK FAILED[/]")
