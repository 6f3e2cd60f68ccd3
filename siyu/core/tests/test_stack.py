"""siyu.core.stack's evidence: when an end-to-end test or bench fails, the exception carries the errors its siyu
processes logged (their logs are in a folder deleted after the run), and the scratch databases stay its own.

The stack itself (emulator, server, workers) runs in the crash and fission scale tests and `siyu bench welcome`.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from django.db import connection

from siyu.core.stack import Processes, StackError, errors_report, log_errors, scratch_database, scratch_postgres_url
from siyu.core.waiting import wait_until

# A server's log as siyu writes it at WARNING (siyu.settings' format), with granian's access log in between: the
# same 500 twice, for two requests.
SERVER = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    print('[2026-01-05 10:00:00 +0800] 127.0.0.1 - "GET /healthz HTTP/1.1" 200 1.000', flush=True)
    logging.getLogger("siyu.wecom").warning("callback signature mismatch")
    for token in ("tok1", "tok1"):
        try:
            {}["device"]
        except KeyError:
            logging.getLogger("django.request").exception("Internal Server Error: /f/j/%s/", token)
    print('[2026-01-05 10:00:01 +0800] 127.0.0.1 - "GET /f/j/tok1/ HTTP/1.1" 500 3.000', flush=True)
    """
)
WORKER = "print('siyu worker: database backend, queues default, fast')"


def _run(processes: Processes, name: str, script: str) -> None:
    process = processes.spawn(name, [sys.executable, "-c", script])
    assert process.wait(timeout=30) == 0, processes.log(name)


def test_a_failure_carries_the_errors_the_processes_logged(tmp_path: Path) -> None:
    processes = Processes("sqlite:///unused", tmp_path)
    _run(processes, "web", SERVER)
    _run(processes, "worker", WORKER)

    with pytest.raises(AssertionError) as failure, processes.evidence():
        raise AssertionError("500 from /f/j/tok1/")

    note = "\n".join(failure.value.__notes__)
    assert "--- web.log: 2 errors, 1 distinct ---" in note
    assert "ERROR django.request Internal Server Error: /f/j/tok1/\nTraceback (most recent call last):" in note
    assert "KeyError: 'device'  [2 times]" in note
    # Warnings and the access log are not evidence; a clean log is named as such.
    assert "signature mismatch" not in note
    assert "GET /healthz" not in note
    assert "no ERROR records or tracebacks in worker.log" in note


def test_the_processes_are_stopped_before_their_logs_are_read(tmp_path: Path) -> None:
    # A worker that logs its last error as it stops: the report must wait for it.
    script = textwrap.dedent(
        """
        import signal, sys, time
        def stop(*_):
            print("2026-01-05 10:00:00,000 ERROR siyu.worker job 7 interrupted", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    processes = Processes("sqlite:///unused", tmp_path)
    worker = processes.spawn("worker", [sys.executable, "-c", script])
    wait_until(lambda: "ready" in processes.log("worker"), what="the worker", timeout=30, interval=0.05)

    with pytest.raises(KeyError) as failure, processes.evidence():
        raise KeyError("x")

    assert worker.returncode == 0
    assert "ERROR siyu.worker job 7 interrupted" in failure.value.__notes__[0]


def test_errors_of_other_servers_and_bare_tracebacks_are_found() -> None:
    log = "\n".join(
        [
            "[INFO] Starting granian (WSGI, HTTP/1.1, 2 workers)",
            "[2026-01-05 10:00:00 +0800] [41] [ERROR] Worker (pid:42) was sent SIGKILL! Perhaps out of memory?",
            "[2026-01-05 10:00:00 +0800] [41] [INFO] Booting worker with pid: 43",
            "Exception in thread kick:",
            "Traceback (most recent call last):",
            '  File "intake.py", line 170, in _run',
            "django.db.utils.OperationalError: database is locked",
            "2026-01-05 10:00:02,000 CRITICAL siyu.worker giving up",
        ]
    )
    assert log_errors(log) == [
        "[2026-01-05 10:00:00 +0800] [41] [ERROR] Worker (pid:42) was sent SIGKILL! Perhaps out of memory?",
        'Traceback (most recent call last):\n  File "intake.py", line 170, in _run\n'
        "django.db.utils.OperationalError: database is locked",
        "2026-01-05 10:00:02,000 CRITICAL siyu.worker giving up",
    ]


def test_a_long_traceback_keeps_its_end(tmp_path: Path) -> None:
    frames = [f'  File "f{i}.py", line {i}, in f{i}' for i in range(200)]
    (tmp_path / "worker.log").write_text(
        "\n".join(["2026-01-05 10:00:00,000 ERROR django_tasks Task failed", *frames, "ValueError: the end"])
    )
    report = errors_report(tmp_path)
    assert "ValueError: the end" in report
    assert "(82 lines)" in report  # 202 lines: the first 30 and the last 90 are shown
    assert 'File "f100.py"' not in report


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the scratch databases on a PostgreSQL server")
def test_a_scratch_database_is_never_one_it_did_not_create(tmp_path: Path) -> None:
    with (
        pytest.raises(StackError, match="'postgres' exists"),
        scratch_database(tmp_path, postgres=True, url=scratch_postgres_url("postgres")),
    ):
        pass
    name = connection.settings_dict["NAME"]
    with (
        pytest.raises(StackError, match="configured database"),
        scratch_database(tmp_path, postgres=True, url=scratch_postgres_url(name)),
    ):
        pass
