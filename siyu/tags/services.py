"""Writes of the tags context: tag groups, tags and tagging customers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.analytics.services import event_build, event_bulk_record, event_record
from siyu.core.errors import Conflict, PermissionDenied, ValidationFailed
from siyu.core.models import Role
from siyu.core.scopes import Actor
from siyu.core.services import audit_record
from siyu.core.validation import clean_order, clean_text
from siyu.customers.selectors import access_customer
from siyu.groups.services import group_invites_on_tags
from siyu.tags.models import CustomerTag, Tag, TagGroup, TagSource
from siyu.tags.selectors import access_tag, access_tag_group

MAX_TAG_NAME = 30  # WeCom corp tag limit


def _clean_tag_name(name: str, field: str) -> str:
    # WeCom's corp tag limit is 30 characters; the same rule keeps the two sides in step.
    return clean_text(name, field=field, max_length=MAX_TAG_NAME, required=True)


def _require_hq(actor: Actor) -> None:
    if actor.role != Role.HQ_ADMIN:
        raise PermissionDenied("only HQ can change the brand's tag catalogue")


@transaction.atomic
def tag_group_create(*, actor: Actor, name: str, order: int = 0, tags: list[str] | None = None) -> TagGroup:
    _require_hq(actor)
    name = _clean_tag_name(name, "name")
    tag_names = [_clean_tag_name(t, "tags") for t in (tags or [])]
    if len(set(tag_names)) != len(tag_names):
        raise ValidationFailed("tag names in a group must be unique", field="tags")
    if TagGroup.objects.filter(tenant_id=actor.tenant_id, name=name).exists():
        raise Conflict(f"tag group {name!r} already exists", field="name")
    order = clean_order(order)
    group = TagGroup.objects.create(tenant_id=actor.tenant_id, name=name, order=order)
    Tag.objects.bulk_create([Tag(tenant_id=actor.tenant_id, group=group, name=t) for t in tag_names])
    audit_record(actor=actor, action="tag_group.create", target_type="tag_group", target_id=group.id)
    return group


@transaction.atomic
def tag_create(*, actor: Actor, group_id: int, name: str, order: int = 0) -> Tag:
    _require_hq(actor)
    group = access_tag_group(actor=actor, group_id=group_id)
    name = _clean_tag_name(name, "name")
    if Tag.objects.filter(group=group, name=name).exists():
        raise Conflict(f"tag {name!r} already exists in this group", field="name")
    order = clean_order(order)
    tag = Tag.objects.create(tenant_id=actor.tenant_id, group=group, name=name, order=order)
    audit_record(actor=actor, action="tag.create", target_type="tag", target_id=tag.id)
    return tag


@transaction.atomic
def customer_tag_add(
    *,
    actor: Actor,
    customer_id: int,
    tag_id: int,
    source: str = TagSource.MANUAL,
    rule: str = "",
    at: dt.datetime | None = None,
) -> CustomerTag:
    """Tag a customer in the actor's scope; tagging twice keeps the first source and changes nothing."""
    if source not in TagSource.values:
        raise ValidationFailed(f"unknown tag source {source!r}", field="source")
    customer = access_customer(actor=actor, customer_id=customer_id)
    tag = access_tag(actor=actor, tag_id=tag_id)
    existing = CustomerTag.objects.filter(customer=customer, tag=tag).first()
    if existing is not None:
        return existing
    when = at or timezone.now()
    try:
        with transaction.atomic():
            row = CustomerTag.objects.create(
                tenant_id=actor.tenant_id,
                customer=customer,
                tag=tag,
                source=source,
                rule=rule,
                guide_id=actor.guide_id,
                created_at=when,
            )
    except IntegrityError:
        return CustomerTag.objects.get(customer=customer, tag=tag)
    event_record(
        tenant_id=actor.tenant_id,
        type="tag.added",
        customer_id=customer.id,
        actor_id=actor.user_id,
        occurred_at=when,
        properties={"tag_id": tag.id, "tag": tag.name, "source": source},
    )
    # Invitations to group codes by tag (群活码 rules) are decided after commit, in a job.
    group_invites_on_tags(tenant_id=actor.tenant_id, pairs=[(customer.id, tag.id)])
    return row


@transaction.atomic
def customer_tag_remove(*, actor: Actor, customer_id: int, tag_id: int) -> bool:
    customer = access_customer(actor=actor, customer_id=customer_id)
    tag = access_tag(actor=actor, tag_id=tag_id)
    deleted, _ = CustomerTag.objects.filter(customer=customer, tag=tag).delete()
    if deleted:
        event_record(
            tenant_id=actor.tenant_id,
            type="tag.removed",
            customer_id=customer.id,
            actor_id=actor.user_id,
            properties={"tag_id": tag.id, "tag": tag.name},
        )
    return bool(deleted)


