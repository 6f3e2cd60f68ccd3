"""siyu as production runs it, in separate processes on a database of its own: for the end-to-end tests (the worker
crash test, the fission scale test) and the benches that go through the real server (`siyu bench welcome`,
`siyu bench callbacks`).

`siyu_stack()` migrates the database, starts `siyu emulator` (a seeded WeCom corp firing signed callbacks at siyu),
`siyu serve --no-worker` (the callback endpoint, the console and the public pages) and any number of `siyu worker`s,
waits until they answer and yields a `Stack`: their URLs, the emulator's admin API, and the processes (to run one
more command, kill or restart a worker, read a log). Everything is stopped when the block ends. When the block
raises, the exception carries the evidence: the ERROR records and tracebacks from every process's log (the logs
live in a folder a test run or CI deletes afterwards).

`Processes` is the part without the emulator: `siyu <command>`s (or another server command line, as the callbacks
bench tunes its own) on one database, each logging to `<name>.log`, in its own process group.

`scratch_database()` makes the database (a SQLite file, or a PostgreSQL database created here and dropped
afterwards) and `using_database()` points this process at it, so the test or bench reads and writes the same rows
as the siyu processes. `bench_keys()`, `percentile()` and `redacted()` are the benches' shared odds and ends.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from siyu.core import pii
from siyu.core.waiting import WaitAbandoned, WaitTimedOut, wait_until

READY_TIMEOUT = 60.0  # seconds a process may take to answer after it started
# Databases this module may drop and create again: its own (tests) and the benches' (named siyu_bench by default).
SCRATCH_PREFIXES = ("siyu_stack", "siyu_bench")
LOG_LEVEL = os.environ.get("SIYU_STACK_LOG_LEVEL", "WARNING")  # INFO logs every duplicate and every enqueue


class StackError(RuntimeError):
    """A siyu process did not start, a command failed or a wait ran out; the message says why (with the log)."""


# -- the benches' figures ------------------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """The `q` quantile (0..1) of the sorted `ordered`, nearest rank; 0 when there are none."""
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def redacted(url: str) -> str:
    """`url` with its password replaced by ***, to print."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


