"""siyu → WeCom tag push over real HTTP against the emulator: the outbox, idempotent retries, marks per follow
relation and the echo guard of inbound sync."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from django.utils import timezone

from siyu.core.models import AuditLog
from siyu.customers import identity as oneid
from siyu.tags.models import CustomerTag, Tag, TagGroup, TagPush, TagSource
from siyu.tags.push import tag_pushes_deliver
from siyu.tags.services import (
    WeComTagInput,
    customer_tag_add,
    customer_tag_remove,
    customer_tags_sync_wecom,
    tag_create,
    tag_delete,
    tag_group_create,
    tag_group_update,
    tag_group_upsert_wecom,
    tag_update,
)
from siyu.tags.tests.conftest import Chats
from siyu.wecom.client import RetryPolicy, WeComClient
from siyu.wecom.models import WeComConnection
from siyu.wecom.selectors import connection_client


def _client(connection: WeComConnection) -> WeComClient:
    return connection_client(connection, retry=RetryPolicy(attempts=1, base_delay=0.0))


def _deliver(chats: Chats) -> Any:
    return tag_pushes_deliver(tenant_id=chats.world.tenant_a.id, client_factory=_client)


def _faults(chats: Chats, settings: dict[str, Any]) -> None:
    """Emulator-wide fault injection (siyu.emulator.faults)."""
    response = httpx.post(f"{chats.server.url}/emulator/faults", json=settings, timeout=30)
    assert response.status_code == 200, response.text


def _remote(chats: Chats) -> dict[str, list[str]]:
    """Brand A's corp tag groups in the emulator: group name → tag names."""
    with _client(chats.connections["a"]) as client:
        return {
            g["group_name"]: sorted(t["name"] for t in g["tag"] if not t.get("deleted"))
            for g in client.corp_tag_list()
            if not g.get("deleted")
        }


def _marks(chats: Chats, external_userid: str) -> dict[str, list[str]]:
    """The corp tag ids each follower marked on a customer in the emulator."""
    with _client(chats.connections["a"]) as client:
        detail = client.external_contact_get(external_userid)
    return {f["userid"]: sorted(t["tag_id"] for t in f.get("tags", []) if t.get("type", 1) == 1) for f in
            detail["follow_user"]}  # fmt: skip


def test_created_group_and_tag_reach_wecom_with_their_ids(chats: Chats) -> None:
    hq = chats.world.actor("hq")
    group = tag_group_create(actor=hq, name="肤质", tags=["干皮"])
    tag = tag_create(actor=hq, group_id=group.id, name="油皮")
    # One outbox row for the group, whatever changed in it before delivery.
    assert TagPush.objects.filter(kind=TagPush.Kind.CATALOGUE, group=group, status="pending").count() == 1
    drain = _deliver(chats)
    assert (drain.done, drain.retried) == (1, 0)
    assert _remote(chats)["肤质"] == ["干皮", "油皮"]
    group.refresh_from_db()
    tag.refresh_from_db()
    assert group.wecom_group_id
    assert tag.wecom_tag_id
    # Renames follow; a second drain has nothing to do.
    tag_update(actor=hq, tag_id=tag.id, name="混油皮")
    tag_group_update(actor=hq, group_id=group.id, name="肤质类型")
    assert _deliver(chats).done == 1
    assert _remote(chats)["肤质类型"] == ["干皮", "混油皮"]
    assert _deliver(chats).done == 0


def test_a_retry_after_a_lost_answer_does_not_create_a_second_corp_tag(chats: Chats) -> None:
    hq = chats.world.actor("hq")
    # WeCom creates the tags but the answer is cut off: siyu cannot know the ids.
    _faults(chats, {"rate_truncate": 1.0, "paths": ["/cgi-bin/externalcontact/add_corp_tag"]})
    group = tag_group_create(actor=hq, name="肤质", tags=["干皮"])
    drain = _deliver(chats)
    assert (drain.done, drain.retried) == (0, 1)
    row = TagPush.objects.get(group=group)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_try_at > timezone.now()  # backoff
    _faults(chats, {"rate_truncate": 0.0, "paths": []})
    TagPush.objects.filter(id=row.id).update(next_try_at=timezone.now() - dt.timedelta(seconds=1))
    assert _deliver(chats).done == 1
    with _client(chats.connections["a"]) as client:
        groups = [g for g in client.corp_tag_list() if g["group_name"] == "肤质"]
    assert len(groups) == 1
    assert [t["name"] for t in groups[0]["tag"]] == ["干皮"]
    assert TagGroup.objects.get(id=group.id).wecom_group_id == groups[0]["group_id"]


