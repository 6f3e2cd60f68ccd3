"""The `siyu` command tells the operator what is wrong with the set-up in one line, never with a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.django_db(databases=[])


def _siyu(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", "from siyu.cli import main; main()", *args],
        env={**os.environ, "SIYU_TESTING": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_bad_setting_is_named_without_a_traceback() -> None:
    result = _siyu("check", SIYU_DEBUG="maybe")
    assert result.returncode == 2
    assert "siyu: configuration error: SIYU_DEBUG must be a boolean" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_reported_as_such() -> None:
    result = _siyu("sync", DATABASE_URL="postgres://nobody@127.0.0.1:1/none")
    assert result.returncode == 2
    assert "siyu: database error:" in result.stderr
    assert "check DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
