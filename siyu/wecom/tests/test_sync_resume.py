"""A sync interrupted mid-phase continues from its last committed page and ends where a clean run ends.

Interruptions are deterministic: an exception raised right after page N of a phase committed (the run's test
hook), the emulator failing one API for good (fault injection), or a process that died without a word (a run
left "running"). Small pages make every phase several pages long.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db.models import F

from siyu.wecom.models import SyncRun, SyncSeen
from siyu.wecom.services import SyncBusy, SyncTakenOver
from siyu.wecom.sync import SyncOptions, sync_run
from siyu.wecom.tests.emulated import Brand, db_state, event_counts, expected_event_counts, expected_state


class Killed(Exception):
    """Stands in for whatever stops a process between two pages."""


def small_pages(brand: Brand, log: list[tuple[str, int]], stop_at: tuple[str, int] | None = None) -> SyncOptions:
    """5 members a batch, 50 contacts or 3 groups a page; records every committed page, stops after `stop_at`."""

    def after_page(phase: str, page: int) -> None:
        log.append((phase, page))
        if (phase, page) == stop_at:
            raise Killed(f"stopped after {phase} page {page}")

    return SyncOptions(
        client_factory=brand.client,
        sleep=lambda _: None,
        userid_batch=5,
        contact_page=50,
        group_page=3,
        after_page=after_page,
    )


def assert_clean_result(brand: Brand) -> None:
    """What a clean run leaves: the corp mirrored, each event once."""
    with brand.server.emulator.lock:
        expected, events = expected_state(brand.corp), expected_event_counts(brand.corp)
    assert db_state(brand.tenant) == expected
    assert event_counts(brand.tenant) == events


def test_a_clean_run_with_small_pages(brand: Brand) -> None:
    log: list[tuple[str, int]] = []
    run = sync_run(tenant_id=brand.tenant.id, options=small_pages(brand, log))

    assert_clean_result(brand)
    phases = [phase for phase, _ in log]
    assert phases.count("members") == len(run.checkpoint["members"]["departments"])
    # 13 members with customer contact → 3 batches; ~360 follow relations at 50 a page; 10 groups at 3 a page.
    assert phases.count("contacts") == run.checkpoint["contacts"]["pages"] >= 8
    assert phases.count("groups") == run.checkpoint["groups"]["pages"] >= 4
    assert len(run.checkpoint["contacts"]["userids"]) == 13


@pytest.mark.parametrize("stop_at", [("members", 3), ("tags", 1), ("contacts", 1), ("contacts", 4), ("groups", 2)])
def test_an_interrupted_run_resumes_after_its_last_committed_page(brand: Brand, stop_at: tuple[str, int]) -> None:
    log: list[tuple[str, int]] = []
    with pytest.raises(Killed):
        sync_run(tenant_id=brand.tenant.id, options=small_pages(brand, log, stop_at))

    failed = SyncRun.objects.get(tenant=brand.tenant)
    assert (failed.status, failed.phase) == (SyncRun.Status.FAILED, stop_at[0])
    assert failed.error == f"Killed: stopped after {stop_at[0]} page {stop_at[1]}"
    assert failed.checkpoint[stop_at[0]]["pages"] == stop_at[1]
    first_attempt = list(log)
    log.clear()

    run = sync_run(tenant_id=brand.tenant.id, options=small_pages(brand, log))

    assert (run.id, run.status, run.attempts) == (failed.id, SyncRun.Status.SUCCEEDED, 2)
    # The second attempt picked up exactly after the last committed page: nothing fetched or written twice.
    assert log[0] == (stop_at[0], stop_at[1] + 1) or (stop_at[0] == "tags" and log[0][0] == "contacts")
    assert not set(first_attempt) & set(log)
    assert_clean_result(brand)
    assert [e["phase"] for e in run.errors] == [stop_at[0]]
    assert not SyncSeen.objects.filter(run=run).exists()


def test_a_run_interrupted_twice_still_ends_clean(brand: Brand) -> None:
    log: list[tuple[str, int]] = []
    for stop_at in (("contacts", 2), ("contacts", 5), ("groups", 1)):
        with pytest.raises(Killed):
            sync_run(tenant_id=brand.tenant.id, options=small_pages(brand, log, stop_at))
    run = sync_run(tenant_id=brand.tenant.id, options=small_pages(brand, log))

    assert (run.status, run.attempts) == (SyncRun.Status.SUCCEEDED, 4)
    assert len(log) == len(set(log))  # every page committed once over the four attempts
    assert_clean_result(brand)


def test_an_api_failing_for_good_stops_the_run_and_a_later_run_resumes(brand: Brand) -> None:
    # groupchat/get answers HTTP 503 every time: the client's retries and the sync's give up.
    brand.admin("faults", {"rate_http_5xx": 1.0, "paths": ["/cgi-bin/externalcontact/groupchat/get"]})
    log: list[tuple[str, int]] = []
    with pytest.raises(Exception, match="HTTP 503"):
        sync_run(tenant_id=brand.tenant.id, options=small_pages(brand, log))
    failed = SyncRun.objects.get(tenant=brand.tenant)
    assert (failed.status, failed.phase) == (SyncRun.Status.FAILED, "contacts")  # the last phase that committed
    assert failed.checkpoint["contacts"]["done"] is True
    assert "groups" not in failed.checkpoint

    brand.admin("faults", {"rate_http_5xx": 0.0})
    log.clear()
    run = sync_run(tenant_id=brand.tenant.id, options=small_pages(brand, log))

    assert {phase for phase, _ in log} == {"groups"}
    assert (run.id, run.status) == (failed.id, SyncRun.Status.SUCCEEDED)
    assert_clean_result(brand)


def _die(run: SyncRun, *, minutes_ago: int) -> None:
    """A process killed without a word: the run stays "running" with its last heartbeat."""
    SyncRun.objects.filter(id=run.id).update(
        status=SyncRun.Status.RUNNING, heartbeat_at=run.heartbeat_at - dt.timedelta(minutes=minutes_ago)
    )


def test_a_killed_process_is_resumed_once_its_heartbeat_is_stale(brand: Brand) -> None:
    log: list[tuple[str, int]] = []
    with pytest.raises(Killed):
        sync_run(tenant_id=brand.tenant.id, options=small_pages(brand, log, ("contacts", 3)))
    run = SyncRun.objects.get(tenant=brand.tenant)

    _die(run, minutes_ago=0)
    with pytest.raises(SyncBusy):  # it might still be working: leave it alone
        sync_run(tenant_id=brand.tenant.id, options=small_pages(brand, log))
    _die(run, minutes_ago=5)
    resumed = sync_run(tenant_id=brand.tenant.id, options=small_pages(brand, log))

    assert (resumed.id, resumed.status) == (run.id, SyncRun.Status.SUCCEEDED)
    assert_clean_result(brand)


def test_force_takes_over_and_restart_starts_afresh(brand: Brand) -> None:
    log: list[tuple[str, int]] = []
    with pytest.raises(Killed):
        sync_run(tenant_id=brand.tenant.id, options=small_pages(brand, log, ("contacts", 3)))
    first = SyncRun.objects.get(tenant=brand.tenant)
    _die(first, minutes_ago=0)

    options: dict[str, Any] = {"force": True, "restart": True}
    fresh = sync_run(tenant_id=brand.tenant.id, options=SyncOptions(client_factory=brand.client, **options))

    first.refresh_from_db()
    assert first.status == SyncRun.Status.ABANDONED
    assert not SyncSeen.objects.filter(run=first).exists()
    assert (fresh.status, fresh.attempts) == (SyncRun.Status.SUCCEEDED, 1)
    assert fresh.id != first.id
    assert_clean_result(brand)


def test_an_unfinished_run_of_other_phases_is_abandoned_not_resumed(brand: Brand) -> None:
    log: list[tuple[str, int]] = []
    with pytest.raises(Killed):
        sync_run(tenant_id=brand.tenant.id, options=small_pages(brand, log, ("contacts", 1)))
    first = SyncRun.objects.get(tenant=brand.tenant)

    tags_only = sync_run(tenant_id=brand.tenant.id, options=SyncOptions(client_factory=brand.client, phases=["tags"]))

    first.refresh_from_db()
    assert (first.status, tags_only.status, tags_only.phases) == (
        SyncRun.Status.ABANDONED,
        SyncRun.Status.SUCCEEDED,
        ["tags"],
    )


def test_a_cursor_wecom_no_longer_accepts_restarts_its_batch(brand: Brand) -> None:
    log: list[tuple[str, int]] = []
    with pytest.raises(Killed):
        sync_run(tenant_id=brand.tenant.id, options=small_pages(brand, log, ("contacts", 2)))
    run = SyncRun.objects.get(tenant=brand.tenant)
    assert run.checkpoint["contacts"]["cursor"]  # stopped mid-batch
    # Cursors may expire; the emulator answers 50100 for one it did not issue.
    run.checkpoint["contacts"]["cursor"] = "expired.000000000000"
    SyncRun.objects.filter(id=run.id).update(checkpoint=run.checkpoint)

    resumed = sync_run(tenant_id=brand.tenant.id, options=small_pages(brand, log))

    assert resumed.status == SyncRun.Status.SUCCEEDED
    assert_clean_result(brand)


def test_a_process_whose_run_was_taken_over_stops_writing(brand: Brand) -> None:
    log: list[tuple[str, int]] = []
    options = small_pages(brand, log)

    def taken_over(phase: str, page: int) -> None:
        log.append((phase, page))
        if (phase, page) == ("contacts", 2):
            # Meanwhile another process took this one for dead and resumed the run (a new attempt).
            SyncRun.objects.filter(tenant=brand.tenant).update(attempts=F("attempts") + 1)

    options.after_page = taken_over
    with pytest.raises(SyncTakenOver):
        sync_run(tenant_id=brand.tenant.id, options=options)

    run = SyncRun.objects.get(tenant=brand.tenant)
    # Page 3 never landed, and the run is left to its new owner: not marked failed by the old one.
    assert (run.status, run.attempts, run.checkpoint["contacts"]["pages"]) == (SyncRun.Status.RUNNING, 2, 2)
    assert log[-1] == ("contacts", 2)
