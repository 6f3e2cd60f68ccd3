"""The worker crash test (issue 4, acceptance 10): kill -9 the worker while ~10,000 callbacks are being processed;
after it is restarted every event is processed exactly once and siyu's state equals WeCom's.

Everything runs as it does in production, in separate processes on a real database of the test's own (a
temporary SQLite file, or a PostgreSQL database created and dropped here when DATABASE_URL points at PostgreSQL),
started by siyu.core.stack: `siyu migrate`, `siyu sync`, `siyu serve` (2 web workers) receiving the callbacks and
`siyu worker` processing them. The WeCom side is `siyu emulator` (a seeded corp) whose behaviour simulator performs
10,000 customer actions, each firing one signed callback at siyu's callback URL (one sender, so events arrive in
the order they happened). The worker is killed with SIGKILL at two (or more) points, restarted at once each time,
and left to finish; every process is a black box driven through its command. A failure carries the errors in the
processes' logs.

Then: one stored row per delivered event (none lost, none twice), every row processed (or ignored with a
reason), no timeline event written twice, the add/delete events in siyu's event log equal the simulator's
ground truth, no job left running or failed, and siyu's customers, follow relations, groups, guides and tag
library equal the emulator's.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from siyu.analytics.models import Event
from siyu.core.models import Tenant
from siyu.core.stack import Stack, scratch_database, siyu_stack, using_database
from siyu.emulator.model import Corp, from_jsonable
from siyu.wecom.models import RawCallback
from siyu.wecom.tests.emulated import db_state, expected_state
from siyu.wecom.tests.support import AES_KEY, TOKEN

pytestmark = pytest.mark.slow

STEPS = 10_000  # simulated customer actions; each fires one callback (a full join way fires two)
SEED = 42
CORP_ID = "wwcrashtest00001"
# Only actions that fire callbacks (chat messages and material opens have none). Every add is a new customer's:
# processing re-reads the customer from WeCom, and WeCom's view of a pair deleted and re-added since would make
# the event counts depend on how far processing lags behind, not on whether each event was applied once.
MIX = {
    "add": 0.44,
    "customer_delete": 0.12,
    "member_delete": 0.08,
    "join": 0.22,
    "leave": 0.14,
    "message": 0,
    "open": 0,
    "refuse_transfer": 0,
    "existing_customer": 0,
}
KILL_AT = (0.25, 0.6)  # kill when this share of the events is done; more points if no kill hit a running job
EXTRA_KILLS_AT = (0.75, 0.9)
SWEEP_SECONDS = 5  # the worker's recovery sweep (production: 60 s)
DEADLINE = 600.0  # seconds each stage may take (delivering and processing 10,000 callbacks: ~2-5 min)
# `siyu emulator` flags: the seeded corp, callbacks to siyu with one sender (events arrive in order), no limits.
EMULATOR_FLAGS = (
    *("--no-persist", "--seed", "9", "--regions", "2", "--stores-per-region", "2"),
    *("--guides-per-store", "3", "--customers", "300", "--group-chats", "10", "--rate-limit", "off"),
    *("--callback-token", TOKEN, "--callback-aes-key", AES_KEY, "--callback-workers", "1"),
    *("--callback-retry-delay", "0.5"),
)
DONE = (RawCallback.Status.PROCESSED, RawCallback.Status.IGNORED)


# -- what the emulator did and what siyu holds -------------------------------------------------------------------


def _done() -> int:
    return RawCallback.objects.filter(status__in=DONE).count()


def _progress(siyu: Stack) -> str:
    statuses = dict(Counter(RawCallback.objects.values_list("status", flat=True)))
    jobs = dict(Counter(DBTaskResult.objects.values_list("status", flat=True)))
    return (
        f"stored callbacks by status {statuses}, jobs by status {jobs}, deliveries pending {siyu.pending_callbacks()}"
    )


def _corp(siyu: Stack) -> Corp:
    return from_jsonable(Corp, siyu.corp_export())


def _live_relations(corp: Corp) -> dict[tuple[str, str], tuple[str, int]]:
    """(external_userid, userid) → (state, add time) of every relation the customer has not deleted."""
    return {
        (e, u): (f.state, f.createtime)
        for e, c in corp.contacts.items()
        for u, f in c.follows.items()
        if not f.customer_deleted
    }


def expected_view(corp: Corp) -> dict[str, Any]:
    """What siyu must hold after processing the callbacks: WeCom's state, as far as callbacks determine it.

    A customer's name, remark and tags are read from WeCom when their add is processed, which may be after the
    guide deleted them (then WeCom no longer tells), and a customer who deleted the guide stays listed by WeCom
    while siyu records the deletion; the sync reconciles those, so they are left out here.
    """
    full = expected_state(corp)
    return {
        "guides": full["guides"],
        "customers": sorted(corp.contacts),
        "relations": _live_relations(corp),
        "groups": full["groups"],
        "tag_groups": full["tag_groups"],
    }


def siyu_view(tenant: Tenant) -> dict[str, Any]:
    full = db_state(tenant)
    return {
        "guides": full["guides"],
        "customers": sorted(full["customers"]),
        "relations": {key: (value[3], value[4]) for key, value in full["relations"].items()},
        "groups": full["groups"],
        "tag_groups": full["tag_groups"],
    }


def expected_guide_deletes(truth: dict[str, Any], deleted_by_customer: set[tuple[str, str]]) -> int:
    """How many del_external_contact events end a relation siyu still has active: a guide deleting a customer
    who had already deleted the guide changes nothing in siyu (the relation is deleted already)."""
    gone = set(deleted_by_customer)
    records = sorted(
        [("add", r) for r in truth["adds"]] + [("delete", r) for r in truth["deletes"]], key=lambda x: x[1]["step"]
    )
    count = 0
    for kind, record in records:
        pair = (record["external_userid"], record["userid"])
        if kind == "add":
            gone.discard(pair)
        elif record["by"] == "customer":
            gone.add(pair)
        else:
            count += pair not in gone
            gone.discard(pair)
    return count


# -- the test ---------------------------------------------------------------------------------------------------


def test_a_worker_killed_mid_run_loses_and_repeats_no_event(
    tmp_path: Path, django_db_blocker: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    with ExitStack() as stack:
        database = stack.enter_context(scratch_database(tmp_path, fast_commits=True))
        siyu = stack.enter_context(
            siyu_stack(
                database.url,
                tmp_path,
                corp_id=CORP_ID,
                emulator_args=EMULATOR_FLAGS,
                workers=0,  # started once the simulator has fired every callback
                env={"SIYU_WORKER_SWEEP_SECONDS": str(SWEEP_SECONDS)},
            )
        )
        stack.enter_context(django_db_blocker.unblock())
        stack.enter_context(using_database(database.url))

        tenant = siyu.connect(name="崩溃测试品牌", slug="crash", callback_token=TOKEN, encoding_aes_key=AES_KEY)
        siyu.processes.run("sync", "--tenant", "crash")
        # Planner statistics, as autovacuum gathers them within a minute of a bulk load: in a database created
        # seconds ago there are none, and PostgreSQL then scans whole tables for one-row look-ups.
        with connections["default"].cursor() as cursor:
            cursor.execute("ANALYZE")
        deleted_by_customer = {
            (e, u) for e, c in _corp(siyu).contacts.items() for u, f in c.follows.items() if f.customer_deleted
        }
        events_before = Event.objects.filter(tenant=tenant).order_by("-id").values_list("id", flat=True).first() or 0
        first_delivery = siyu.last_delivery()

        # A second of WeCom's clock per action, so that customers come back to the same guide later (deleting
        # them after adding, say); the actions themselves take a fraction of a second of real time.
        simulation = {"steps": STEPS, "seed": SEED, "mix": MIX, "seconds_per_step": 1}
        truth = siyu.admin("simulate/run", simulation, timeout=300)
        total = truth["counts"]["callbacks"]
        assert truth["steps"] == STEPS
        simulated = time.monotonic()

        # The worker, killed at KILL_AT (and, while no kill has caught a job mid-run, at EXTRA_KILLS_AT).
        worker = siyu.start_worker()
        kills: list[dict[str, int]] = []
        for share in (*KILL_AT, *EXTRA_KILLS_AT):
            if share in EXTRA_KILLS_AT and any(k["running_jobs"] for k in kills):
                break
            siyu.wait(
                f"{share:.0%} of {total} callbacks to be processed before killing the worker",
                lambda share=share: _done() >= share * total,
                timeout=DEADLINE,
                state=lambda: f"{_progress(siyu)}; worker log:\n{siyu.log('worker')}",
            )
            siyu.kill_worker(worker)
            kills.append(
                {
                    "done": _done(),
                    "running_jobs": DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).count(),
                    "received": RawCallback.objects.filter(status=RawCallback.Status.RECEIVED).count(),
                }
            )
            worker = siyu.restart_worker(worker)

        def finished() -> bool:
            return (
                siyu.pending_callbacks() == 0
                and RawCallback.objects.count() >= total
                and _done() == RawCallback.objects.count()
                and not DBTaskResult.objects.filter(
                    status__in=(TaskResultStatus.READY, TaskResultStatus.RUNNING)
                ).exists()
            )

        siyu.wait(
            "every callback to be delivered and processed",
            finished,
            timeout=DEADLINE,
            state=lambda: f"{_progress(siyu)}; worker log:\n{siyu.log('worker')}",
        )
        processed = time.monotonic()
        siyu.stop(worker)
        siyu.stop(siyu.web)
        deliveries = siyu.deliveries(after=first_delivery)
        corp = _corp(siyu)
        with capsys.disabled():
            print(  # noqa: T201 - the run's figures, for whoever watches the suite
                f"\ncrash test on {connections['default'].vendor}: {total} callbacks; kills {kills}; "
                f"simulated after {simulated - started:.0f} s, all processed after {processed - started:.0f} s"
            )

        # Every event WeCom sent was delivered, and is stored exactly once.
        assert len(deliveries) == total
        assert [d["id"] for d in deliveries if not d["acknowledged"]] == []
        distinct_events = len({d["xml"] for d in deliveries})
        assert distinct_events == total
        rows = RawCallback.objects.filter(tenant=tenant)
        assert rows.count() == distinct_events

        # ... and processed: none left received or failed, every ignored one says why.
        statuses = Counter(rows.values_list("status", flat=True))
        assert set(statuses) <= set(DONE), statuses
        assert list(rows.filter(status=RawCallback.Status.IGNORED, error="").values_list("id", flat=True)) == []

        # The kills interrupted work, and the restarted workers finished it: no job is left running or failed.
        assert any(k["running_jobs"] for k in kills), f"no kill caught a job mid-run: {kills}"
        jobs = Counter(DBTaskResult.objects.values_list("status", flat=True))
        assert set(jobs) == {TaskResultStatus.SUCCESSFUL}, jobs
        # The periodic sweep ran all along without flooding the queue with jobs for rows that had one (a row it
        # re-enqueues, or one that failed first, took more than one attempt).
        retried = rows.filter(attempts__gt=1).count()
        assert retried <= total // 100, f"{retried} callbacks took more than one attempt"
        assert jobs.total() <= total + total // 100, f"{jobs.total()} jobs for {total} callbacks"

        # No event was applied twice: no timeline event is written twice ...
        new_events = Event.objects.filter(tenant=tenant, id__gt=events_before)
        timeline = Counter(
            (e.type, e.customer_id, e.guide_id, e.occurred_at, json.dumps(e.properties, sort_keys=True))
            for e in new_events
        )
        assert [key for key, n in timeline.items() if n > 1] == []
        # ... and the adds and deletes in siyu's event log are the simulator's, one for one.
        types = Counter(new_events.values_list("type", flat=True))
        assert types["customer.created"] == truth["counts"]["new_customers"] == truth["counts"]["add"]
        assert types["contact.added"] == truth["counts"]["add"]
        assert types["contact.deleted_by_customer"] == truth["counts"]["customer_delete"]
        assert types["contact.deleted_by_guide"] == expected_guide_deletes(truth, deleted_by_customer)

        # siyu's view equals WeCom's.
        assert siyu_view(tenant) == expected_view(corp)
