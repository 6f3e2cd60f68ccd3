"""Frequency limits (45009 then recovery) and every kind of injected fault, switched on and off."""

from __future__ import annotations

import json
import time

import pytest

from siyu.emulator.faults import FaultConfig
from siyu.emulator.seed import SeedSpec, build_corp
from siyu.emulator.tests.conftest import ANCHOR, Running, StartEmulator

API = "externalcontact/get_follow_user_list"


def test_rate_limit_blocks_for_the_window_then_recovers(emulator: Running) -> None:
    client = emulator.client
    client.refresh()
    assert client.admin("limits", {"windows": [[5, 60]]}) == {"windows": [{"limit": 5, "seconds": 60.0}]}
    assert [client.get(API)["errcode"] for _ in range(5)] == [0] * 5
    assert client.get(API)["errcode"] == 45009
    # Blocked for the window's length (60 s for a per-minute limit), not just until the count drops.
    client.admin("clock", {"advance": 59})
    assert client.get(API)["errcode"] == 45009
    # The limit is per API: another API of the same corp still answers.
    assert client.get("department/list")["errcode"] == 0
    client.admin("clock", {"advance": 2})
    assert [client.get(API)["errcode"] for _ in range(5)] == [0] * 5
    assert client.get(API)["errcode"] == 45009


def test_rate_limit_is_per_corp(start_emulator: StartEmulator) -> None:
    one = build_corp(SeedSpec(seed=1, corp_id="wwtest00000000a1", anchor=ANCHOR, customers=5, group_chats=0))
    two = build_corp(SeedSpec(seed=2, corp_id="wwtest00000000a2", anchor=ANCHOR, customers=5, group_chats=0))
    running = start_emulator(corps=[one, two], limits=[(3, 60.0)])
    first = running.client
    second = running.client_for(two.corp_id, two.apps[0].secret)
    first.refresh()  # gettoken is an API too; its own counter
    second.refresh()
    assert [first.get(API)["errcode"] for _ in range(4)] == [0, 0, 0, 45009]
    assert second.get(API)["errcode"] == 0


def test_limits_can_be_switched_off(emulator: Running) -> None:
    client = emulator.client
    client.admin("limits", {"windows": [[2, 60]]})
    client.admin("limits", {"windows": []})
    assert {client.get(API)["errcode"] for _ in range(10)} == {0}


def fault(running: Running, **settings: object) -> None:
    running.client.admin("faults", dict(settings))


def test_http_5xx_on_and_off(emulator: Running) -> None:
    client = emulator.client
    client.refresh()
    fault(emulator, rate_http_5xx=1.0)
    result = client.request("GET", "/cgi-bin/" + API, params={"access_token": client.token})
    assert result.status == 503
    assert result.headers["Content-Type"] == "text/html"
    # The admin surface is never faulted.
    assert client.admin("faults")["injected"]["http_5xx"] == 1
    fault(emulator, rate_http_5xx=0.0)
    assert client.get(API)["errcode"] == 0


def test_injected_45009_on_and_off(emulator: Running) -> None:
    client = emulator.client
    client.refresh()
    fault(emulator, rate_errcode_45009=1.0)
    assert client.get(API)["errcode"] == 45009
    fault(emulator, rate_errcode_45009=0.0)
    assert client.get(API)["errcode"] == 0


def test_injected_42001_expires_the_token(emulator: Running) -> None:
    client = emulator.client
    old = client.refresh()
    fault(emulator, rate_errcode_42001=1.0)
    assert client.get(API)["errcode"] == 42001
    fault(emulator, rate_errcode_42001=0.0)
    # The token really is expired now: the client must fetch a new one, which works.
    assert client.get(API)["errcode"] == 42001
    new = client.refresh()
    assert new != old
    assert client.get(API)["errcode"] == 0


def test_truncated_bodies_on_and_off(emulator: Running) -> None:
    client = emulator.client
    client.refresh()
    full = client.request("GET", "/cgi-bin/" + API, params={"access_token": client.token}).body
    fault(emulator, rate_truncate=1.0)
    cut = client.request("GET", "/cgi-bin/" + API, params={"access_token": client.token})
    assert cut.status == 200
    assert cut.body == full[: len(full) // 2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.body)
    fault(emulator, rate_truncate=0.0)
    assert client.get(API)["errcode"] == 0


def test_latency_on_and_off(emulator: Running) -> None:
    client = emulator.client
    client.refresh()
    fault(emulator, latency_ms=300)
    started = time.monotonic()
    assert client.get(API)["errcode"] == 0
    assert time.monotonic() - started >= 0.3
    fault(emulator, latency_ms=0)
    started = time.monotonic()
    client.get(API)
    assert time.monotonic() - started < 0.3


def test_faults_are_deterministic_for_a_seed(emulator: Running) -> None:
    client = emulator.client
    client.refresh()

    def run() -> list[int]:
        fault(emulator, rate_errcode_45009=0.3, seed=42)
        return [client.get(API)["errcode"] for _ in range(40)]

    first, second = run(), run()
    assert first == second
    assert 0 < first.count(45009) < 40
    fault(emulator, seed=43)
    assert [client.get(API)["errcode"] for _ in range(40)] != first


def test_faults_only_hit_the_configured_paths(emulator: Running) -> None:
    client = emulator.client
    client.refresh()
    fault(emulator, rate_errcode_45009=1.0, paths=["/cgi-bin/externalcontact/"])
    assert client.get(API)["errcode"] == 45009
    assert client.get("department/list")["errcode"] == 0


def test_faults_configured_at_start_up(start_emulator: StartEmulator) -> None:
    running = start_emulator(faults=FaultConfig(rate_errcode_45009=1.0, paths=["/cgi-bin/department/"]))
    client = running.client
    assert client.get("department/list")["errcode"] == 45009
    described = client.admin("faults")
    assert described["config"]["rate_errcode_45009"] == 1.0
    assert described["injected"]["errcode_45009"] == 1


def test_bad_fault_settings_are_refused(emulator: Running) -> None:
    assert emulator.client.admin_raw("faults", {"rate_http_5xx": 2}).status == 400
    assert emulator.client.admin_raw("faults", {"no_such_fault": 1}).status == 400
    assert emulator.client.admin("faults")["config"]["rate_http_5xx"] == 0.0
