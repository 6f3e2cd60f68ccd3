"""`siyu serve --threads`: the web server's request threads per worker (each holds a database connection)."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from siyu.core.management.commands.serve import _web_argv


def test_the_thread_count_reaches_the_server_command_line() -> None:
    argv = _web_argv("granian", "127.0.0.1:8000", 2, 6)
    assert argv[argv.index("--blocking-threads") + 1] == "6"
    assert argv[argv.index("--workers") + 1] == "2"
    default = _web_argv("granian", "127.0.0.1:8000", 2)
    assert default[default.index("--blocking-threads") + 1] == "16"


@pytest.mark.parametrize("threads", [0, -1, 257])
def test_a_thread_count_out_of_range_is_refused_before_anything_starts(threads: int) -> None:
    with pytest.raises(CommandError, match="--threads must be from 1 to 256"):
        call_command("serve", threads=threads)


def test_without_secret_keys_serve_says_to_make_them_instead_of_serving_errors(settings: object) -> None:
    settings.SECRET_KEY = ""  # type: ignore[attr-defined]
    with pytest.raises(CommandError, match="siyu init-keys"):
        call_command("serve")
