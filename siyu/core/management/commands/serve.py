"""`siyu serve`: the console + API (granian, or gunicorn), a job worker and, for brands connected to it, the offline
WeCom emulator, in the foreground on 127.0.0.1.

One command for the demo and for a single-box install; stop it with Ctrl-C and every process stops. The emulator
runs when a brand's connection points at SIYU_EMULATOR_URL (the demo brand does, see siyu.demo.wecom) or with
`--emulator on`; the demo brand is then handed to it with its callback URL and live simulated customers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from argparse import ArgumentParser
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from siyu.core.jobs import needs_worker
from siyu.core.waiting import WaitAbandoned, WaitTimedOut, url_answers, wait_until
from siyu.demo import reference as demo_ref
from siyu.demo.selectors import demo_load_get, demo_logins, demo_tenant
from siyu.demo.wecom import demo_emulator_attach
from siyu.wecom.selectors import emulator_in_use


class Command(BaseCommand):
    help = "Serve the console and API on 127.0.0.1 with a background job worker."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--bind", default=os.environ.get("SIYU_BIND", "127.0.0.1:8000"))
        parser.add_argument("--workers", type=int, default=int(os.environ.get("SIYU_WEB_WORKERS", "2")))
        parser.add_argument(
            "--threads",
            type=int,
            default=int(os.environ.get("SIYU_WEB_THREADS", "16")),
            help="request threads per web worker; each holds a database connection, so PostgreSQL needs about "
            "workers × (threads + 2) connections for the web server",
        )
        parser.add_argument("--no-worker", action="store_true", help="do not start the job worker")
        parser.add_argument(
            "--server",
            choices=["granian", "gunicorn"],
            default=os.environ.get("SIYU_SERVER", "granian"),
            help="the HTTP server: granian (Rust HTTP, the default) or gunicorn (gthread; about half the WeCom "
            "callback throughput, see docs/benchmarks.md)",
        )
        parser.add_argument(
            "--emulator",
            choices=["auto", "on", "off"],
            default=os.environ.get("SIYU_SERVE_EMULATOR", "auto"),
            help=f"run the WeCom emulator at SIYU_EMULATOR_URL ({settings.SIYU_EMULATOR_URL}); auto: when a brand "
            "is connected to it",
        )
        parser.add_argument(
            "--simulate-rate",
            type=float,
            default=settings.SIYU_DEMO_SIMULATE_RATE,
            help="simulated customer actions per second on the demo brand (0: none)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 1 <= options["threads"] <= 256:
            raise CommandError("--threads must be from 1 to 256")
        try:
            has_keys = bool(settings.SECRET_KEY)
        except ImproperlyConfigured:  # Django refuses to read an empty SECRET_KEY
            has_keys = False
        if not has_keys:
            # Every page would answer 500 (sessions, CSRF and the PII keys need it): say what to do instead.
            raise CommandError("no secret keys: run `siyu init-keys` first (make demo does), or set SIYU_SECRET_KEY")
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            # Every page and job would fail on a missing table; say what to do instead.
            raise CommandError("the database is not fully migrated: run `siyu migrate` first")
        call_command("collectstatic", interactive=False, verbosity=0)
        bind = options["bind"]
        web = _web_argv(options["server"], bind, options["workers"], options["threads"])
        procs = [subprocess.Popen(web)]  # noqa: S603 - fixed argv, no shell
        # The immediate backend runs jobs in the web process: a worker would have nothing to do.
        if not options["no_worker"] and needs_worker():
            procs.append(subprocess.Popen([sys.executable, "-m", "siyu.cli", "worker"]))
        emulator_lines: list[str] = []
        if options["emulator"] == "on" or (options["emulator"] == "auto" and emulator_in_use()):
            try:
                emulator_lines = self._emulator(procs, bind, options["simulate_rate"])
            except Exception:
                for p in procs:
                    p.terminate()
                raise
        self._banner(bind, emulator_lines)
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(p.poll() is None for p in procs):
                time.sleep(0.5)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        failed = [p.returncode for p in procs if p.returncode not in (0, -signal.SIGTERM, None)]
        if failed and not stopping:
            raise SystemExit(f"a siyu process exited with status {failed[0]}")

    def _emulator(self, procs: list[subprocess.Popen[bytes]], bind: str, rate: float) -> list[str]:
        """Start the emulator (unless one already answers at its URL), then hand it the demo brand."""
        url = settings.SIYU_EMULATOR_URL.rstrip("/")
        if not url_answers(f"{url}/emulator/health", ok=lambda status: status == 200):
            parts = urlsplit(url)
            argv = [sys.executable, "-m", "siyu.cli", "emulator", "--no-seed", "--host", parts.hostname or "127.0.0.1"]
            argv += ["--port", str(parts.port or 80), "--public-url", url]
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL))  # noqa: S603 - fixed argv
            _wait_for(f"{url}/emulator/health", procs, "the WeCom emulator")
        lines = [f"  WeCom emulator {url}/cgi-bin/  (admin: {url}/emulator/health)"]
        tenant = demo_tenant()
        if tenant is None:
            return lines
        # Callbacks go to siyu's own URL: wait until it answers, so the first simulated events are not refused.
        _wait_for(f"http://{bind}/healthz", procs, "the siyu web server")
        self.stdout.write("  handing the demo brand to the WeCom emulator ...")
        self.stdout.flush()
        attached = demo_emulator_attach(
            tenant=tenant, emulator_url=url, callback_base_url=f"http://{bind}", simulate_rate=rate
        )
        live = f", {attached.simulate_rate:g} simulated actions/s" if attached.simulate_rate else ""
        lines.append(f"  demo corp      {attached.corp_id}  ({attached.customers:,} customers{live})")
        return lines

    def _banner(self, bind: str, extra: list[str] | None = None) -> None:
        url = f"http://{bind}"
        lines = [
            "",
            f"  siyu console   {url}/",
            f"  REST API       {url}/api/v1/  (OpenAPI: {url}/api/v1/openapi.json, docs: {url}/api/v1/docs)",
            f"  database       {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}",
            f"  jobs backend   {settings.SIYU_TASKS_BACKEND}",
            *(extra or []),
        ]
        # `serve` is the composition root, so it may ask the demo context what it loaded; the logins and the
        # password live in one place (siyu.demo.reference).
        load = demo_load_get(slug=demo_ref.BRAND_SLUG)
        lines.extend(
            f"  demo login     {login.username} / {demo_ref.DEMO_PASSWORD}  ({login.role}: {login.scope})"
            for login in (demo_logins(load=load) if load else [])
        )
        self.stdout.write("\n".join([*lines, ""]))


def _wait_for(url: str, procs: list[subprocess.Popen[bytes]], what: str, timeout: float = 60) -> None:
    def exited() -> str | None:
        return "a siyu process exited" if any(p.poll() is not None for p in procs) else None

    try:
        wait_until(lambda: url_answers(url, ok=lambda status: status == 200), what=f"{what} at {url}",
                   timeout=timeout, interval=0.3, gave_up=exited)  # fmt: skip
    except (WaitAbandoned, WaitTimedOut) as exc:
        raise SystemExit(str(exc)) from None


def _web_argv(server: str, bind: str, workers: int, threads: int = 16) -> list[str]:
    """The production server's command line for siyu.wsgi:application on `bind` (host:port)."""
    host, _, port = bind.rpartition(":")
    if server == "granian":
        return [
            sys.executable, "-m", "granian", "--interface", "wsgi", "--host", host or "127.0.0.1", "--port", port,
            "--workers", str(workers), "--blocking-threads", str(threads), "--backlog", "2048", "--no-ws",
            "--access-log", "siyu.wsgi:application",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "gunicorn", "siyu.wsgi:application", "--bind", bind, "--workers", str(workers),
        "--threads", str(min(threads, 4)), "--access-logfile", "-", "--graceful-timeout", "5",
        # gunicorn >= 25 opens ~/.gunicorn/gunicorn.ctl by default; two servers (siyu + emulator) would clash.
        "--no-control-socket",
    ]  # fmt: skip