# -- mirroring WeCom corp tags (标签库同步) ---------------------------------------------------------------------

MAX_ORDER = 2**31 - 1  # WeCom orders go up to 2^32 - 1; the column is a signed 32-bit integer on PostgreSQL


@dataclass(frozen=True)
class WeComTagInput:
    """One corp tag as WeCom reports it (get_corp_tag_list)."""

    wecom_tag_id: str
    name: str
    order: int = 0


@transaction.atomic
def tag_group_upsert_wecom(
    *, actor: Actor, wecom_group_id: str, name: str, order: int = 0, tags: Sequence[WeComTagInput] = ()
) -> TagGroup:
    """Mirror a WeCom corp tag group and the given tags of it, matched by WeCom id, else adopting by name.

    Idempotent: a second call with the same data changes nothing and writes no audit row. Tags not listed are
    left alone, because WeCom answers a query by tag id with only that tag of its group.
    """
    _require_hq(actor)
    name = _clean_tag_name(name, "name")
    groups = TagGroup.objects.select_for_update().filter(tenant_id=actor.tenant_id)
    # A group siyu created by hand and WeCom reported back under the same name is one group, not two.
    group = groups.filter(wecom_group_id=wecom_group_id).first() or groups.filter(name=name, wecom_group_id="").first()
    changed: list[str] = []
    if group is None:
        if groups.filter(name=name).exists():
            raise Conflict(f"tag group {name!r} is linked to another WeCom group", field="name")
        group = TagGroup.objects.create(
            tenant_id=actor.tenant_id, name=name, order=min(order, MAX_ORDER), wecom_group_id=wecom_group_id
        )
        changed.append("group created")
    else:
        updates = {"name": name, "order": min(order, MAX_ORDER), "wecom_group_id": wecom_group_id}
        dirty = [field for field, value in updates.items() if getattr(group, field) != value]
        if "name" in dirty and groups.filter(name=name).exclude(id=group.id).exists():
            raise Conflict(f"another tag group is already called {name!r}", field="name")
        for field in dirty:
            setattr(group, field, updates[field])
        if dirty:
            group.save(update_fields=dirty)
            changed.append("group " + ", ".join(dirty))
    for item in tags:
        tag_name = _clean_tag_name(item.name, "tags")
        in_group = Tag.objects.select_for_update().filter(group=group)
        tag = (
            Tag.objects.select_for_update().filter(tenant_id=actor.tenant_id, wecom_tag_id=item.wecom_tag_id).first()
            or in_group.filter(name=tag_name, wecom_tag_id="").first()
        )
        if tag is None:
            if in_group.filter(name=tag_name).exists():
                raise Conflict(f"tag {tag_name!r} is linked to another WeCom tag", field="tags")
            Tag.objects.create(
                tenant_id=actor.tenant_id,
                group=group,
                name=tag_name,
                order=min(item.order, MAX_ORDER),
                wecom_tag_id=item.wecom_tag_id,
            )
            changed.append(f"tag {item.wecom_tag_id} created")
            continue
        updates = {
            "group_id": group.id,
            "name": tag_name,
            "order": min(item.order, MAX_ORDER),
            "wecom_tag_id": item.wecom_tag_id,
        }
        dirty = [field for field, value in updates.items() if getattr(tag, field) != value]
        if dirty:
            for field in dirty:
                setattr(tag, field, updates[field])
            tag.save(update_fields=dirty)
            changed.append(f"tag {item.wecom_tag_id} " + ", ".join(dirty))
    if changed:
        audit_record(
            actor=actor,
            action="tag_group.sync_wecom",
            target_type="tag_group",
            target_id=group.id,
            detail={"wecom_group_id": wecom_group_id, "changes": changed},
        )
    return group


@transaction.atomic
def tag_delete_wecom(*, actor: Actor, wecom_tag_id: str) -> bool:
    """Remove the tag mirroring a deleted WeCom corp tag (and its taggings); False when there is none.

    No per-customer tag.removed events: the tag left the catalogue, the audit row records how many it carried.
    """
    _require_hq(actor)
    tag = Tag.objects.filter(tenant_id=actor.tenant_id, wecom_tag_id=wecom_tag_id).first()
    if tag is None:
        return False
    tag_id = tag.id
    carried = CustomerTag.objects.filter(tag=tag).count()
    tag.delete()
    audit_record(
        actor=actor,
        action="tag.delete_wecom",
        target_type="tag",
        target_id=tag_id,
        detail={"wecom_tag_id": wecom_tag_id, "name": tag.name, "customer_tags": carried},
    )
    return True


