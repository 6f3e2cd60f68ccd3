"""siyu → WeCom tag push (标签推送): the outbox of tag changes and the job that delivers them.

Services write `TagPush` rows in the transaction of the change (`push_catalogue`, `push_delete`, `push_marks`) and
enqueue one drain job per brand after commit; `tag_pushes_deliver` claims due rows one by one (a conditional UPDATE,
so two drains never deliver one row twice), calls WeCom through siyu.wecom's client and stores WeCom's ids back.
WeCom errors put the row back with an exponential backoff; `tag_pushes_due` (the worker's sweep) picks up rows whose
time has come or whose job was lost. Delivery is idempotent: a group or tag without a WeCom id is first looked up
by name in WeCom, so a retry after a timeout that did create it never creates a second corp tag; mark_tag is
idempotent by itself.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from siyu.core.jobs import enqueue_on_commit
from siyu.customers.models import FollowRelation
from siyu.tags.models import CustomerTag, Tag, TagGroup, TagPush
from siyu.wecom.client import CorpTagGroup, WeComClient
from siyu.wecom.errors import WeComAPIError
from siyu.wecom.models import WeComConnection
from siyu.wecom.selectors import connection_client, connection_for_tenant

logger = logging.getLogger(__name__)

ClientFactory = Callable[[WeComConnection], WeComClient]

MAX_ATTEMPTS = 8  # 30 s doubling: the last try is about an hour after the first
BACKOFF = dt.timedelta(seconds=30)
LEASE = dt.timedelta(minutes=5)  # a claimed row is not due again meanwhile; a drain that dies is retried after it
MARK_BATCH = 100  # mark_tag takes one member and one customer; bulk rows are written this many per INSERT
INVALID_TAG_ID = 40068  # del_corp_tag of a tag WeCom no longer has: the deletion is already done


def _connected(tenant_id: int) -> bool:
    return connection_for_tenant(tenant_id=tenant_id) is not None


def _drain_after_commit(tenant_id: int) -> None:
    from siyu.tags.tasks import tag_pushes_run  # tasks import services, which import this module

    enqueue_on_commit(tag_pushes_run, tenant_id)


def push_catalogue(*, tenant_id: int, group_id: int) -> TagPush | None:
    """Outbox a tag group (its name, order and tags) for WeCom; nothing when the brand has no WeCom connected.

    One pending row per group is enough: delivery pushes the group as it is then.
    """
    if not _connected(tenant_id):
        return None
    pending = TagPush.objects.filter(
        tenant_id=tenant_id, kind=TagPush.Kind.CATALOGUE, group_id=group_id, status=TagPush.Status.PENDING
    ).first()
    if pending is not None:
        return pending
    row = TagPush.objects.create(
        tenant_id=tenant_id, kind=TagPush.Kind.CATALOGUE, group_id=group_id, next_try_at=timezone.now()
    )
    _drain_after_commit(tenant_id)
    return row


def push_delete(*, tenant_id: int, wecom_group_ids: Collection[str] = (), wecom_tag_ids: Collection[str] = ()) -> None:
    """Outbox the deletion of corp tags/groups siyu had pushed or mirrored (those without a WeCom id never left)."""
    groups, tags = sorted(i for i in wecom_group_ids if i), sorted(i for i in wecom_tag_ids if i)
    if not (groups or tags) or not _connected(tenant_id):
        return
    TagPush.objects.create(
        tenant_id=tenant_id,
        kind=TagPush.Kind.DELETE,
        wecom_group_ids=groups,
        wecom_tag_ids=tags,
        next_try_at=timezone.now(),
    )
    _drain_after_commit(tenant_id)


def push_marks(
    *,
    tenant_id: int,
    add: Mapping[int, Collection[int]] | None = None,
    remove: Mapping[int, Collection[int]] | None = None,
) -> int:
    """Outbox marking tags on customers in WeCom: `add` and `remove` map a customer id to siyu tag ids.

    Removals are recorded by WeCom id (the tag itself may be deleted before delivery); tags never pushed have none
    and are skipped. Set-based: one query for the WeCom ids and bulk inserts, for the rule runs' thousands.
    Returns how many rows were written.
    """
    add, remove = add or {}, remove or {}
    if not (add or remove) or not _connected(tenant_id):
        return 0
    removed_tags = {t for ids in remove.values() for t in ids}
    wecom_ids = dict(
        Tag.objects.filter(tenant_id=tenant_id, id__in=removed_tags)
        .exclude(wecom_tag_id="")
        .values_list("id", "wecom_tag_id")
    )
    now = timezone.now()
    rows = []
    for customer_id in sorted(set(add) | set(remove)):
        adding = sorted(set(add.get(customer_id, ())))
        unmarking = sorted({wecom_ids[t] for t in remove.get(customer_id, ()) if t in wecom_ids})
        if adding or unmarking:
            rows.append(
                TagPush(
                    tenant_id=tenant_id,
                    kind=TagPush.Kind.MARK,
                    customer_id=customer_id,
                    add_tag_ids=adding,
                    remove_wecom_ids=unmarking,
                    next_try_at=now,
                )
            )
    TagPush.objects.bulk_create(rows, batch_size=1000)
    if rows:
        _drain_after_commit(tenant_id)
    return len(rows)


def pending_group_ids(*, tenant_id: int) -> set[int]:
    """Groups whose siyu change WeCom has not received yet (inbound sync leaves them alone meanwhile)."""
    return set(
        TagPush.objects.filter(
            tenant_id=tenant_id, kind=TagPush.Kind.CATALOGUE, status=TagPush.Status.PENDING, group_id__isnull=False
        ).values_list("group_id", flat=True)
    )


def pending_deletions(*, tenant_id: int) -> tuple[set[str], set[str]]:
    """WeCom group and tag ids siyu deleted and WeCom has not deleted yet (inbound sync must not bring them back)."""
    groups: set[str] = set()
    tags: set[str] = set()
    rows = TagPush.objects.filter(tenant_id=tenant_id, kind=TagPush.Kind.DELETE, status=TagPush.Status.PENDING)
    for group_ids, tag_ids in rows.values_list("wecom_group_ids", "wecom_tag_ids"):
        groups.update(group_ids)
        tags.update(tag_ids)
    return groups, tags


def pending_mark_customer_ids(*, tenant_id: int, customer_ids: Iterable[int] | None = None) -> set[int]:
    """Customers whose tag changes WeCom has not received yet (the echo guard of inbound tag sync)."""
    qs = TagPush.objects.filter(tenant_id=tenant_id, kind=TagPush.Kind.MARK, status=TagPush.Status.PENDING)
    if customer_ids is not None:
        qs = qs.filter(customer_id__in=list(customer_ids))
    return set(qs.values_list("customer_id", flat=True))


# -- delivery ------------------------------------------------------------------------------------------------------


@dataclass
class Drain:
    """What one drain of a brand's outbox did."""

    done: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _find_remote(remote: list[CorpTagGroup], group: TagGroup) -> CorpTagGroup | None:
    live = [g for g in remote if not g.get("deleted")]
    by_id = [g for g in live if group.wecom_group_id and g["group_id"] == group.wecom_group_id]
    return (by_id or [g for g in live if g["group_name"] == group.name] or [None])[0]


