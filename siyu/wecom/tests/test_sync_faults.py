"""A sync against an emulator that misbehaves like WeCom does on a bad day reaches the same final state.

Fault injection is seeded, so the same requests fail on every run: rate limits (45009), tokens expired early
(42001), HTTP 503 from the front end and bodies cut in half, each on one call in ten or so.
"""

from __future__ import annotations

import time
from typing import Any

from siyu.wecom.models import SyncRun
from siyu.wecom.sync import SyncOptions, sync_run
from siyu.wecom.tests.emulated import Brand, db_state, event_counts, expected_event_counts, expected_state

FAULTS = {
    "seed": 11,
    "rate_errcode_45009": 0.1,
    "rate_errcode_42001": 0.1,
    "rate_http_5xx": 0.1,
    "rate_truncate": 0.1,
}


def test_a_sync_through_faults_reaches_the_same_state(brand: Brand) -> None:
    brand.admin("faults", FAULTS)

    run = sync_run(
        tenant_id=brand.tenant.id,
        options=SyncOptions(client_factory=brand.client, sleep=lambda _: None, contact_page=50, group_page=3),
    )

    injected: dict[str, Any] = brand.admin("faults")["injected"]
    # Every kind of fault really happened, more than once.
    assert min(injected[k] for k in ("errcode_45009", "errcode_42001", "http_5xx", "truncate")) >= 2, injected
    assert run.status == SyncRun.Status.SUCCEEDED
    with brand.server.emulator.lock:
        expected, events = expected_state(brand.corp), expected_event_counts(brand.corp)
    assert db_state(brand.tenant) == expected
    assert event_counts(brand.tenant) == events

    # Still faulty, a second run changes nothing.
    again = sync_run(tenant_id=brand.tenant.id, options=SyncOptions(client_factory=brand.client, sleep=lambda _: None))
    assert [k for c in again.counts.values() for k, v in c.items() if k != "unchanged" and v] == []
    assert event_counts(brand.tenant) == events


def test_a_rate_limit_window_is_waited_out(brand: Brand) -> None:
    # The emulator's own frequency limit: 4 calls a second per API, then 45009 for the rest of the second, longer
    # than the client's own (quick, in tests) retries wait.
    brand.admin("limits", {"windows": [[4, 1.0]]})
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    run = sync_run(
        tenant_id=brand.tenant.id,
        options=SyncOptions(client_factory=brand.client, sleep=sleep, retry_delay=0.6, phases=["groups"]),
    )

    assert run.status == SyncRun.Status.SUCCEEDED
    assert sleeps  # groupchat/get for 10 groups hit the limit: the sync waited rather than failed
    with brand.server.emulator.lock:
        assert db_state(brand.tenant)["groups"] == expected_state(brand.corp)["groups"]
