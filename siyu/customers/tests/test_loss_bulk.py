"""Loss alerts raised by the WeCom sync's prune (follow_relations_prune_wecom): every relation WeCom no longer
lists gets its alert, its timeline event and its message job, as from the callback — in a number of queries that
does not grow with the number of relations ended."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from siyu.analytics.models import Event
from siyu.analytics.services import event_record
from siyu.core.models import Guide
from siyu.customers.alerts import loss_alerts_raise
from siyu.customers.models import Customer, FollowRelation, LossAlert
from siyu.customers.services import follow_relation_delete, follow_relations_prune_wecom
from siyu.testing import World

AT = dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)
CaptureOnCommit = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]


def _customers_of(world: World, guide: Guide, n: int, *, prefix: str) -> list[Customer]:
    """`n` customers WeCom-added by `guide`, each of whom sent a message (the last interaction) the day before."""
    now = timezone.now()
    made = []
    for i in range(n):
        customer = Customer.objects.create(tenant=world.tenant_a, created_at=now, updated_at=now)
        FollowRelation.objects.create(tenant=world.tenant_a, customer=customer, guide=guide,
                                      external_userid=f"{prefix}{i}", added_at=now)  # fmt: skip
        event_record(tenant_id=world.tenant_a.id, type="message.received", customer_id=customer.id,
                     occurred_at=AT - dt.timedelta(days=1, minutes=i), properties={"guide_id": guide.id})  # fmt: skip
        made.append(customer)
    return made


def _prune_queries(world: World, guide: Guide) -> int:
    with CaptureQueriesContext(connection) as ctx:
        follow_relations_prune_wecom(actor=world.actor("hq"), guide_ids=[guide.id], present=[], at=AT)
    return len(ctx.captured_queries)


def test_prune_raises_every_alert_with_a_constant_number_of_queries(
    world: World, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    g2, g3 = world.guides["G2"], world.guides["G3"]
    # Relations of the world's customers would count too: end them first, so each prune sees only ours.
    FollowRelation.objects.filter(guide__in=[g2, g3]).update(external_userid="")
    one = _customers_of(world, g2, 1, prefix="wmone")
    many = _customers_of(world, g3, 12, prefix="wmmany")

    with django_capture_on_commit_callbacks() as one_jobs:
        few = _prune_queries(world, g2)
    with django_capture_on_commit_callbacks() as many_jobs:
        lots = _prune_queries(world, g3)

    assert lots == few, (few, lots)
    # Each ended relation: one alert with the guide's store and the customer's last message, one timeline event,
    # and one message job (the guide and the store manager hear of it as from the callback).
    alerts = {a.customer_id: a for a in LossAlert.objects.filter(guide__in=[g2, g3])}
    assert set(alerts) == {c.id for c in one + many}
    for i, customer in enumerate(many):
        alert = alerts[customer.id]
        assert (alert.kind, alert.store_id, alert.occurred_at) == ("deleted_by_guide", g3.store_id, AT)
        assert (alert.last_interaction_at, alert.last_interaction_type) == (
            AT - dt.timedelta(days=1, minutes=i), "message.received",
        )  # fmt: skip
    assert alerts[one[0].id].store_id == g2.store_id
    assert Event.objects.filter(type="contact.deleted_by_guide", customer_id__in=list(alerts)).count() == 13
    assert (len(one_jobs), len(many_jobs)) == (1, 12)


def test_a_loss_already_alerted_is_not_alerted_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The callback's alert and a prune of the same relation at the same time: one alert, one job."""
    g1 = world.guides["G1"]
    [customer] = _customers_of(world, g1, 1, prefix="wmagain")
    enqueued: list[int] = []
    monkeypatch.setattr("siyu.customers.alerts.enqueue_on_commit", lambda task, alert_id: enqueued.append(alert_id))
    follow_relation_delete(actor=world.actor("hq"), customer_id=customer.id, guide_id=g1.id, by_customer=False, at=AT)
    relation = FollowRelation.objects.get(customer=customer)
    assert loss_alerts_raise(relations=[relation], at=AT) == []
    assert LossAlert.objects.filter(customer=customer).count() == 1
    assert enqueued == [LossAlert.objects.get(customer=customer).id]