@contextmanager
def bench_keys() -> Iterator[None]:
    """Throwaway keys for whichever of the secret and PII keys this install has not set yet.

    A bench encrypts only its own brand's secrets, in a database it creates and drops, so a fresh checkout can
    run it before `siyu init-keys`; configured keys are used as they are (and handed to the siyu processes).
    """
    missing = {
        name: pii.generate_key() for name in ("SIYU_PII_KEY", "SIYU_PII_HASH_KEY") if not getattr(settings, name, "")
    }
    try:
        settings.SECRET_KEY  # noqa: B018 - Django raises on reading an empty one
    except ImproperlyConfigured:
        missing["SECRET_KEY"] = secrets.token_urlsafe(50)
    # Set and put back by hand: override_settings reads SECRET_KEY back on the way out, which raises when empty.
    before = {name: settings._wrapped.__dict__.get(name, "") for name in missing}
    for name, value in missing.items():
        setattr(settings, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(settings, name, value)


# -- a database of its own -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScratchDatabase:
    url: str
    label: str  # what figures are labelled with: "sqlite" / "postgresql"


def _pg_admin(config: dict[str, Any]) -> Any:
    import psycopg

    return psycopg.connect(
        dbname="postgres",
        user=config.get("USER") or "postgres",
        password=config.get("PASSWORD") or None,
        host=config.get("HOST") or "127.0.0.1",
        port=config.get("PORT") or 5432,
        autocommit=True,
        connect_timeout=10,
    )


def _configured_is_postgres() -> bool:
    return str(settings.DATABASES["default"]["ENGINE"]).endswith("postgresql")


def scratch_postgres_url(name: str) -> str:
    """The URL of database `name` on the configured PostgreSQL server (127.0.0.1:5432 as postgres when the
    configured database is SQLite)."""
    configured = settings.DATABASES["default"] if _configured_is_postgres() else {}
    user = configured.get("USER") or "postgres"
    password = f":{configured['PASSWORD']}" if configured.get("PASSWORD") else ""
    host = configured.get("HOST") or "127.0.0.1"
    port = configured.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{name}"


@contextmanager
def scratch_database(
    folder: Path, *, postgres: bool | None = None, url: str = "", keep: bool = False, fast_commits: bool = False
) -> Iterator[ScratchDatabase]:
    """An empty database the siyu processes and this process share; removed afterwards unless `keep`.

    A SQLite file in `folder`, or (`postgres`; None: when the configured database is PostgreSQL) the PostgreSQL
    database `url` names (default `siyu_stack_<pid>` on the configured server), created here. Only a database
    named siyu_stack* or siyu_bench* that a previous run left is dropped first; any other existing database, and
    the configured one, is refused (StackError), so no data is lost.

    `fast_commits`: PostgreSQL commits without waiting for the WAL flush (synchronous_commit = off). For the
    tests, which kill siyu's workers but never PostgreSQL: a throwaway database need not pay an fsync per commit.
    The benches leave it on, as production runs.
    """
    if postgres is None:
        postgres = _configured_is_postgres()
    if not postgres:
        yield ScratchDatabase(url=f"sqlite:///{folder / 'siyu.sqlite3'}", label="sqlite")
        return
    import psycopg
    from psycopg import sql

    url = url or scratch_postgres_url(f"siyu_stack_{os.getpid()}")
    try:
        config = dj_database_url.parse(url)
    except ValueError as exc:
        raise StackError(f"{redacted(url)}: {exc}") from exc
    if not config["ENGINE"].endswith("postgresql"):
        raise StackError(f"not a postgres:// URL: {redacted(url)}")
    name = str(config["NAME"])
    configured = settings.DATABASES["default"]
    if _configured_is_postgres() and name in (configured["NAME"], configured.get("TEST", {}).get("NAME")):
        raise StackError(f"refusing to use {name!r}: it is the configured database")
    identifier = sql.Identifier(name)
    try:
        with _pg_admin(config) as admin:
            exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if exists and not name.startswith(SCRATCH_PREFIXES):
                raise StackError(
                    f"database {name!r} exists; only databases named {' or '.join(SCRATCH_PREFIXES)}... are "
                    "created and dropped here"
                )
            if exists:
                admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(identifier))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(identifier))
            if fast_commits:
                admin.execute(sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(identifier))
    except psycopg.Error as exc:
        raise StackError(f"cannot create the database {redacted(url)}: {exc}") from exc
    try:
        yield ScratchDatabase(url=url, label="postgresql")
    finally:
        if not keep:
            with _pg_admin(config) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))


@contextmanager
def scratch_folder(prefix: str, *, keep: bool = False) -> Iterator[Path]:
    """A new folder `<prefix><random>` under VAR_DIR (a bench's database, logs and the processes' VAR_DIR);
    removed afterwards unless `keep`."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=Path(settings.VAR_DIR)))
    try:
        yield folder
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def using_database(url: str) -> Iterator[None]:
    """Point this process's default connection at `url` for the block (the way Django's test runner swaps in its
    test database), and give the original back afterwards."""
    original_settings = connections.settings["default"]
    original = connections["default"]
    original.close()
    config = dj_database_url.parse(url)
    if config["ENGINE"].endswith("sqlite3"):
        # As the siyu processes open it (siyu.settings): WAL, so this reader never blocks their writes.
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;",
            "transaction_mode": "IMMEDIATE",
        }
    connections.settings["default"] = connections.configure_settings({"default": config})["default"]
    connections["default"] = connections.create_connection("default")
    try:
        yield
    finally:
        connections["default"].close()
        connections.settings["default"] = original_settings
        connections["default"] = original


# -- the evidence in the logs ----------------------------------------------------------------------------------------

# A line that starts a log record: siyu's "2026-01-05 10:00:00,123 LEVEL logger message", gunicorn's
# "[2026-01-05 10:00:00 +0800] [pid] [LEVEL] ...", granian's "[LEVEL] ..." and its access log "[time] addr ...".
_RECORD = re.compile(r"^(?:\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d|\[)")
_ERROR_RECORD = re.compile(r"(?:^|[\s\[])(?:ERROR|CRITICAL)[\]\s:]")
_TIMESTAMP = re.compile(r"^\[?\d{4}-\d\d-\d\d[ T][\d:.,]+(?: [+-]\d{4})?\]?\s*")
TRACEBACK = "Traceback (most recent call last):"
BLOCK_HEAD, BLOCK_TAIL = 30, 90  # a longer block keeps its first and last lines (the exception is at the end)
MAX_BLOCKS = 5  # distinct errors shown per log


def log_errors(text: str) -> list[str]:
    """The ERROR and CRITICAL records and the tracebacks in a log, each with the lines that belong to it (up to
    the next record)."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        record = bool(_RECORD.match(line))
        if record:
            current = None
            if _ERROR_RECORD.search(line[:80]):
                current = [line]
                blocks.append(current)
        elif current is not None:
            current.append(line)
        elif TRACEBACK in line:  # a traceback printed without a record (an uncaught exception in a thread, say)
            current = [line]
            blocks.append(current)
    shown = []
    for block in blocks:
        while block and not block[-1].strip():
            block.pop()
        if len(block) > BLOCK_HEAD + BLOCK_TAIL:
            omitted = len(block) - BLOCK_HEAD - BLOCK_TAIL
            block = [*block[:BLOCK_HEAD], f"... ({omitted} lines)", *block[-BLOCK_TAIL:]]
        shown.append("\n".join(block))
    return shown


