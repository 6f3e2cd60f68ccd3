"""On-job transfers and resigned inheritance against the emulator over HTTP: WeCom's 24-hour window, refusals,
the transfer limits, the brand IP as heir, group chats, and resuming after a lost answer."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from django_tasks_db.models import DBTaskResult

from siyu.analytics.models import Event
from siyu.core.models import AuditLog, Guide
from siyu.customers.models import FollowRelation
from siyu.groups.models import CustomerGroup, GroupMember
from siyu.inheritance import services
from siyu.inheritance.models import Transfer, TransferGroupItem, TransferItem, UnassignedCustomer
from siyu.inheritance.selectors import unassigned_list
from siyu.inheritance.services import (
    transfer_poll,
    transfer_refresh,
    transfer_start,
    transfer_submit,
    transfer_to_brand_ip,
    unassigned_refresh,
)
from siyu.inheritance.tests.conftest import DAY, Synced
from siyu.wecom.models import RawCallback
from siyu.wecom.services import raw_callback_process
from siyu.wecom.tests.support import signed_post


def start(synced: Synced, handover: str, takeover: str, customers: list[str] | None, **extra: Any) -> Transfer:
    return transfer_start(
        actor=synced.actor,
        kind=extra.pop("kind", Transfer.Kind.ON_JOB),
        handover_guide_id=synced.guide(handover).id,
        takeover_guide_id=synced.guide(takeover).id,
        customer_ids=None if customers is None else [synced.customer(c).id for c in customers],
        client_factory=synced.brand.client,
        **extra,
    )


def poll(synced: Synced, transfer: Transfer) -> Transfer:
    polled = transfer_poll(transfer_id=transfer.id, client_factory=synced.brand.client)
    assert polled is not None
    return polled


def statuses(transfer: Transfer) -> dict[str, tuple[str, int]]:
    return {i.external_userid: (i.status, i.errcode) for i in TransferItem.objects.filter(transfer=transfer)}


def events(synced: Synced, *types: str) -> Counter[str]:
    return Counter(Event.objects.filter(tenant=synced.brand.tenant, type__in=types).values_list("type", flat=True))


def relation(synced: Synced, external_userid: str, userid: str) -> FollowRelation:
    guide = synced.guide(userid)
    return FollowRelation.objects.get(tenant=synced.brand.tenant, external_userid=external_userid, guide=guide)


def deliver_callbacks(synced: Synced) -> list[RawCallback]:
    """Push every callback the emulator produced through siyu's endpoint and process it, as a worker would."""
    corp_id = synced.brand.connection.corp_id
    rows = []
    for delivery in synced.brand.admin("callbacks")["deliveries"]:
        assert signed_post(delivery["xml"], key=corp_id, corp_id=corp_id).send().status_code == 200
        row = RawCallback.objects.filter(tenant=synced.brand.tenant).latest("id")
        processed = raw_callback_process(raw_callback_id=row.id, client_factory=synced.brand.client)
        assert processed is not None
        rows.append(processed)
    return rows