@transaction.atomic
def tag_group_delete_wecom(*, actor: Actor, wecom_group_id: str) -> bool:
    """Remove the group mirroring a deleted WeCom tag group, with its tags; False when there is none."""
    _require_hq(actor)
    group = TagGroup.objects.filter(tenant_id=actor.tenant_id, wecom_group_id=wecom_group_id).first()
    if group is None:
        return False
    group_id = group.id
    carried = CustomerTag.objects.filter(tag__group=group).count()
    group.delete()
    audit_record(
        actor=actor,
        action="tag_group.delete_wecom",
        target_type="tag_group",
        target_id=group_id,
        detail={"wecom_group_id": wecom_group_id, "name": group.name, "customer_tags": carried},
    )
    return True


@dataclass
class TagSyncCounts:
    added: int = 0
    removed: int = 0


@transaction.atomic
def customer_tags_sync_wecom(
    *,
    actor: Actor,
    desired: Mapping[int, Collection[str]],
    add_only: Collection[int] = (),
    at: dt.datetime | None = None,
) -> TagSyncCounts:
    """Make the WeCom-applied tags of these customers what WeCom shows: `desired` maps a customer id to the
    WeCom corp tag ids its followers gave it (the union over followers: siyu has one tag set per customer).

    Adds the missing ones (source wecom, with tag.added events); removes tags that came from WeCom and no
    follower carries any more (tag.removed), except for the customers in `add_only`, some of whose followers
    the caller did not read (their tags may still be there). Tags siyu applied itself (manual, rules, channels)
    are never removed here, and WeCom ids siyu has no tag for are skipped. Idempotent; 500 customers a query.
    """
    _require_hq(actor)
    counts = TagSyncCounts()
    when = at or timezone.now()
    wecom_ids = {w for ids in desired.values() for w in ids}
    tags = {t.wecom_tag_id: t for t in Tag.objects.filter(tenant_id=actor.tenant_id, wecom_tag_id__in=wecom_ids)}
    customer_ids = sorted(desired)
    partial = set(add_only)
    new_rows: list[CustomerTag] = []
    stale: list[tuple[int, int, int]] = []  # (customer tag id, customer id, tag id)
    stale_tags: dict[int, Tag] = {}
    for start in range(0, len(customer_ids), 500):
        chunk = customer_ids[start : start + 500]
        # Plain tuples, not models: a brand-wide sync reads tens of thousands of these.
        have: dict[int, dict[int, tuple[int, str, str]]] = {c: {} for c in chunk}
        rows = CustomerTag.objects.filter(tenant_id=actor.tenant_id, customer_id__in=chunk)
        for row_id, customer_id, tag_id, source, wecom_tag_id in rows.values_list(
            "id", "customer_id", "tag_id", "source", "tag__wecom_tag_id"
        ):
            have[customer_id][tag_id] = (row_id, source, wecom_tag_id)
        for customer_id in chunk:
            want = {tags[w].id: tags[w] for w in desired[customer_id] if w in tags}
            current = have[customer_id]
            new_rows += [
                CustomerTag(
                    tenant_id=actor.tenant_id,
                    customer_id=customer_id,
                    tag=tag,
                    source=TagSource.WECOM,
                    created_at=when,
                )
                for tag_id, tag in sorted(want.items())
                if tag_id not in current
            ]
            if customer_id in partial:
                continue
            stale += [
                (row_id, customer_id, tag_id)
                for tag_id, (row_id, source, wecom_tag_id) in current.items()
                if tag_id not in want and source == TagSource.WECOM and wecom_tag_id
            ]
    if stale:
        stale_tags = Tag.objects.in_bulk({tag_id for _, _, tag_id in stale})
    CustomerTag.objects.bulk_create(new_rows, ignore_conflicts=True)
    group_invites_on_tags(tenant_id=actor.tenant_id, pairs=[(row.customer_id, row.tag.id) for row in new_rows])
    CustomerTag.objects.filter(id__in=[row_id for row_id, _, _ in stale]).delete()
    events = [
        event_build(
            tenant_id=actor.tenant_id,
            type="tag.added",
            customer_id=row.customer_id,
            occurred_at=when,
            properties={"tag_id": row.tag.id, "tag": row.tag.name, "source": TagSource.WECOM},
        )
        for row in new_rows
    ]
    events += [
        event_build(
            tenant_id=actor.tenant_id,
            type="tag.removed",
            customer_id=customer_id,
            occurred_at=when,
            properties={"tag_id": tag_id, "tag": stale_tags[tag_id].name, "source": TagSource.WECOM},
        )
        for _, customer_id, tag_id in stale
    ]
    event_bulk_record(events=events)
    counts.added, counts.removed = len(new_rows), len(stale)
    if new_rows or stale:
        audit_record(
            actor=actor,
            action="customer_tag.sync_wecom",
            target_type="customer_tag",
            detail={"added": counts.added, "removed": counts.removed, "customers": len(desired)},
        )
    return counts
