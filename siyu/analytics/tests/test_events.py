"""The event log is typed and append-only."""

from __future__ import annotations

import pytest

from siyu.analytics.models import Event
from siyu.analytics.selectors import timeline_for_customer
from siyu.analytics.services import event_record
from siyu.core.errors import ValidationFailed
from siyu.testing import World


def test_unknown_type_and_missing_properties_are_refused(world: World) -> None:
    before = Event.objects.count()
    with pytest.raises(ValidationFailed):
        event_record(tenant_id=world.tenant_a.id, type="made.up")
    with pytest.raises(ValidationFailed) as info:
        event_record(tenant_id=world.tenant_a.id, type="order.paid", properties={"order_no": "1"})
    assert "amount_cents" in info.value.message
    assert Event.objects.count() == before


def test_events_cannot_be_changed(world: World) -> None:
    event = Event.objects.filter(tenant_id=world.tenant_a.id).first()
    assert event is not None
    event.type = "tag.removed"
    with pytest.raises(ValueError, match="append-only"):
        event.save()


def test_timeline_is_newest_first_and_tenant_scoped(world: World) -> None:
    c1 = world.customers["c1"]
    types = list(timeline_for_customer(actor=world.actor("hq"), customer_id=c1.id).values_list("type", flat=True))
    assert types == ["tag.added", "contact.added", "customer.created"]
    assert list(timeline_for_customer(actor=world.actor("outsider"), customer_id=c1.id)) == []