def _push_group(client: WeComClient, group: TagGroup) -> None:
    """Make WeCom's corp tag group match `group`: create what is missing (looked up by name first, so a retry does
    not create twice), rename and reorder what differs, and store WeCom's ids on the siyu rows."""
    tags = list(Tag.objects.filter(group=group).order_by("id"))
    if not tags:
        return  # WeCom has no empty groups: the group goes out with its first tag
    remote = _find_remote(client.corp_tag_list(), group)
    if remote is None:
        remote = client.corp_tag_add(
            group_name=group.name,
            order=group.order,
            tags=[{"name": t.name, "order": t.order} for t in tags],
        )
    elif remote["group_name"] != group.name or remote.get("order", group.order) != group.order:
        client.corp_tag_edit(id=remote["group_id"], name=group.name, order=group.order)
    if group.wecom_group_id != remote["group_id"]:
        TagGroup.objects.filter(id=group.id).update(wecom_group_id=remote["group_id"])
    remote_tags = [t for t in remote.get("tag", []) if not t.get("deleted")]
    missing: list[Tag] = []
    for tag in tags:
        match = [r for r in remote_tags if tag.wecom_tag_id and r["id"] == tag.wecom_tag_id] or [
            r for r in remote_tags if r["name"] == tag.name
        ]
        if not match:
            missing.append(tag)
            continue
        found = match[0]
        if found["name"] != tag.name or found.get("order", tag.order) != tag.order:
            client.corp_tag_edit(id=found["id"], name=tag.name, order=tag.order)
        if tag.wecom_tag_id != found["id"]:
            Tag.objects.filter(id=tag.id).update(wecom_tag_id=found["id"])
    if missing:
        added = client.corp_tag_add(
            group_id=remote["group_id"], tags=[{"name": t.name, "order": t.order} for t in missing]
        )
        by_name = {t["name"]: t["id"] for t in added.get("tag", [])}
        for tag in missing:
            if tag.name in by_name:
                Tag.objects.filter(id=tag.id).update(wecom_tag_id=by_name[tag.name])


def _deliver(client: WeComClient, row: TagPush) -> None:
    if row.kind == TagPush.Kind.CATALOGUE:
        group = TagGroup.objects.filter(id=row.group_id).first() if row.group_id else None
        if group is not None:  # deleted meanwhile: its deletion row follows
            _push_group(client, group)
    elif row.kind == TagPush.Kind.DELETE:
        try:
            client.corp_tag_delete(tag_ids=row.wecom_tag_ids, group_ids=row.wecom_group_ids)
        except WeComAPIError as exc:
            if exc.errcode != INVALID_TAG_ID:
                raise
            # Some are gone already (deleted in WeCom's admin, or by an earlier try): delete the rest one by one.
            for kind, ids in (("group_ids", row.wecom_group_ids), ("tag_ids", row.wecom_tag_ids)):
                for wecom_id in ids:
                    try:
                        client.corp_tag_delete(**{kind: [wecom_id]})
                    except WeComAPIError as inner:
                        if inner.errcode != INVALID_TAG_ID:
                            raise
    elif row.kind == TagPush.Kind.MARK:
        _deliver_mark(client, row)


