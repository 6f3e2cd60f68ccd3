"""`siyu serve`: the console + API (gunicorn) and a job worker, in the foreground, on 127.0.0.1.

One command for the demo and for a single-box install; stop it with Ctrl-C and both processes stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from siyu.core.jobs import needs_worker
from siyu.demo import reference as demo_ref
from siyu.demo.selectors import demo_load_get, demo_logins


class Command(BaseCommand):
    help = "Serve the console and API on 127.0.0.1 with a background job worker."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--bind", default=os.environ.get("SIYU_BIND", "127.0.0.1:8000"))
        parser.add_argument("--workers", type=int, default=int(os.environ.get("SIYU_WEB_WORKERS", "2")))
        parser.add_argument("--no-worker", action="store_true", help="do not start the job worker")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("collectstatic", interactive=False, verbosity=0)
        bind = options["bind"]
        web = [
            sys.executable,
            "-m",
            "gunicorn",
            "siyu.wsgi:application",
            "--bind",
            bind,
            "--workers",
            str(options["workers"]),
            "--threads",
            "4",
            "--access-logfile",
            "-",
            "--graceful-timeout",
            "5",
            # gunicorn ≥ 25 opens ~/.gunicorn/gunicorn.ctl by default; two servers (siyu + emulator) would clash.
            "--no-control-socket",
        ]
        procs = [subprocess.Popen(web)]  # noqa: S603 - fixed argv, no shell
        # The immediate backend runs jobs in the web process: a worker would have nothing to do.
        if not options["no_worker"] and needs_worker():
            procs.append(subprocess.Popen([sys.executable, "-m", "siyu.cli", "worker"]))
        self._banner(bind)
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

    def _banner(self, bind: str) -> None:
        url = f"http://{bind}"
        lines = [
            "",
            f"  siyu console   {url}/",
            f"  REST API       {url}/api/v1/  (OpenAPI: {url}/api/v1/openapi.json, docs: {url}/api/v1/docs)",
            f"  database       {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}",
            f"  jobs backend   {settings.SIYU_TASKS_BACKEND}",
        ]
        # `serve` is the composition root, so it may ask the demo context what it loaded; the logins and the
        # password live in one place (siyu.demo.reference).
        load = demo_load_get(slug=demo_ref.BRAND_SLUG)
        lines.extend(
            f"  demo login     {login.username} / {demo_ref.DEMO_PASSWORD}  ({login.role}: {login.scope})"
            for login in (demo_logins(load=load) if load else [])
        )
        self.stdout.write("\n".join([*lines, ""]))