def test_on_job_transfer_waits_24_hours_then_moves_the_customers(synced: Synced) -> None:
    handover, takeover, customers = synced.pair(3)
    old = {c: relation(synced, c, handover) for c in customers}
    synced_events = events(synced, "contact.added", "contact.deleted_by_guide")
    transfer = start(synced, handover, takeover, customers, message="您好，我是您的新顾问")
    assert (transfer.status, transfer.last_error, transfer.message) == ("in_progress", "", "您好，我是您的新顾问")
    assert statuses(transfer) == dict.fromkeys(customers, ("waiting", 0))
    assert events(synced, "contact.transfer_started") == {"contact.transfer_started": 3}

    # Within the window the customers may still refuse: nothing moves in WeCom or in siyu.
    synced.advance(DAY - 60)
    transfer = poll(synced, transfer)
    assert transfer.status == "in_progress"
    assert set(statuses(transfer).values()) == {("waiting", 0)}
    assert all(synced.follows(c) >= {handover} and takeover not in synced.follows(c) for c in customers)
    due = {i.due_at for i in TransferItem.objects.filter(transfer=transfer)}
    assert len(due) == 1  # WeCom's own takeover time, the same for the three

    synced.advance(61)
    transfer = poll(synced, transfer)
    assert transfer.status == "done"
    assert statuses(transfer) == dict.fromkeys(customers, ("succeeded", 0))
    for c in customers:
        assert synced.wecom_follows(c) == synced.follows(c)  # siyu agrees with WeCom
        new = relation(synced, c, takeover)
        assert (new.status, new.add_way, new.remark) == ("active", 202, old[c].remark)
        assert relation(synced, c, handover).status == "deleted_by_guide"
        item = TransferItem.objects.get(transfer=transfer, external_userid=c)
        assert new.added_at == item.takeover_at == next(iter(due))
    # One add for the takeover guide and one removal for the handover guide per customer, and the transfer itself.
    assert events(synced, "contact.added", "contact.deleted_by_guide") - synced_events == {
        "contact.added": 3,
        "contact.deleted_by_guide": 3,
    }
    assert events(synced, "contact.transferred") == {"contact.transferred": 3}
    assert list(AuditLog.objects.filter(target_type="transfer").values_list("action", "detail")) == [
        ("transfer.progress", {"customers": {"succeeded": 3}, "groups_taken_over": 0}),
        (
            "transfer.start",
            {
                "kind": "on_job",
                "handover_guide_id": synced.guide(handover).id,
                "takeover_guide_id": synced.guide(takeover).id,
                "customers": 3,
                "groups": 0,
            },
        ),
    ]

    # WeCom's callbacks for the same takeover arrive afterwards: they change nothing, and polling again neither.
    before = Event.objects.count()
    rows = deliver_callbacks(synced)
    assert [(r.change_type, r.status, r.error) for r in rows] == [
        ("add_external_contact", "processed", "already following"),
        ("del_external_contact", "processed", "already deleted"),
    ] * 3
    poll(synced, transfer)
    assert Event.objects.count() == before
    assert all(synced.wecom_follows(c) == synced.follows(c) for c in customers)


def test_callbacks_first_then_poll_converges(synced: Synced) -> None:
    handover, takeover, customers = synced.pair(2)
    transfer = start(synced, handover, takeover, customers)
    synced.advance(DAY + 1)
    # The worker processes WeCom's callbacks before anyone polls: the relations move through the callbacks.
    rows = deliver_callbacks(synced)
    assert {(r.change_type, r.status) for r in rows} == {
        ("add_external_contact", "processed"),
        ("del_external_contact", "processed"),
    }
    added = events(synced, "contact.added", "contact.deleted_by_guide")
    transfer = poll(synced, transfer)
    assert statuses(transfer) == dict.fromkeys(customers, ("succeeded", 0))
    # The poll records the outcome but does not add or end the relations a second time.
    assert events(synced, "contact.added", "contact.deleted_by_guide") == added
    assert events(synced, "contact.transferred") == {"contact.transferred": 2}
    assert all(synced.follows(c) == synced.wecom_follows(c) for c in customers)


def test_a_customer_refuses_within_the_window(synced: Synced) -> None:
    handover, takeover, customers = synced.pair(2)
    transfer = start(synced, handover, takeover, customers)
    synced.advance(3600)
    synced.brand.admin("simulate/transfer/refuse", {"external_userid": customers[0]})
    transfer = poll(synced, transfer)
    assert statuses(transfer) == {customers[0]: ("refused", 0), customers[1]: ("waiting", 0)}
    assert transfer.status == "in_progress"

    synced.advance(DAY)
    transfer = poll(synced, transfer)
    assert statuses(transfer) == {customers[0]: ("refused", 0), customers[1]: ("succeeded", 0)}
    assert transfer.status == "done"
    # The customer who refused stays with the handover guide, in WeCom and in siyu.
    assert synced.follows(customers[0]) == synced.wecom_follows(customers[0])
    assert handover in synced.follows(customers[0])
    assert takeover not in synced.follows(customers[0])
    failed = Event.objects.get(tenant=synced.brand.tenant, type="contact.transfer_failed")
    assert (failed.customer_id, failed.properties["reason"]) == (synced.customer(customers[0]).id, "refused")