def test_a_push_that_keeps_failing_gives_up_after_the_last_attempt(chats: Chats) -> None:
    hq = chats.world.actor("hq")
    _faults(chats, {"rate_http_5xx": 1.0, "paths": ["/cgi-bin/externalcontact/get_corp_tag_list"]})
    tag_group_create(actor=hq, name="肤质", tags=["干皮"])
    row = TagPush.objects.get(kind=TagPush.Kind.CATALOGUE)
    TagPush.objects.filter(id=row.id).update(attempts=7)
    assert _deliver(chats).failed == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("failed", 8)
    assert "503" in row.error or "failed" in row.error


def test_marking_a_customer_marks_it_for_each_follower_and_pushes_the_tag_first(chats: Chats) -> None:
    hq = chats.world.actor("hq")
    c1 = chats.world.customers["c1"]
    group = tag_group_create(actor=hq, name="肤质", tags=["干皮"])
    tag = Tag.objects.get(group=group)
    customer_tag_add(actor=hq, customer_id=c1.id, tag_id=tag.id)
    # The mark row is delivered after the catalogue row, and would push the group itself if that had not run.
    assert _deliver(chats).done == 2
    tag.refresh_from_db()
    relations = list(c1.follow_relations.filter(status="active").values_list("guide__wecom_userid", flat=True))
    marks = _marks(chats, c1.follow_relations.first().external_userid)  # type: ignore[union-attr]
    for userid in relations:
        assert tag.wecom_tag_id in marks[userid]
    # Removing unmarks it.
    customer_tag_remove(actor=hq, customer_id=c1.id, tag_id=tag.id)
    assert _deliver(chats).done == 1
    marks = _marks(chats, c1.follow_relations.first().external_userid)  # type: ignore[union-attr]
    assert all(tag.wecom_tag_id not in ids for ids in marks.values())


def test_deleting_a_tag_deletes_the_corp_tag_and_takes_it_off_customers(chats: Chats) -> None:
    hq = chats.world.actor("hq")
    c1, c2 = chats.world.customers["c1"], chats.world.customers["c2"]
    group = tag_group_create(actor=hq, name="肤质", tags=["干皮", "油皮"])
    dry = Tag.objects.get(group=group, name="干皮")
    customer_tag_add(actor=hq, customer_id=c1.id, tag_id=dry.id)
    customer_tag_add(actor=hq, customer_id=c2.id, tag_id=dry.id)
    _deliver(chats)
    group.refresh_from_db()
    dry.refresh_from_db()
    oily = Tag.objects.get(group=group, name="油皮")
    assert tag_delete(actor=hq, tag_id=dry.id) == 2
    assert not CustomerTag.objects.filter(tag_id=dry.id).exists()
    audit = AuditLog.objects.filter(action="tag.delete").latest("id")
    assert audit.detail["customer_tags"] == 2
    # Until WeCom has deleted it, what WeCom still reports does not bring the tag back.
    tag_group_upsert_wecom(
        actor=hq,
        wecom_group_id=group.wecom_group_id,
        name="肤质",
        tags=[
            WeComTagInput(wecom_tag_id=dry.wecom_tag_id, name="干皮"),
            WeComTagInput(wecom_tag_id=oily.wecom_tag_id, name="油皮"),
        ],
    )
    assert sorted(Tag.objects.filter(group=group).values_list("name", flat=True)) == ["油皮"]
    assert _deliver(chats).done == 1
    assert _remote(chats)["肤质"] == ["油皮"]


