"""Callbacks about one customer are applied in the order they arrived, whatever order their jobs run in.

Each web process enqueues a job for the rows it stored, so rows that arrived one after the other can sit in two
jobs that run in the opposite order; a job recovered after a crash runs after newer ones too. (Found by the
crash test, siyu/wecom/tests/test_crash.py: a customer's delete ran before their add and was ignored.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest

from siyu.analytics.models import Event
from siyu.customers.models import FollowRelation
from siyu.testing import World
from siyu.wecom.models import RawCallback, WeComConnection
from siyu.wecom.tasks import raw_callback_run
from siyu.wecom.tests.support import CORP_A, T0, FakeWeCom, FakeWeComServer, contact_xml

AT = dt.datetime.fromtimestamp(T0, tz=dt.UTC)


@pytest.fixture(autouse=True)
def fake(connections: dict[str, WeComConnection]) -> Iterator[FakeWeCom]:
    """Brand A's WeCom, over HTTP; it no longer knows the customers, so adds use the callback alone."""
    fake = FakeWeCom()
    fake.answers["externalcontact/get"] = {"errcode": 84061, "errmsg": "not external contact"}
    server = FakeWeComServer(fake)
    WeComConnection.objects.filter(corp_id=CORP_A).update(api_base_url=server.url)
    yield fake
    server.stop()


def _status(row: RawCallback) -> tuple[str, int]:
    row.refresh_from_db()
    return row.status, row.attempts


def test_a_delete_whose_job_runs_first_waits_for_the_add_before_it(
    world: World, store: Callable[..., RawCallback]
) -> None:
    added = store(contact_xml("add_external_contact", "guide1", "wmORDER1", create_time=T0, State="s1"))
    someone_else = store(contact_xml("add_external_contact", "guide2", "wmORDER2", create_time=T0 + 1))
    deleted = store(contact_xml("del_follow_user", "guide1", "wmORDER1", create_time=T0 + 5))

    # The delete's job (with the row after it) runs before the add's.
    assert raw_callback_run.call(deleted.id) == "processed"

    assert _status(added) == ("processed", 1)
    assert _status(deleted) == ("processed", 1)
    assert _status(someone_else) == ("received", 0)  # another customer's event keeps its own turn
    relation = FollowRelation.objects.get(external_userid="wmORDER1")
    assert (relation.status, relation.added_at, relation.deleted_at) == (
        FollowRelation.Status.DELETED_BY_CUSTOMER,
        AT,
        AT + dt.timedelta(seconds=5),
    )
    timeline = list(
        Event.objects.filter(customer_id=relation.customer_id).order_by("id").values_list("type", flat=True)
    )
    assert timeline == ["customer.created", "contact.added", "contact.deleted_by_customer"]

    # The add's own job comes later and finds it done: applied once.
    assert raw_callback_run.call(added.id, someone_else.id) == "processed=2"
    assert _status(added) == ("processed", 1)
    assert Event.objects.filter(customer_id=relation.customer_id).count() == 3


def test_a_failed_earlier_callback_does_not_hold_up_later_ones(
    world: World, store: Callable[..., RawCallback]
) -> None:
    added = store(contact_xml("add_external_contact", "guide1", "wmORDER3", create_time=T0))
    RawCallback.objects.filter(id=added.id).update(status=RawCallback.Status.FAILED, attempts=1, error="boom")
    deleted = store(contact_xml("del_external_contact", "guide1", "wmORDER3", create_time=T0 + 5))

    assert raw_callback_run.call(deleted.id) == "ignored"

    # The failed add is left to its retry (the sweep), not run ahead again by every later event.
    assert _status(added) == ("failed", 1)
    deleted.refresh_from_db()
    assert deleted.error == "unknown customer"
