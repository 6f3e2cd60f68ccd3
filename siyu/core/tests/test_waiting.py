"""siyu.core.waiting: the one loop `siyu serve`, the benchmarks and the tests use to wait for something to come up."""

from __future__ import annotations

import socket

import pytest

from siyu.core.waiting import WaitAbandoned, WaitTimedOut, url_answers, wait_until


def test_waiting_ends_as_soon_as_the_condition_holds() -> None:
    polls = iter([False, False, True])
    wait_until(lambda: next(polls), what="the third poll", timeout=5, interval=0)
    assert next(polls, "exhausted") == "exhausted"


def test_a_reason_to_give_up_stops_the_wait_at_once() -> None:
    with pytest.raises(WaitAbandoned, match="stopped waiting for the server: it exited"):
        wait_until(lambda: False, what="the server", timeout=60, gave_up=lambda: "it exited")


def test_a_condition_that_never_holds_times_out_naming_what_was_awaited() -> None:
    with pytest.raises(WaitTimedOut, match="the worker was not ready within 0 s"):
        wait_until(lambda: False, what="the worker", timeout=0.05, interval=0.01)


def test_nothing_listening_does_not_answer() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        assert not url_answers(f"http://127.0.0.1:{port}/")
