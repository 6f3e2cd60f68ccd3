"""Waiting for something to come up: a server to answer, a worker to catch up. One loop for the CLI (`siyu serve`),
the benchmarks and the tests, so each says only what it waits for and what failing means to it."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


class WaitTimedOut(Exception):
    """`ready` never held within the timeout; the message names what was awaited."""


class WaitAbandoned(Exception):
    """`gave_up` said there is no point waiting any longer (e.g. the process that should answer has exited)."""


def url_answers(url: str, *, ok: Callable[[int], bool] = lambda status: status < 400) -> bool:
    """Whether `url` answers a GET with a status `ok` accepts (by default anything but an error)."""
    try:
        return ok(httpx.get(url, timeout=2).status_code)
    except httpx.HTTPError:
        return False


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    interval: float = 0.2,
    gave_up: Callable[[], str | None] = lambda: None,
) -> None:
    """Poll `ready` every `interval` seconds until it holds. `gave_up` returns a reason to stop early, or None.

    Raises WaitAbandoned or WaitTimedOut, whose messages name `what`."""
    deadline = time.monotonic() + timeout
    while not ready():
        reason = gave_up()
        if reason:
            raise WaitAbandoned(f"stopped waiting for {what}: {reason}")
        if time.monotonic() > deadline:
            raise WaitTimedOut(f"{what} was not ready within {timeout:.0f} s")
        time.sleep(interval)