def test_twice_in_90_days_is_the_limit_per_customer(synced: Synced) -> None:
    handover, takeover, customers = synced.pair(2)
    moved, fresh = customers
    poll(synced, start(synced, handover, takeover, [moved]))
    synced.advance(DAY + 1)
    poll(synced, TransferItem.objects.get(external_userid=moved).transfer)
    back = start(synced, takeover, handover, [moved])
    assert statuses(back) == {moved: ("waiting", 0)}
    synced.advance(DAY + 1)
    poll(synced, back)

    # A third move of `moved` within 90 days is refused for that customer alone; `fresh` starts normally.
    third = start(synced, handover, takeover, [moved, fresh])
    assert statuses(third) == {moved: ("failed", 40128), fresh: ("waiting", 0)}
    item = TransferItem.objects.get(transfer=third, external_userid=moved)
    assert item.errmsg == "already transferred twice within 90 days"
    assert third.status == "in_progress"
    assert handover in synced.follows(moved)
    assert takeover not in synced.follows(moved)


def test_takeover_guide_at_its_customer_limit(synced: Synced) -> None:
    handover, takeover, customers = synced.pair(1)
    server = synced.brand.server.emulator
    with server.lock:
        server.config.member_customer_limit = len(synced.brand.corp.customers_of(takeover))
    transfer = start(synced, handover, takeover, customers)
    synced.advance(DAY)
    transfer = poll(synced, transfer)
    assert statuses(transfer) == {customers[0]: ("limit_exceeded", 0)}
    assert handover in synced.follows(customers[0])


def test_customer_gone_before_the_takeover_is_no_record(synced: Synced) -> None:
    handover, takeover, customers = synced.pair(1)
    transfer = start(synced, handover, takeover, customers)
    synced.brand.admin("simulate/del_contact", {"userid": handover, "external_userid": customers[0], "by": "member"})
    synced.advance(DAY)
    assert statuses(poll(synced, transfer)) == {customers[0]: ("no_record", 0)}


def test_departed_guide_goes_to_the_brand_ip_with_groups(synced: Synced) -> None:
    with synced.brand.server.emulator.lock:
        corp = synced.brand.corp
        departing = next(c.owner for c in corp.group_chats.values())
        theirs = sorted(corp.customers_of(departing))
        chats = sorted(c.chat_id for c in corp.group_chats.values() if c.owner == departing)
    Guide.objects.filter(tenant=synced.brand.tenant, wecom_userid="brand_ip").update(kind=Guide.Kind.BRAND_IP)
    synced.brand.admin("simulate/member/resign", {"userid": departing})
    synced.sync("members")
    assert synced.guide(departing).status == Guide.Status.DEPARTED

    # WeCom lists the departed guide's customers as unassigned until they are handed over.
    state = unassigned_refresh(actor=synced.actor, client_factory=synced.brand.client)
    assert (state.error, state.count) == ("", len(theirs))
    listed = unassigned_list(actor=synced.actor, handover_guide_id=synced.guide(departing).id)
    assert sorted(u.external_userid for u in listed) == theirs
    assert all(u.customer_id == synced.customer(u.external_userid).id for u in listed)

    transfer = transfer_to_brand_ip(
        actor=synced.actor, handover_guide_id=synced.guide(departing).id, client_factory=synced.brand.client
    )
    assert (transfer.kind, transfer.takeover.wecom_userid, transfer.status) == ("resigned", "brand_ip", "in_progress")
    assert sorted(statuses(transfer)) == theirs
    already = {c for c in theirs if "brand_ip" in synced.wecom_follows(c)}
    assert set(statuses(transfer).values()) == {("waiting", 0)}
    # Groups change owner at once: WeCom makes the brand IP the owner (and a member), siyu mirrors it.
    groups = {g.chat_id: (g.status, g.errcode) for g in TransferGroupItem.objects.filter(transfer=transfer)}
    assert groups == dict.fromkeys(chats, ("succeeded", 0))
    for chat_id in chats:
        group = CustomerGroup.objects.get(tenant=synced.brand.tenant, chat_id=chat_id)
        assert group.owner.wecom_userid == "brand_ip"
        assert GroupMember.objects.filter(group=group, userid="brand_ip", left_at__isnull=True).exists()
    assert UnassignedCustomer.objects.count() == len(theirs)  # the list is as of the last fetch
    assert unassigned_refresh(actor=synced.actor, client_factory=synced.brand.client).count == 0

    synced.advance(DAY)
    transfer = poll(synced, transfer)
    assert transfer.status == "done"
    assert set(statuses(transfer).values()) == {("succeeded", 0)}
    for c in theirs:
        assert "brand_ip" in synced.follows(c)
        assert relation(synced, c, departing).status == "deleted_by_guide"
        if c not in already:
            assert relation(synced, c, "brand_ip").add_way == 202