def test_echo_of_our_own_changes_neither_duplicates_nor_reverts(chats: Chats) -> None:
    hq = chats.world.actor("hq")
    c1 = chats.world.customers["c1"]
    group = tag_group_create(actor=hq, name="肤质", tags=["干皮"])
    _deliver(chats)
    group.refresh_from_db()
    tag = Tag.objects.get(group=group)
    # siyu renames; before the push is delivered WeCom still reports the old name: siyu keeps its own.
    tag_group_update(actor=hq, group_id=group.id, name="肤质类型")
    tag_group_upsert_wecom(actor=hq, wecom_group_id=group.wecom_group_id, name="肤质")
    assert TagGroup.objects.get(id=group.id).name == "肤质类型"
    _deliver(chats)
    # The callback WeCom sends for our own change: nothing changes and nothing is audited.
    audits = AuditLog.objects.count()
    tag_group_upsert_wecom(actor=hq, wecom_group_id=group.wecom_group_id, name="肤质类型")
    assert AuditLog.objects.count() == audits
    assert TagGroup.objects.filter(tenant=chats.world.tenant_a, name__startswith="肤质").count() == 1
    # A tag removed in siyu while WeCom still shows it marked is not added back by an inbound sync in between.
    customer_tag_add(actor=hq, customer_id=c1.id, tag_id=tag.id)
    _deliver(chats)
    customer_tag_remove(actor=hq, customer_id=c1.id, tag_id=tag.id)
    counts = customer_tags_sync_wecom(actor=hq, desired={c1.id: [tag.wecom_tag_id]})
    assert (counts.added, counts.removed) == (0, 0)
    assert not CustomerTag.objects.filter(customer=c1, tag=tag).exists()
    _deliver(chats)
    counts = customer_tags_sync_wecom(actor=hq, desired={c1.id: []})
    assert (counts.added, counts.removed) == (0, 0)
    assert not CustomerTag.objects.filter(customer=c1, tag=tag, source=TagSource.WECOM).exists()


def test_no_outbox_without_a_wecom_connection(world: Any) -> None:
    hq = world.actor("hq")
    group = tag_group_create(actor=hq, name="肤质", tags=["干皮"])
    customer_tag_add(actor=hq, customer_id=world.customers["c1"].id, tag_id=Tag.objects.get(group=group).id)
    assert not TagPush.objects.exists()


def test_a_merge_marks_each_guides_relation_with_both_customers_tags_and_an_unmerge_takes_them_back(
    chats: Chats,
) -> None:
    hq = chats.world.actor("hq")
    c1, c2 = chats.world.customers["c1"], chats.world.customers["c2"]  # followed by guide1 (wmc1), guide2 (wmc2)
    group = tag_group_create(actor=hq, name="肤质", tags=["干皮", "油皮"])
    dry, oily = Tag.objects.get(group=group, name="干皮"), Tag.objects.get(group=group, name="油皮")
    customer_tag_add(actor=hq, customer_id=c1.id, tag_id=dry.id)
    customer_tag_add(actor=hq, customer_id=c2.id, tag_id=oily.id)
    _deliver(chats)
    dry.refresh_from_db()
    oily.refresh_from_db()
    assert (_marks(chats, "wmc1")["guide1"], _marks(chats, "wmc2")["guide2"]) == (
        [dry.wecom_tag_id],
        [oily.wecom_tag_id],
    )

    merge = oneid.customer_merge(actor=hq, customer_ids=[c1.id, c2.id])
    assert merge.survivor_id == c1.id
    assert _deliver(chats).done >= 1
    held = sorted(Tag.objects.filter(customer_tags__customer_id=c1.id).values_list("wecom_tag_id", flat=True))
    assert {dry.wecom_tag_id, oily.wecom_tag_id} <= set(held)
    # Each guide now sees in WeCom the tags siyu shows on the one merged customer.
    assert (_marks(chats, "wmc1")["guide1"], _marks(chats, "wmc2")["guide2"]) == (held, held)

    oneid.customer_unmerge(actor=hq, merge_id=merge.id)
    _deliver(chats)
    for external_userid, userid, customer, other_side in (("wmc1", "guide1", c1, oily), ("wmc2", "guide2", c2, dry)):
        own = sorted(Tag.objects.filter(customer_tags__customer_id=customer.id).values_list("wecom_tag_id", flat=True))
        assert other_side.wecom_tag_id not in own
        assert _marks(chats, external_userid)[userid] == own
