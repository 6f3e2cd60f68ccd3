"""siyu as production runs it, in separate processes on a database of its own: for the end-to-end tests (the worker
crash test, the fission scale test) and the benches that go through the whole pipeline (`siyu bench welcome`).

`siyu_stack()` migrates the database, starts `siyu emulator` (a seeded WeCom corp firing signed callbacks at siyu),
`siyu serve --no-worker` (the callback endpoint, the console and the public pages) and any number of `siyu worker`s,
waits until they answer and yields a `Stack`: their URLs, the emulator's admin API, and the processes (to run one
more command, start, kill or restart a worker, read a log). Everything is stopped when the block ends.

`scratch_database()` makes the database (a SQLite file, or a PostgreSQL database created and dropped here when
DATABASE_URL points at PostgreSQL) and `using_database()` points this process at it, so the test or bench reads
and writes the same rows as the siyu processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dj_database_url
import httpx
from django.conf import settings
from django.db import connections

from siyu.core.waiting import WaitAbandoned, WaitTimedOut, wait_until

READY_TIMEOUT = 60.0  # seconds a process may take to answer after it started


class StackError(RuntimeError):
    """A siyu process did not start or a command failed; the message carries the end of its log."""


# -- a database of its own -----------------------------------------------------------------------------------------


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


@contextmanager
def scratch_database(folder: Path, *, name: str = "") -> Iterator[str]:
    """The URL of an empty database the siyu processes and this process share; removed afterwards.

    A SQLite file in `folder`, or, when DATABASE_URL is PostgreSQL, a database `name` (default
    `siyu_stack_<pid>`) on that server, dropped first if a previous run left it.
    """
    configured = os.environ.get("DATABASE_URL", "")
    if not configured.startswith(("postgres://", "postgresql://")):
        yield f"sqlite:///{folder / 'siyu.sqlite3'}"
        return
    from psycopg import sql

    config = dj_database_url.parse(configured)
    name = name or f"siyu_stack_{os.getpid()}"
    user = config.get("USER") or "postgres"
    password = f":{config['PASSWORD']}" if config.get("PASSWORD") else ""
    url = f"postgres://{user}{password}@{config.get('HOST') or '127.0.0.1'}:{config.get('PORT') or 5432}/{name}"
    with _pg_admin(config) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        # Commits without waiting for the WAL flush: a throwaway database need not pay an fsync per commit, and
        # what the tests kill is siyu's worker, never PostgreSQL.
        admin.execute(sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(sql.Identifier(name)))
    try:
        yield url
    finally:
        with _pg_admin(config) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


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


# -- siyu's processes ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Processes:
    """Runs `siyu <command>` subprocesses on one database; each one's output goes to `<name>.log` in `folder`."""

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
            "SIYU_LOG_LEVEL": os.environ.get("SIYU_STACK_LOG_LEVEL", "WARNING"),
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
        log = (self.folder / f"{name}.log").open("ab")
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "siyu.cli", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stopping it stops its children (the server's)
        )
        log.close()
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """kill -9 the process and its children, as a crash would."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in reversed(self.running):
            self.stop(process)

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


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

    def start_worker(self) -> subprocess.Popen[bytes]:
        """One more `siyu worker` (its log: worker<n>.log, or worker.log for the first)."""
        name = f"worker{len(self.workers)}" if self.workers else "worker"
        worker = self.processes.start(name, "worker")
        self.workers.append(worker)
        return worker

    def restart_worker(self, worker: subprocess.Popen[bytes], *, kill: bool = False) -> subprocess.Popen[bytes]:
        """Stop (or kill -9) `worker` and start another in its place, logging to the same file."""
        index = self.workers.index(worker)
        if kill:
            self.processes.kill(worker)
        else:
            self.processes.stop(worker)
        name = f"worker{index}" if index else "worker"
        self.workers[index] = self.processes.start(name, "worker")
        return self.workers[index]

    def log(self, name: str) -> str:
        return self.processes.log(name)


def _wait_ready(
    what: str, url: str, process: subprocess.Popen[bytes], log: Callable[[], str], http: httpx.Client
) -> None:
    def answers() -> bool:
        try:
            http.get(url, timeout=2)
        except httpx.HTTPError:
            return False
        return True  # any status: the process is up

    def exited() -> str | None:
        return None if process.poll() is None else f"it exited with status {process.returncode}; log:\n{log()}"

    try:
        # One client for the polls: a new one each time would load the CA bundle again (~20 ms of CPU).
        wait_until(answers, what=what, timeout=READY_TIMEOUT, gave_up=exited)
    except (WaitAbandoned, WaitTimedOut) as exc:
        raise StackError(f"{exc}\n{log()}") from None


@contextmanager
def siyu_stack(
    database_url: str,
    folder: Path,
    *,
    corp_id: str,
    emulator_args: Sequence[str] = (),
    web_workers: int = 2,
    server: str = "granian",
    workers: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """Migrate `database_url` and run the emulator (corp `corp_id`, `emulator_args` on its command line: seed,
    callback token and key...), the server and `workers` workers on it; stop them all afterwards.

    `env`: more environment for every process (SIYU_WORKER_SWEEP_SECONDS, say).
    """
    folder.mkdir(parents=True, exist_ok=True)
    processes = Processes(database_url, folder, env_extra=dict(env or {}))
    with ExitStack() as cleanup:
        cleanup.callback(processes.stop_all)
        processes.run("migrate", "--noinput")
        web_port, emulator_port = free_port(), free_port()
        web_url, emulator_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{emulator_port}"
        stack = Stack(processes, emulator_url, web_url, corp_id)
        cleanup.callback(stack.http.close)
        emulator = stack.emulator = processes.start(
            "emulator",
            *("emulator", "--port", str(emulator_port), "--corp-id", corp_id),
            *("--callback-url", stack.callback_url, *emulator_args),
        )
        web = stack.web = processes.start(
            "web", "serve", "--no-worker", "--bind", f"127.0.0.1:{web_port}", "--workers", str(web_workers),
            "--server", server,
        )  # fmt: skip
        _wait_ready(
            "siyu emulator", f"{emulator_url}/emulator/health", emulator, lambda: processes.log("emulator"), stack.http
        )
        _wait_ready("siyu serve", stack.callback_url, web, lambda: processes.log("web"), stack.http)
        for _ in range(workers):
            stack.start_worker()
        yield stack