def errors_report(folder: Path) -> str:
    """The errors in every log in `folder`, alike ones counted once, or a line saying the logs hold none."""
    parts = []
    clean = []
    for path in sorted(folder.glob("*.log")):
        errors = log_errors(path.read_text(errors="replace"))
        if not errors:
            clean.append(path.name)
            continue
        # The same error again (another request to the same page, say) differs only in its timestamp: shown once,
        # as it first happened, with how often.
        alike = Counter(_TIMESTAMP.sub("", error) for error in errors)
        first: dict[str, str] = {}
        for error in errors:
            first.setdefault(_TIMESTAMP.sub("", error), error)
        distinct = list(first)
        parts.append(f"--- {path.name}: {len(errors)} errors, {len(distinct)} distinct ---")
        for key in distinct[:MAX_BLOCKS]:
            times = f"  [{alike[key]} times]" if alike[key] > 1 else ""
            parts.append(f"{first[key]}{times}")
        if len(distinct) > MAX_BLOCKS:
            parts.append(f"... and {len(distinct) - MAX_BLOCKS} more distinct errors in {path.name}")
    if clean:
        parts.append(f"no ERROR records or tracebacks in {', '.join(clean)}")
    if not parts:
        parts.append("none yet: no process had started")
    return f"the siyu processes' logs ({folder}):\n" + "\n".join(parts)