def _deliver_mark(client: WeComClient, row: TagPush) -> None:
    tags = list(Tag.objects.filter(tenant_id=row.tenant_id, id__in=row.add_tag_ids).select_related("group"))
    for group in {t.group_id: t.group for t in tags if not t.wecom_tag_id}.values():
        _push_group(client, group)  # tags not yet in WeCom go there first
    add = sorted(
        Tag.objects.filter(id__in=[t.id for t in tags]).exclude(wecom_tag_id="").values_list("wecom_tag_id", flat=True)
    )
    remove = [w for w in row.remove_wecom_ids if w not in add]
    if not (add or remove):
        return
    relations = FollowRelation.objects.filter(
        tenant_id=row.tenant_id, customer_id=row.customer_id, status=FollowRelation.Status.ACTIVE
    ).select_related("guide")
    for relation in relations.order_by("id"):
        if not relation.guide.wecom_userid:
            continue
        client.mark_tag(
            userid=relation.guide.wecom_userid,
            external_userid=relation.external_userid,
            add_tag=add,
            remove_tag=remove,
        )


def _claim(row_id: int, now: dt.datetime) -> bool:
    claimed = TagPush.objects.filter(id=row_id, status=TagPush.Status.PENDING, next_try_at__lte=now).update(
        next_try_at=now + LEASE, attempts=F("attempts") + 1
    )
    return claimed == 1


def tag_pushes_deliver(*, tenant_id: int, client_factory: ClientFactory | None = None, limit: int = 10_000) -> Drain:
    """Deliver the brand's due outbox rows in order (a group before the marks of its tags); see the module doc."""
    result = Drain()
    connection = connection_for_tenant(tenant_id=tenant_id)
    if connection is None:
        return result  # disconnected: rows wait; a brand that reconnects gets them delivered
    now = timezone.now()
    due = list(
        TagPush.objects.filter(tenant_id=tenant_id, status=TagPush.Status.PENDING, next_try_at__lte=now)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    if not due:
        return result
    with (client_factory or connection_client)(connection) as client:
        for row_id in due:
            if not _claim(row_id, timezone.now()):
                continue  # another drain has it
            row = TagPush.objects.get(id=row_id)
            try:
                _deliver(client, row)
            except WeComAPIError as exc:
                failed = row.attempts >= MAX_ATTEMPTS
                TagPush.objects.filter(id=row.id).update(
                    status=TagPush.Status.FAILED if failed else TagPush.Status.PENDING,
                    next_try_at=timezone.now() + BACKOFF * 2 ** (row.attempts - 1),
                    error=str(exc)[:2000],
                )
                result.errors.append(str(exc))
                if failed:
                    result.failed += 1
                else:
                    result.retried += 1
                logger.warning("tag push %s failed (attempt %s): %s", row.id, row.attempts, exc)
                continue
            TagPush.objects.filter(id=row.id).update(status=TagPush.Status.DONE, done_at=timezone.now(), error="")
            result.done += 1
    return result


def tag_pushes_due() -> int:
    """Enqueue a drain for every brand with outbox rows whose time has come (the worker's sweep calls it)."""
    from siyu.tags.tasks import tag_pushes_run

    tenants = set(
        TagPush.objects.filter(status=TagPush.Status.PENDING, next_try_at__lte=timezone.now())
        .values_list("tenant_id", flat=True)
        .distinct()
        .order_by()
    )
    with transaction.atomic():
        for tenant_id in sorted(tenants):
            enqueue_on_commit(tag_pushes_run, tenant_id)
    return len(tenants)


# -- merges (OneID) ------------------------------------------------------------------------------------------------


def _tag_ids(tenant_id: int, customer_id: int) -> set[int]:
    return set(
        CustomerTag.objects.filter(tenant_id=tenant_id, customer_id=customer_id).values_list("tag_id", flat=True)
    )


def marks_after_merge(*, tenant_id: int, survivor_id: int, merged_id: int) -> int:
    """After a merge the survivor holds both customers' tags and both customers' follow relations: every active
    relation is marked with all of them, so each guide sees in WeCom what siyu shows (mark_tag ignores a tag the
    relation already has)."""
    tags = _tag_ids(tenant_id, survivor_id)
    return push_marks(tenant_id=tenant_id, add={survivor_id: tags}) if tags else 0


def marks_after_unmerge(*, tenant_id: int, survivor_id: int, merged_id: int) -> int:
    """After an unmerge each side has its own tags and relations again: WeCom follows, each side's relations
    losing the tags only the other side holds."""
    survivor, merged = _tag_ids(tenant_id, survivor_id), _tag_ids(tenant_id, merged_id)
    return push_marks(
        tenant_id=tenant_id,
        add={survivor_id: survivor, merged_id: merged},
        remove={survivor_id: merged - survivor, merged_id: survivor - merged},
    )
