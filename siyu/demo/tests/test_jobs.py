"""What a demo load leaves in the job queue: nothing. The services it runs queue follow-up jobs (a code's rebalance
at midnight, a settle when an invite's hold ends); the load holds them back, and the running brand's timed work waits
on its rows for the worker's periodic sweeps, which queue it when it comes due.

These tests commit (transaction=True): jobs are queued when a transaction commits, never inside a test's own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from siyu.campaigns.models import Invite
from siyu.campaigns.services import fission_settle_due
from siyu.channels.models import LiveCode, LiveCodeGuide
from siyu.channels.services import live_codes_rebalance_due
from siyu.demo.generate import TZ, customer_plan, fission_plan, org_plan
from siyu.demo.services import demo_load

pytestmark = pytest.mark.django_db(transaction=True)

ANCHOR = dt.datetime(2026, 6, 20, tzinfo=TZ)
SEED, SIZE = 11, 600  # a fission campaign with a few invites through participants' codes
REBALANCE = "siyu.channels.tasks.live_code_rebalance_run"


def _queued() -> list[tuple[str, list[Any], dt.datetime | None]]:
    """The jobs waiting in the database backend: task, arguments, earliest run (None: at once)."""
    ready = DBTaskResult.objects.filter(status=TaskResultStatus.READY)
    return sorted((r.task_path, r.args_kwargs["args"], r.task.run_after) for r in ready)


def test_a_demo_load_queues_no_job_and_its_timed_work_is_found_by_the_sweeps() -> None:
    load = demo_load(slug="demo", seed=SEED, customers=SIZE, anchor=ANCHOR).load
    assert load.tenant is not None
    tenant = load.tenant
    assert _queued() == []

    # Running the demo again (the brand is loaded) queues nothing either.
    assert demo_load(slug="demo").already_loaded is True
    assert _queued() == []

    # The codes with a daily cap wait for the caps' reset at the next local midnight; the sweep queues their
    # rebalance then, and not before.
    capped = set(
        LiveCodeGuide.objects.filter(live_code__tenant=tenant, daily_cap__isnull=False).values_list(
            "live_code_id", flat=True
        )
    )
    assert capped
    midnight = dt.datetime.combine(timezone.localdate() + dt.timedelta(days=1), dt.time.min, tzinfo=TZ)
    due = LiveCode.objects.filter(tenant=tenant, rebalance_at__isnull=False).values_list("id", "rebalance_at")
    assert dict(due) == dict.fromkeys(capped, midnight)
    assert live_codes_rebalance_due(now=midnight - dt.timedelta(seconds=1)) == 0
    assert _queued() == []
    assert live_codes_rebalance_due(now=midnight) == len(capped)
    assert _queued() == [(REBALANCE, [code_id], None) for code_id in sorted(capped)]
    DBTaskResult.objects.all().delete()

    # Each invite through a personal code queued a settle for the end of its hold; the loader settled every hold
    # itself, so none of those jobs is left, and none is due. (An invite still in its hold when the timeline ends,
    # as a full-size brand has, is settled by the sweep's job once the hold is over, as any whose job was lost.)
    plan = customer_plan(org=org_plan(seed=SEED, anchor=ANCHOR), seed=SEED, customers=SIZE, anchor=ANCHOR)
    invites = Invite.objects.filter(tenant=tenant)
    assert invites.count() == sum(1 for j in fission_plan(plan=plan, seed=SEED).joins if j.inviter is not None) > 0
    assert not invites.filter(status=Invite.Status.PENDING).exists()
    assert fission_settle_due() == 0
    assert _queued() == []
