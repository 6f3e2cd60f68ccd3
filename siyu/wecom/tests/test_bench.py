"""`siyu bench callbacks` end to end, small: its own database, gunicorn, real HTTP, and its checks.

Not the speed (that is docs/benchmarks.md): that every callback was acknowledged and stored exactly once, that
retries stored nothing, that every stored row went into exactly one processing job, and that the bench cleaned
up after itself. On PostgreSQL (DATABASE_URL set) the bench creates and drops a database of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dj_database_url
import psycopg
import pytest
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.slow

COUNT = 300


def _bench_args(tmp_path: Path) -> tuple[list[str], str | None]:
    args = ["--count", str(COUNT), "--concurrency", "8", "--server-workers", "2", "--server-threads", "4"]
    if connection.vendor != "postgresql":
        return ["--database", "sqlite", *args], None
    server = settings.DATABASES["default"]
    name = f"siyu_bench_test_{os.getpid()}"
    user, host, port = server.get("USER") or "postgres", server.get("HOST") or "127.0.0.1", server.get("PORT") or 5432
    url = f"postgres://{user}@{host}:{port}/{name}"
    return ["--database", "postgres", "--database-url", url, *args], url


def _database_exists(url: str) -> bool:
    parts = dj_database_url.parse(url)
    with psycopg.connect(
        dbname="postgres", user=parts["USER"], host=parts["HOST"], port=parts["PORT"], autocommit=True
    ) as admin:
        return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [parts["NAME"]]).fetchone() is not None


def test_the_bench_acknowledges_and_stores_every_callback_once(tmp_path: Path) -> None:
    args, pg_url = _bench_args(tmp_path)
    env = {
        **os.environ,
        "SIYU_VAR_DIR": str(tmp_path),  # the SQLite bench database goes here, and must be gone afterwards
        "SIYU_SECRET_KEY": settings.SECRET_KEY,
        "SIYU_PII_KEY": settings.SIYU_PII_KEY,
        "SIYU_PII_HASH_KEY": settings.SIYU_PII_HASH_KEY,
        "SIYU_TASKS_BACKEND": "db",
        "COLUMNS": "200",
    }
    env.pop("DATABASE_URL", None)  # the bench never uses the configured database
    done = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "siyu.cli", "bench", "callbacks", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    summary = re.search(r"^callbacks: .*$", done.stdout, re.MULTILINE)
    assert summary is not None, output
    pairs = summary.group(0).removeprefix("callbacks: ").split(" ")
    figures = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
    assert figures["sent"] == figures["acknowledged"] == figures["stored"] == str(COUNT)
    assert figures["errors"] == "0"
    retries = int(figures["retries"])
    assert retries >= 10
    assert figures["retries_acknowledged"] == str(retries)
    assert figures["rows_after_retries"] == str(COUNT)  # retries stored nothing
    assert figures["ok"] == "yes"  # and every stored row is named by exactly one processing job
    assert re.search(rf"jobs=\d+ naming {COUNT} rows", summary.group(0)), summary.group(0)
    assert re.search(r"throughput\s.*callbacks/s", done.stdout), output
    # Its database is gone.
    assert not list(tmp_path.glob("bench-callbacks-*")), list(tmp_path.iterdir())
    if pg_url is not None:
        assert not _database_exists(pg_url)