def test_on_job_group_transfer_keeps_the_old_owner_in_the_group(synced: Synced) -> None:
    with synced.brand.server.emulator.lock:
        corp = synced.brand.corp
        owner = next(c.owner for c in corp.group_chats.values())
        chats = sorted(c.chat_id for c in corp.group_chats.values() if c.owner == owner)
        one_customer = sorted(corp.customers_of(owner))[:1]
    _, heir, _ = synced.pair(1, exclude=(owner,))
    transfer = start(synced, owner, heir, one_customer, include_groups=True)
    groups = TransferGroupItem.objects.filter(transfer=transfer)
    assert {g.chat_id: (g.status, g.errcode) for g in groups} == dict.fromkeys(chats, ("succeeded", 0))
    for chat_id in chats:
        group = CustomerGroup.objects.get(tenant=synced.brand.tenant, chat_id=chat_id)
        assert group.owner.wecom_userid == heir
        assert GroupMember.objects.filter(group=group, userid=owner, left_at__isnull=True).exists()
        assert GroupMember.objects.filter(group=group, userid=heir, left_at__isnull=True).exists()


def test_a_group_wecom_refuses_fails_alone_with_its_errcode(synced: Synced) -> None:
    with synced.brand.server.emulator.lock:
        corp = synced.brand.corp
        owner = next(c.owner for c in corp.group_chats.values())
        chats = sorted(c.chat_id for c in corp.group_chats.values() if c.owner == owner)
    _, heir, _ = synced.pair(1, exclude=(owner,))
    # The heir already took the first group over in WeCom; siyu has not heard of it yet.
    synced.brand.admin("simulate/chat/update", {"chat_id": chats[0], "owner": heir})
    transfer = start(synced, owner, heir, None, include_groups=True)
    groups = {g.chat_id: (g.status, g.errcode) for g in TransferGroupItem.objects.filter(transfer=transfer)}
    assert groups == {chats[0]: ("failed", 90504), **dict.fromkeys(chats[1:], ("succeeded", 0))}


def test_resigned_group_transfer_in_progress_until_wecom_finishes(synced: Synced) -> None:
    server = synced.brand.server.emulator
    with server.lock:
        server.config.groupchat_transfer_seconds = 600
        owner = next(c.owner for c in synced.brand.corp.group_chats.values())
        chats = sorted(c.chat_id for c in synced.brand.corp.group_chats.values() if c.owner == owner)
    _, heir, _ = synced.pair(1, exclude=(owner,))
    synced.brand.admin("simulate/member/resign", {"userid": owner})
    synced.sync("members")
    transfer = start(synced, owner, heir, None, kind=Transfer.Kind.RESIGNED, include_groups=True)
    assert set(TransferGroupItem.objects.filter(transfer=transfer).values_list("status", flat=True)) == {"waiting"}
    assert CustomerGroup.objects.filter(chat_id__in=chats, owner__wecom_userid=owner).count() == len(chats)
    synced.advance(601)
    poll(synced, transfer)
    assert set(TransferGroupItem.objects.filter(transfer=transfer).values_list("status", flat=True)) == {"succeeded"}
    assert CustomerGroup.objects.filter(chat_id__in=chats, owner__wecom_userid=heir).count() == len(chats)


