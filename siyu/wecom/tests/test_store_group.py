"""One group of callbacks stored together (the endpoint's group commit): each callback's outcome is what it would
be alone, in arrival order — on SQLite and on PostgreSQL, whose store is one statement of its own."""

from __future__ import annotations

import pytest

from siyu.wecom import webhooks
from siyu.wecom.models import RawCallback, WeComConnection
from siyu.wecom.services import StoreOutcome, raw_callbacks_store
from siyu.wecom.tests.support import CORP_A, contact_xml, signed_post

pytestmark = pytest.mark.usefixtures("connections")


def _verified(xml: str, nonce: str, timestamp: int | None = None) -> webhooks.VerifiedCallback:
    request = signed_post(xml, nonce=nonce, timestamp=timestamp)
    return webhooks.verify_message(
        key=CORP_A,
        msg_signature=request.query["msg_signature"],
        timestamp=request.query["timestamp"],
        nonce=request.query["nonce"],
        body=request.body,
    )


ADD = contact_xml("add_external_contact", "guide1", "wmG001", State="s1")
DELETE = contact_xml("del_follow_user", "guide1", "wmG001")
EDIT = contact_xml("edit_external_contact", "guide1", "wmG002")


def test_a_mixed_group_gets_each_callback_its_own_outcome(connections: dict[str, WeComConnection]) -> None:
    (earlier,) = raw_callbacks_store(verified=[_verified(EDIT, "n-stored")], enqueue=False)
    add = _verified(ADD, "n-1")
    group = [
        add,
        add,  # the same request twice in one group: one row
        _verified(DELETE, "n-1"),  # n-1 again with another message: a replay
        _verified(ADD, "n-2", timestamp=int(add.timestamp) + 1),  # the add re-sent with a fresh nonce: a retry
        _verified(DELETE, "n-stored"),  # a nonce stored before, with another message: a replay
        _verified(DELETE, "n-3"),  # the delete, properly signed: stored
        _verified(EDIT, "n-4"),  # the edit stored before, delivered again: a retry
    ]
    outcomes = raw_callbacks_store(verified=group, enqueue=False)
    assert [o.outcome for o in outcomes] == [
        StoreOutcome.STORED,
        StoreOutcome.DUPLICATE,
        StoreOutcome.NONCE_REUSED,
        StoreOutcome.DUPLICATE,
        StoreOutcome.NONCE_REUSED,
        StoreOutcome.STORED,
        StoreOutcome.DUPLICATE,
    ]
    add_id, delete_id = outcomes[0].raw_callback_id, outcomes[5].raw_callback_id
    assert [o.raw_callback_id for o in outcomes] == [
        add_id,
        add_id,
        None,
        add_id,
        None,
        delete_id,
        earlier.raw_callback_id,
    ]
    rows = {r.id: r for r in RawCallback.objects.all()}
    assert set(rows) == {earlier.raw_callback_id, add_id, delete_id}
    assert (rows[add_id].nonce, rows[add_id].event["ChangeType"], rows[add_id].event["State"]) == (
        "n-1",
        "add_external_contact",
        "s1",
    )
    assert (rows[delete_id].nonce, rows[delete_id].status) == ("n-3", RawCallback.Status.RECEIVED)
    assert rows[delete_id].tenant_id == connections["A"].tenant_id


def test_a_replayed_first_delivery_does_not_hide_a_good_one_later_in_the_group() -> None:
    raw_callbacks_store(verified=[_verified(EDIT, "n-used")], enqueue=False)
    outcomes = raw_callbacks_store(verified=[_verified(ADD, "n-used"), _verified(ADD, "n-fresh")], enqueue=False)
    assert [o.outcome for o in outcomes] == [StoreOutcome.NONCE_REUSED, StoreOutcome.STORED]
    assert RawCallback.objects.get(id=outcomes[1].raw_callback_id).nonce == "n-fresh"