# -- siyu's processes ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Processes:
    """Runs `siyu <command>` (or another command line) subprocesses on one database; each one's output goes to
    `<name>.log` in `folder`."""

    database_url: str
    folder: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    running: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "siyu.settings",
            "DATABASE_URL": self.database_url,
            "SIYU_VAR_DIR": str(self.folder / "var"),
            # This process's keys: it writes the connection's secrets, the siyu processes read them.
            "SIYU_SECRET_KEY": settings.SECRET_KEY,
            "SIYU_PII_KEY": settings.SIYU_PII_KEY,
            "SIYU_PII_HASH_KEY": settings.SIYU_PII_HASH_KEY,
            "SIYU_TASKS_BACKEND": "db",
            "SIYU_SERVE_EMULATOR": "off",  # the emulator is the stack's, not one `siyu serve` would start
            # ERROR records with their tracebacks (a 500's, from django.request) and warnings, no chatter.
            "SIYU_LOG_LEVEL": LOG_LEVEL,
            **self.env_extra,
        }

    def run(self, *args: str, timeout: float = 120) -> str:
        """Run `siyu <args>` to the end; its output, or StackError with it when it fails."""
        result = subprocess.run(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "siyu.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"siyu {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start `siyu <args>`, logging to `<name>.log`."""
        return self.spawn(name, [sys.executable, "-m", "siyu.cli", *args])

    def spawn(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start the command line `argv` with the processes' environment, logging to `<name>.log` (appended)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / f"{name}.log").open("ab")
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            list(argv),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stopping it stops its children (the server's)
        )
        log.close()
        self.running.append(process)
        return process

    def wait_answers(
        self,
        name: str,
        process: subprocess.Popen[bytes],
        url: str,
        *,
        ok: Callable[[int], bool] = lambda status: True,
        timeout: float = READY_TIMEOUT,
    ) -> None:
        """Wait until `process` (logging to `<name>.log`) answers a GET of `url` with a status `ok` accepts (by
        default any: it is up); StackError with its log when it exits or does not in `timeout` seconds."""

        def exited() -> str | None:
            return None if process.poll() is None else f"it exited with status {process.returncode}"

        # One client for the polls: a new one each time would load the CA bundle again (~20 ms of CPU).
        with httpx.Client(timeout=2) as http:

            def answers() -> bool:
                try:
                    return ok(http.get(url).status_code)
                except httpx.HTTPError:
                    return False

            try:
                wait_until(answers, what=f"{name} at {url}", timeout=timeout, gave_up=exited)
            except (WaitAbandoned, WaitTimedOut) as exc:
                raise StackError(f"{exc}; {name}.log:\n{self.log(name)}") from None

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM to the process, which stops its children as it does in production (`siyu serve` its server,
        the server its workers); SIGKILL to all of them when it has not exited in 20 s, and to any child left."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # its own process group (start_new_session)
        process.wait()

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """kill -9 the process and its children, as a crash would."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in reversed(self.running):
            self.stop(process)

    def log(self, name: str) -> str:
        """The end of `<name>.log`."""
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def errors(self) -> str:
        """The ERROR records and tracebacks in all the logs (see errors_report)."""
        return errors_report(self.folder)

    @contextmanager
    def evidence(self) -> Iterator[None]:
        """Stop every process, then let the logs' errors go out with the exception when the block raises: the
        folder holding the logs is deleted after the run (CI, pytest's tmp_path), the exception's report is not."""
        try:
            yield
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as exc:  # pytest.fail's Failed too: it is no Exception
            self.stop_all()  # so the logs are complete
            exc.add_note(self.errors())
            raise


@dataclass
class Stack:
    """The running siyu: the emulator at `emulator_url` (corp `corp_id`), the server at `web_url`, the workers."""

    processes: Processes
    emulator_url: str
    web_url: str
    corp_id: str
    emulator: subprocess.Popen[bytes] | None = None
    web: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def callback_url(self) -> str:
        return f"{self.web_url}/wecom/callback/{self.corp_id}/"

    def admin(self, path: str, body: dict[str, Any] | None = None, *, timeout: float = 30) -> Any:
        """The emulator's admin API (/emulator/...): simulated customers, its clock, what it holds and sent."""
        method = "POST" if body is not None else "GET"
        response = self.http.request(method, f"{self.emulator_url}/emulator/{path}", json=body, timeout=timeout)
        if response.status_code != 200:
            raise StackError(f"emulator {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def pending_callbacks(self) -> int:
        """Callbacks the emulator has queued or is sending."""
        return int(self.admin("callbacks?after=1000000000")["pending"])

    def deliveries(self, *, after: int = 0) -> list[dict[str, Any]]:
        """The callbacks the emulator delivered (id, xml, acknowledged...) after delivery `after`."""
        return list(self.admin(f"callbacks?after={after}", timeout=120)["deliveries"])

    def last_delivery(self) -> int:
        """The id of the last callback delivered so far (0: none)."""
        return max((d["id"] for d in self.deliveries()), default=0)

    def corp_export(self) -> dict[str, Any]:
        """Everything the emulator's corp holds, as JSON (siyu.emulator.model.from_jsonable reads it)."""
        return dict(self.admin(f"corps/export?corp_id={self.corp_id}"))

    def connect(self, *, name: str, slug: str, callback_token: str, encoding_aes_key: str) -> Any:
        """A new brand connected to the emulator's corp (its customer-contact app), in the stack's database; the
        caller is on that database (using_database). Returns the Tenant."""
        # The stack is a composition root, like `siyu serve`: it may call into the contexts it wires up.
        from siyu.core import services as core_services
        from siyu.core.scopes import Actor
        from siyu.wecom.services import connection_create

        corp = next(c for c in self.admin("corps")["corps"] if c["corp_id"] == self.corp_id)
        app = next(a for a in corp["apps"] if a["customer_contact"])
        tenant = core_services.tenant_create(name=name, slug=slug, wecom_corp_id=self.corp_id)
        connection_create(
            actor=Actor.system(tenant.id),
            corp_id=self.corp_id,
            agent_id=str(app["agentid"]),
            contact_secret=app["secret"],
            callback_token=callback_token,
            encoding_aes_key=encoding_aes_key,
            api_base_url=f"{self.emulator_url}/cgi-bin/",
        )
        return tenant

    def _worker_name(self, index: int) -> str:
        return f"worker{index}" if index else "worker"

    def start_worker(self) -> subprocess.Popen[bytes]:
        """One more `siyu worker` (its log: worker.log for the first, worker<n>.log for the n-th after it)."""
        worker = self.processes.start(self._worker_name(len(self.workers)), "worker")
        self.workers.append(worker)
        return worker

    def kill_worker(self, worker: subprocess.Popen[bytes]) -> None:
        """kill -9 `worker` (and its children), as a crash would; restart_worker starts another in its place."""
        self.processes.kill(worker)

    def restart_worker(self, worker: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        """Start a worker in `worker`'s place, logging to the same file; `worker` is stopped first if it runs."""
        index = self.workers.index(worker)
        self.processes.stop(worker)
        self.workers[index] = self.processes.start(self._worker_name(index), "worker")
        return self.workers[index]

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """Stop one of the stack's processes (the server, a worker) before the block ends."""
        self.processes.stop(process)

    def log(self, name: str) -> str:
        """The end of a process's log: "emulator", "web", "worker", "worker1"..."""
        return self.processes.log(name)

    def wait(self, what: str, ready: Callable[[], bool], *, timeout: float, state: Callable[[], str]) -> None:
        """Poll `ready` until it holds. StackError naming `what` with `state()` (how far things got) when it does
        not within `timeout` seconds, or as soon as the emulator, the server or a worker has exited."""

        def exited() -> str | None:
            for name, process in (("emulator", self.emulator), ("web", self.web)):
                if process is not None and process.poll() is not None:
                    return f"siyu {name} exited with status {process.returncode}; log:\n{self.log(name)}"
            for index, worker in enumerate(self.workers):
                if worker.poll() is not None:
                    name = self._worker_name(index)
                    return f"{name} exited with status {worker.returncode}; log:\n{self.log(name)}"
            return None

        try:
            wait_until(ready, what=what, timeout=timeout, gave_up=exited)
        except (WaitAbandoned, WaitTimedOut) as exc:
            raise StackError(f"{exc}: {state()}") from None


@contextmanager
def siyu_stack(
    database_url: str,
    folder: Path,
    *,
    corp_id: str,
    emulator_args: Sequence[str] = (),
    web_workers: int = 2,
    server: str = "",
    workers: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """Migrate `database_url` and run the emulator (corp `corp_id`, `emulator_args` on its command line: seed,
    callback token and key...), the server and `workers` workers on it, logging to `folder`; stop them all
    afterwards. When the block raises, the exception gets a note with the errors in the logs.

    `server`: granian or gunicorn (default: `siyu serve`'s). `env`: more environment for every process
    (SIYU_WORKER_SWEEP_SECONDS, say).
    """
    folder.mkdir(parents=True, exist_ok=True)
    processes = Processes(database_url, folder, env_extra=dict(env or {}))
    with ExitStack() as cleanup:
        cleanup.callback(processes.stop_all)
        cleanup.enter_context(processes.evidence())
        processes.run("migrate", "--noinput")
        web_port, emulator_port = free_port(), free_port()
        web_url, emulator_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{emulator_port}"
        stack = Stack(processes, emulator_url, web_url, corp_id)
        cleanup.callback(stack.http.close)
        stack.emulator = processes.start(
            "emulator",
            *("emulator", "--port", str(emulator_port), "--corp-id", corp_id),
            *("--callback-url", stack.callback_url, *emulator_args),
        )
        serve = ["serve", "--no-worker", "--bind", f"127.0.0.1:{web_port}", "--workers", str(web_workers)]
        stack.web = processes.start("web", *serve, *(("--server", server) if server else ()))
        processes.wait_answers("emulator", stack.emulator, f"{emulator_url}/emulator/health")
        processes.wait_answers("web", stack.web, stack.callback_url)
        for _ in range(workers):
            stack.start_worker()
        yield stack