def test_wecom_refuses_the_whole_request(synced: Synced) -> None:
    """siyu thinks the guide left, WeCom does not (the member sync has not run): 40097 for every customer."""
    handover, takeover, customers = synced.pair(2)
    Guide.objects.filter(tenant=synced.brand.tenant, wecom_userid=handover).update(status=Guide.Status.DEPARTED)
    transfer = start(synced, handover, takeover, customers, kind=Transfer.Kind.RESIGNED)
    assert statuses(transfer) == dict.fromkeys(customers, ("failed", 40097))
    assert transfer.status == "done"
    assert set(TransferItem.objects.filter(transfer=transfer).values_list("errmsg", flat=True)) == {
        "the handover guide has not left the WeCom corp"
    }


def test_an_answer_lost_after_wecom_started_the_transfer_is_reconciled(
    synced: Synced, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large transfer goes to a job; if WeCom started some customers but the answer never got recorded (a
    crash), sending them again gets 40129 and transfer_result shows they are ours: waiting, not failed."""
    monkeypatch.setattr(services, "INLINE_LIMIT", 2)
    handover, takeover, customers = synced.pair(4)
    transfer = start(synced, handover, takeover, customers)
    assert statuses(transfer) == dict.fromkeys(customers, ("pending", 0))  # left to the job
    with synced.brand.client(synced.brand.connection) as client:
        client.transfer_customer(handover_userid=handover, takeover_userid=takeover, external_userids=customers[:2])
    transfer = transfer_submit(transfer_id=transfer.id, client_factory=synced.brand.client)
    assert transfer is not None
    assert statuses(transfer) == dict.fromkeys(customers, ("waiting", 0))
    # Running the job again sends nothing twice.
    assert transfer_submit(transfer_id=transfer.id, client_factory=synced.brand.client) is not None
    assert statuses(transfer) == dict.fromkeys(customers, ("waiting", 0))
    assert events(synced, "contact.transfer_started") == {"contact.transfer_started": 4}


def test_the_poll_is_scheduled_for_the_end_of_the_window(
    synced: Synced, django_capture_on_commit_callbacks: Any
) -> None:
    handover, takeover, customers = synced.pair(1)
    with django_capture_on_commit_callbacks(execute=True):
        transfer = start(synced, handover, takeover, customers)
    job = DBTaskResult.objects.get(task_path="siyu.inheritance.tasks.transfer_poll_run")
    due = TransferItem.objects.get(transfer=transfer).due_at
    assert due is not None
    assert job.args_kwargs == {"args": [transfer.id], "kwargs": {}}
    assert job.run_after == due + dt.timedelta(minutes=2)


def test_refresh_sends_what_is_pending_and_polls(synced: Synced) -> None:
    handover, takeover, customers = synced.pair(1)
    faults = synced.brand.admin("faults", {"rate_http_5xx": 1.0})
    assert faults
    transfer = start(synced, handover, takeover, customers)
    assert transfer.status == "submitting"
    assert "HTTP 5" in transfer.last_error
    assert statuses(transfer) == {customers[0]: ("pending", 0)}
    synced.brand.admin("faults", {"rate_http_5xx": 0.0})
    transfer = transfer_refresh(actor=synced.actor, transfer_id=transfer.id, client_factory=synced.brand.client)
    assert (transfer.status, transfer.last_error) == ("in_progress", "")
    assert statuses(transfer) == {customers[0]: ("waiting", 0)}


def test_a_transfer_fail_callback_asks_for_the_transfers_status_at_once(
    synced: Synced, django_capture_on_commit_callbacks: Any
) -> None:
    handover, takeover, customers = synced.pair(2)
    transfer = start(synced, handover, takeover, customers)
    synced.advance(600)
    synced.brand.admin("callbacks/clear", {})
    synced.brand.admin("simulate/transfer/refuse", {"external_userid": customers[0]})
    DBTaskResult.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        rows = deliver_callbacks(synced)
    assert [(r.change_type, r.status) for r in rows] == [("transfer_fail", RawCallback.Status.PROCESSED)]
    assert rows[0].error == f"status asked for transfer #{transfer.id}"
    # The poll job is queued now, not at the end of the 24 hours; run it as the worker would.
    job = DBTaskResult.objects.get(task_path__endswith="transfer_poll_run")
    assert job.args_kwargs["args"] == [transfer.id]
    transfer = poll(synced, transfer)
    assert statuses(transfer) == {customers[0]: ("refused", 0), customers[1]: ("waiting", 0)}
