"""Concurrent deliveries and workers, on committed data with real threads (each with its own connection).

Two workers on one row apply it once; two workers creating the same new customer from two guides' callbacks
end with one customer; two simultaneous deliveries of one event store one row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection as db_connection
from django.db import connections

from siyu.analytics.models import Event
from siyu.customers.models import Customer, FollowRelation, Identity
from siyu.testing import World, build_world
from siyu.wecom.models import RawCallback
from siyu.wecom.services import connection_create, raw_callback_process, raw_callback_store
from siyu.wecom.tests.support import AES_KEY, CORP_A, TOKEN, contact_xml, signed_post
from siyu.wecom.webhooks import verify_message

pytestmark = pytest.mark.skipif(
    db_connection.vendor == "sqlite",
    reason="the in-memory SQLite test database answers concurrent writers with 'table is locked' instead of waiting",
)


@pytest.fixture
def committed(transactional_db: None) -> World:
    world = build_world()
    connection_create(actor=world.actor("hq"), corp_id=CORP_A, callback_token=TOKEN, encoding_aes_key=AES_KEY)
    return world


def _verified(xml: str, **kwargs: Any) -> Any:
    request = signed_post(xml, **kwargs)
    return verify_message(
        key=CORP_A,
        msg_signature=request.query["msg_signature"],
        timestamp=request.query["timestamp"],
        nonce=request.query["nonce"],
        body=request.body,
    )


def _together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released at the same moment; returns their results (or exceptions)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[i] = call()
        except Exception as exc:
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_two_workers_on_one_callback_apply_it_once(committed: World) -> None:
    row, _ = raw_callback_store(verified=_verified(contact_xml("add_external_contact", "guide1", "wmNEW001")))
    results = _together(*[lambda: raw_callback_process(raw_callback_id=row.id)] * 4)
    assert [r.status for r in results] == ["processed"] * 4
    assert RawCallback.objects.get(id=row.id).attempts == 1
    customer = Identity.objects.get(value="wmNEW001").customer
    assert Event.objects.filter(customer_id=customer.id, type="contact.added").count() == 1


def test_two_guides_adding_one_new_customer_at_once_make_one_customer(committed: World) -> None:
    rows = [
        raw_callback_store(verified=_verified(contact_xml("add_external_contact", userid, "wmNEW002")))[0]
        for userid in ("guide1", "guide2", "guide3")
    ]
    results = _together(*[lambda row=row: raw_callback_process(raw_callback_id=row.id) for row in rows])
    assert [r.status for r in results] == ["processed"] * 3
    assert Customer.objects.filter(identities__value="wmNEW002").count() == 1
    assert sorted(
        FollowRelation.objects.filter(external_userid="wmNEW002").values_list("guide__wecom_userid", flat=True)
    ) == [
        "guide1",
        "guide2",
        "guide3",
    ]


def test_simultaneous_deliveries_of_one_event_store_one_row(committed: World) -> None:
    xml = contact_xml("add_external_contact", "guide1", "wmNEW003")
    deliveries = [_verified(xml) for _ in range(4)]  # four retries, each under its own nonce
    results = _together(*[lambda v=v: raw_callback_store(verified=v) for v in deliveries])
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert len({row.id for row, _ in results}) == 1
    assert RawCallback.objects.count() == 1
