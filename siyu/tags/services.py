"""Writes of the tags context: tag groups, tags and tagging customers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from siyu.analytics.services import event_build, event_bulk_record, event_record
from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.core.jobs import enqueue_on_commit
from siyu.core.models import Role
from siyu.core.scopes import Actor
from siyu.core.services import audit_record
from siyu.core.validation import clean_order, clean_text
from siyu.customers.models import Identity
from siyu.customers.selectors import access_customer, customer_ids_by_identity
from siyu.groups.services import group_invites_on_tags
from siyu.tags import keywords as matching
from siyu.tags import push
from siyu.tags.models import ChatArchiveCursor, CustomerTag, KeywordRule, Tag, TagGroup, TagSource
from siyu.tags.selectors import (
    access_keyword_rule,
    access_tag,
    access_tag_group,
    keyword_rule_specs,
    require_keyword_admin,
)
from siyu.wecom.archive import MAX_PAGE as MAX_ARCHIVE_PAGE
from siyu.wecom.archive import ArchiveMessage, archive_base_url, archive_client
from siyu.wecom.errors import WeComAPIError
from siyu.wecom.selectors import connection_for_tenant

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
    push.push_catalogue(tenant_id=actor.tenant_id, group_id=group.id)
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
    push.push_catalogue(tenant_id=actor.tenant_id, group_id=group.id)
    return tag


def _rename_or_reorder(
    *,
    actor: Actor,
    row: TagGroup | Tag,
    name: str | None,
    order: int | None,
    siblings: QuerySet[Any],
    taken: str,
    action: str,
    group_id: int,
) -> None:
    """The shared edit of a tag group or a tag: clean, skip when nothing changes, keep names unique among
    `siblings` (409 `taken`, formatted with the name, also for a concurrent rename), save, audit, push to WeCom."""
    updates: dict[str, object] = {}
    if name is not None:
        updates["name"] = _clean_tag_name(name, "name")
    if order is not None:
        updates["order"] = clean_order(order)
    dirty = [k for k, v in updates.items() if getattr(row, k) != v]
    if not dirty:
        return
    if "name" in dirty and siblings.filter(name=updates["name"]).exists():
        raise Conflict(taken.format(name=updates["name"]), field="name")
    before = {k: getattr(row, k) for k in dirty}
    for k in dirty:
        setattr(row, k, updates[k])
    try:
        with transaction.atomic():
            row.save(update_fields=dirty)
    except IntegrityError as exc:  # a concurrent rename to the same name
        raise Conflict(taken.format(name=row.name), field="name") from exc
    audit_record(
        actor=actor,
        action=action,
        target_type=action.split(".")[0],
        target_id=row.id,
        detail={"before": before, "after": {k: updates[k] for k in dirty}},
    )
    push.push_catalogue(tenant_id=actor.tenant_id, group_id=group_id)


@transaction.atomic
def tag_group_update(*, actor: Actor, group_id: int, name: str | None = None, order: int | None = None) -> TagGroup:
    """Rename or reorder a tag group (标签组) (HQ only); WeCom follows through the outbox."""
    _require_hq(actor)
    group = access_tag_group(actor=actor, group_id=group_id)
    _rename_or_reorder(
        actor=actor,
        row=group,
        name=name,
        order=order,
        siblings=TagGroup.objects.filter(tenant_id=actor.tenant_id),
        taken="tag group {name!r} already exists",
        action="tag_group.update",
        group_id=group.id,
    )
    return group


@transaction.atomic
def tag_group_delete(*, actor: Actor, group_id: int) -> int:
    """Delete a tag group with its tags (HQ only), taking them off every customer; returns how many customer tags
    went (audited). WeCom deletes the corp group through the outbox."""
    _require_hq(actor)
    group = access_tag_group(actor=actor, group_id=group_id)
    carried = CustomerTag.objects.filter(tenant_id=actor.tenant_id, tag__group=group).count()
    orphan_tag_ids = (
        []
        if group.wecom_group_id
        else list(Tag.objects.filter(group=group).exclude(wecom_tag_id="").values_list("wecom_tag_id", flat=True))
    )
    detail = {"name": group.name, "customer_tags": carried, "wecom_group_id": group.wecom_group_id}
    push.push_delete(tenant_id=actor.tenant_id, wecom_group_ids=[group.wecom_group_id], wecom_tag_ids=orphan_tag_ids)
    group.delete()
    audit_record(actor=actor, action="tag_group.delete", target_type="tag_group", target_id=group_id, detail=detail)
    return carried


@transaction.atomic
def tag_update(*, actor: Actor, tag_id: int, name: str | None = None, order: int | None = None) -> Tag:
    """Rename or reorder a tag (HQ only); names stay unique in the group. WeCom follows through the outbox."""
    _require_hq(actor)
    tag = access_tag(actor=actor, tag_id=tag_id)
    _rename_or_reorder(
        actor=actor,
        row=tag,
        name=name,
        order=order,
        siblings=Tag.objects.filter(group_id=tag.group_id),
        taken="tag {name!r} already exists in this group",
        action="tag.update",
        group_id=tag.group_id,
    )
    return tag


@transaction.atomic
def tag_delete(*, actor: Actor, tag_id: int) -> int:
    """Delete a tag (HQ only), taking it off every customer; returns how many customers had it (audited).
    WeCom deletes the corp tag through the outbox (and with it the marks on the customers)."""
    _require_hq(actor)
    tag = access_tag(actor=actor, tag_id=tag_id)
    carried = CustomerTag.objects.filter(tenant_id=actor.tenant_id, tag=tag).count()
    detail = {"name": tag.name, "group_id": tag.group_id, "customer_tags": carried, "wecom_tag_id": tag.wecom_tag_id}
    push.push_delete(tenant_id=actor.tenant_id, wecom_tag_ids=[tag.wecom_tag_id])
    tag.delete()
    audit_record(actor=actor, action="tag.delete", target_type="tag", target_id=tag_id, detail=detail)
    return carried


# Tags WeCom already carries: those it reported, and a channel code's, which siyu.channels marks on the add itself.
NOT_MARKED = frozenset({TagSource.WECOM, TagSource.CHANNEL})


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
    properties = {"tag_id": tag.id, "tag": tag.name, "source": source}
    if rule:
        properties["rule"] = rule
    event_record(
        tenant_id=actor.tenant_id,
        type="tag.added",
        customer_id=customer.id,
        actor_id=actor.user_id,
        occurred_at=when,
        properties=properties,
    )
    # Invitations to group codes by tag (群活码 rules) are decided after commit, in a job.
    group_invites_on_tags(tenant_id=actor.tenant_id, pairs=[(customer.id, tag.id)])
    if source not in NOT_MARKED:
        push.push_marks(tenant_id=actor.tenant_id, add={customer.id: [tag.id]})
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
        push.push_marks(tenant_id=actor.tenant_id, remove={customer.id: [tag.id]})
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
) -> TagGroup | None:
    """Mirror a WeCom corp tag group and the given tags of it, matched by WeCom id, else adopting by name.

    Idempotent: a second call with the same data changes nothing and writes no audit row. Tags not listed are
    left alone, because WeCom answers a query by tag id with only that tag of its group.
    """
    _require_hq(actor)
    name = _clean_tag_name(name, "name")
    # Echo guard: what siyu deleted and WeCom has not deleted yet is not brought back (None: nothing mirrored).
    gone_groups, gone_tags = push.pending_deletions(tenant_id=actor.tenant_id)
    if wecom_group_id in gone_groups:
        return None
    tags = [t for t in tags if t.wecom_tag_id not in gone_tags]
    groups = TagGroup.objects.select_for_update().filter(tenant_id=actor.tenant_id)
    # A group siyu created by hand and WeCom reported back under the same name is one group, not two.
    group = groups.filter(wecom_group_id=wecom_group_id).first() or groups.filter(name=name, wecom_group_id="").first()
    changed: list[str] = []
    if group is not None and group.id in push.pending_group_ids(tenant_id=actor.tenant_id):
        # Echo guard: siyu changed this group and WeCom has not received it yet, so what WeCom reports is older
        # than siyu's; the pending push will make them agree (and link WeCom's ids).
        return group
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
    # Echo guard: customers whose siyu tag changes WeCom has not received yet are left as they are (WeCom's view of
    # them is older); once the marks are delivered, WeCom reports what siyu has and nothing flaps.
    in_flight = push.pending_mark_customer_ids(tenant_id=actor.tenant_id, customer_ids=desired)
    customer_ids = sorted(c for c in desired if c not in in_flight)
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


# -- chat keyword rules (关键词打标) --------------------------------------------------------------------------------

MAX_RULE_NAME = 50
MAX_RULE_TAGS = 20


def _clean_words(words: Sequence[str], *, field: str, required: bool) -> list[str]:
    """Stripped words in the given order, without duplicates (after folding: "SPF" and "ｓｐｆ" are one)."""
    if isinstance(words, str) or not isinstance(words, Sequence):
        raise ValidationFailed(f"{field} must be a list of words", field=field)
    if required and not words:
        raise ValidationFailed(f"a rule needs at least one keyword in {field}", field=field)
    if len(words) > matching.MAX_WORDS:
        raise ValidationFailed(f"a rule takes at most {matching.MAX_WORDS} words in {field}", field=field)
    cleaned: dict[str, str] = {}
    for word in words:
        text = clean_text(word, field=field, max_length=matching.MAX_KEYWORD, required=True)
        folded = matching.fold(text).strip()
        if not folded:
            raise ValidationFailed(f"{field} has a word with nothing to match: {text!r}", field=field)
        cleaned.setdefault(folded, text)
    return list(cleaned.values())


@dataclass(frozen=True)
class _RuleFields:
    name: str
    keywords: list[str]
    exclusions: list[str]
    mode: str
    scope: str
    customer_only: bool
    enabled: bool
    tags: list[Tag]


def _rule_fields(
    actor: Actor,
    *,
    rule_id: int | None,
    name: str,
    keywords: Sequence[str],
    tag_ids: Sequence[int],
    exclusions: Sequence[str],
    mode: str,
    scope: str,
    customer_only: bool,
    enabled: bool,
) -> _RuleFields:
    name = clean_text(name, field="name", max_length=MAX_RULE_NAME, required=True)
    if mode not in KeywordRule.Mode.values:
        raise ValidationFailed(f"unknown match mode {mode!r}", field="mode")
    if scope not in KeywordRule.Scope.values:
        raise ValidationFailed(f"unknown chat scope {scope!r}", field="scope")
    words = _clean_words(keywords, field="keywords", required=True)
    vetoes = _clean_words(exclusions, field="exclusions", required=False)
    both = {matching.fold(w).strip() for w in words} & {matching.fold(w).strip() for w in vetoes}
    if both:
        raise Conflict(f"{sorted(both)[0]!r} is both a keyword and an exclusion", field="exclusions")
    if isinstance(tag_ids, str) or not tag_ids:
        raise ValidationFailed("a rule applies at least one tag", field="tag_ids")
    wanted = list(dict.fromkeys(tag_ids))
    if len(wanted) > MAX_RULE_TAGS:
        raise ValidationFailed(f"a rule applies at most {MAX_RULE_TAGS} tags", field="tag_ids")
    found = {t.id: t for t in Tag.objects.filter(tenant_id=actor.tenant_id, id__in=wanted)}
    missing = [t for t in wanted if t not in found]
    if missing:
        raise NotFound(f"tag {missing[0]} not found", field="tag_ids")
    others = KeywordRule.objects.filter(tenant_id=actor.tenant_id, name=name)
    if rule_id is not None:
        others = others.exclude(id=rule_id)
    if others.exists():
        raise Conflict(f"a keyword rule is already called {name!r}", field="name")
    return _RuleFields(
        name=name,
        keywords=words,
        exclusions=vetoes,
        mode=mode,
        scope=scope,
        customer_only=bool(customer_only),
        enabled=bool(enabled),
        tags=[found[t] for t in wanted],
    )


def _rule_detail(rule: KeywordRule, fields: _RuleFields) -> dict[str, object]:
    return {
        "name": fields.name,
        "keywords": len(fields.keywords),
        "exclusions": len(fields.exclusions),
        "mode": fields.mode,
        "scope": fields.scope,
        "customer_only": fields.customer_only,
        "enabled": fields.enabled,
        "tag_ids": [t.id for t in fields.tags],
    }


@transaction.atomic
def keyword_rule_create(
    *,
    actor: Actor,
    name: str,
    keywords: Sequence[str],
    tag_ids: Sequence[int],
    exclusions: Sequence[str] = (),
    mode: str = KeywordRule.Mode.ANY,
    scope: str = KeywordRule.Scope.BOTH,
    customer_only: bool = True,
    enabled: bool = True,
) -> KeywordRule:
    """A new chat keyword rule (HQ only); the next archive pull applies it."""
    require_keyword_admin(actor)
    fields = _rule_fields(
        actor,
        rule_id=None,
        name=name,
        keywords=keywords,
        tag_ids=tag_ids,
        exclusions=exclusions,
        mode=mode,
        scope=scope,
        customer_only=customer_only,
        enabled=enabled,
    )
    try:
        with transaction.atomic():
            rule = KeywordRule.objects.create(
                tenant_id=actor.tenant_id,
                name=fields.name,
                keywords=fields.keywords,
                exclusions=fields.exclusions,
                mode=fields.mode,
                scope=fields.scope,
                customer_only=fields.customer_only,
                enabled=fields.enabled,
            )
    except IntegrityError as exc:  # a concurrent create under the same name
        raise Conflict(f"a keyword rule is already called {fields.name!r}", field="name") from exc
    rule.tags.set(fields.tags)
    audit_record(
        actor=actor,
        action="keyword_rule.create",
        target_type="keyword_rule",
        target_id=rule.id,
        detail=_rule_detail(rule, fields),
    )
    return rule


@transaction.atomic
def keyword_rule_update(
    *,
    actor: Actor,
    rule_id: int,
    name: str | None = None,
    keywords: Sequence[str] | None = None,
    tag_ids: Sequence[int] | None = None,
    exclusions: Sequence[str] | None = None,
    mode: str | None = None,
    scope: str | None = None,
    customer_only: bool | None = None,
    enabled: bool | None = None,
) -> KeywordRule:
    """Change a rule (HQ only): the fields given, the others as they are. Tags already applied stay."""
    rule = access_keyword_rule(actor=actor, rule_id=rule_id, for_update=True)
    fields = _rule_fields(
        actor,
        rule_id=rule.id,
        name=rule.name if name is None else name,
        keywords=rule.keywords if keywords is None else keywords,
        tag_ids=list(rule.tags.values_list("id", flat=True)) if tag_ids is None else tag_ids,
        exclusions=rule.exclusions if exclusions is None else exclusions,
        mode=rule.mode if mode is None else mode,
        scope=rule.scope if scope is None else scope,
        customer_only=rule.customer_only if customer_only is None else customer_only,
        enabled=rule.enabled if enabled is None else enabled,
    )
    before = {
        "name": rule.name,
        "keywords": rule.keywords,
        "exclusions": rule.exclusions,
        "mode": rule.mode,
        "scope": rule.scope,
        "customer_only": rule.customer_only,
        "enabled": rule.enabled,
        "tag_ids": sorted(rule.tags.values_list("id", flat=True)),
    }
    after = {
        "name": fields.name,
        "keywords": fields.keywords,
        "exclusions": fields.exclusions,
        "mode": fields.mode,
        "scope": fields.scope,
        "customer_only": fields.customer_only,
        "enabled": fields.enabled,
        "tag_ids": sorted(t.id for t in fields.tags),
    }
    changed = sorted(k for k in after if after[k] != before[k])
    if not changed:
        return rule
    for key in ("name", "keywords", "exclusions", "mode", "scope", "customer_only", "enabled"):
        setattr(rule, key, after[key])
    rule.save()
    if "tag_ids" in changed:
        rule.tags.set(fields.tags)
    audit_record(
        actor=actor,
        action="keyword_rule.update",
        target_type="keyword_rule",
        target_id=rule.id,
        detail={"changed": changed, **_rule_detail(rule, fields)},
    )
    return access_keyword_rule(actor=actor, rule_id=rule.id)


@transaction.atomic
def keyword_rule_delete(*, actor: Actor, rule_id: int) -> None:
    """Remove a rule (HQ only); the tags it applied stay on the customers, with their source and rule."""
    rule = access_keyword_rule(actor=actor, rule_id=rule_id, for_update=True)
    name = rule.name
    rule.delete()
    audit_record(
        actor=actor, action="keyword_rule.delete", target_type="keyword_rule", target_id=rule_id, detail={"name": name}
    )


# -- reading the session archive and tagging on keywords --------------------------------------------------------


@dataclass
class ArchivePull:
    """What one pull of a brand's session archive did."""

    status: str  # "done", "failed", "not_connected" or "no_archive"
    seq: int = 0  # where the cursor stands
    pages: int = 0
    messages: int = 0
    matched: int = 0
    tagged: int = 0
    error: str = ""


def _at(msgtime: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(msgtime / 1000, tz=dt.UTC) if msgtime > 0 else timezone.now()


def _tag_messages(tenant_id: int, matcher: matching.Matcher, messages: Sequence[ArchiveMessage]) -> tuple[int, int]:
    """Match a page of messages and tag the customers who said the words; returns (messages matched, tags applied).

    A rule's tags go to the customer who sent the message, or, for a rule that is not customer-only, to the customer
    a member wrote to in a one-to-one chat. Senders siyu does not know as customers are skipped.
    """
    if not matcher.rules:
        return 0, 0
    # Matching first: most messages match nothing, and only the people of those that do are looked up.
    said = [(m, rules) for m in messages if m.is_text for rules in (matcher.match(m.content),) if rules]
    if not said:
        return 0, 0
    actor = Actor.system(tenant_id)
    guide_words = any(not r.customer_only for r in matcher.rules)
    people = {m.sender for m, _ in said} | {m.tolist[0] for m, _ in said if not m.roomid and len(m.tolist) == 1}
    customers = customer_ids_by_identity(actor=actor, kind=Identity.Kind.WECOM_EXTERNAL_USERID, values=people)
    wanted: dict[tuple[int, int], tuple[str, int]] = {}  # (customer, tag) → (rule label, msgtime), the first message
    matched = 0
    for message, rules in said:
        group = bool(message.roomid)
        target = customers.get(message.sender)
        from_customer = target is not None
        if target is None:
            if group or not guide_words or len(message.tolist) != 1:
                continue
            target = customers.get(message.tolist[0])
            if target is None:
                continue
        hit = False
        for r in rules:
            rule = matcher.rules[r]
            if not rule.applies_to(group=group) or (rule.customer_only and not from_customer):
                continue
            hit = True
            for tag_id in rule.tag_ids:
                wanted.setdefault((target, tag_id), (f"keyword_rule:{rule.id}", message.msgtime))
        matched += hit
    if not wanted:
        return matched, 0
    have = set(
        CustomerTag.objects.filter(
            tenant_id=tenant_id,
            customer_id__in={c for c, _ in wanted},
            tag_id__in={t for _, t in wanted},
        ).values_list("customer_id", "tag_id")
    )
    tagged = 0
    for (customer_id, tag_id), (label, msgtime) in sorted(wanted.items()):
        if (customer_id, tag_id) in have:
            continue  # tagged before, by this rule or any other source: recorded once
        customer_tag_add(
            actor=actor,
            customer_id=customer_id,
            tag_id=tag_id,
            source=TagSource.KEYWORD,
            rule=label,
            at=_at(msgtime),
        )
        tagged += 1
    return matched, tagged


def chat_archive_pull(
    *, tenant_id: int, page_size: int = MAX_ARCHIVE_PAGE, max_pages: int | None = None
) -> ArchivePull:
    """Read the brand's session archive from where the last pull stopped, tagging customers on keywords.

    Page by page: each page's tags and the cursor move in one transaction, so a pull that dies resumes from the last
    committed page, and tags (one per customer and tag, whatever source put it there first) are applied once however
    often a page is read. Two pulls at once do not tag twice: a page is only committed while the cursor still stands
    where it was read from. The brand's enabled rules are compiled once per pull.
    """
    connection = connection_for_tenant(tenant_id=tenant_id)
    if connection is None:
        return ArchivePull(status="not_connected")
    client = archive_client(connection)
    if client is None:
        return ArchivePull(status="no_archive")
    cursor, _ = ChatArchiveCursor.objects.get_or_create(tenant_id=tenant_id, corp_id=connection.corp_id)
    result = ArchivePull(status="done", seq=cursor.seq)
    matcher = matching.Matcher(keyword_rule_specs(tenant_id=tenant_id))
    with client:
        while max_pages is None or result.pages < max_pages:
            after = result.seq
            try:
                page = client.chat_messages(after=after, limit=page_size)
            except WeComAPIError as exc:
                result.status, result.error = "failed", str(exc)
                ChatArchiveCursor.objects.filter(id=cursor.id).update(
                    error=result.error[:2000], pulled_at=timezone.now()
                )
                return result
            fresh = [m for m in page.messages if m.seq > after]
            with transaction.atomic():
                locked = ChatArchiveCursor.objects.select_for_update().get(id=cursor.id)
                if locked.seq != after:  # another pull committed this page meanwhile: go on from where it stopped
                    result.seq = locked.seq
                    continue
                matched, tagged = _tag_messages(tenant_id, matcher, fresh)
                if fresh:
                    locked.seq = fresh[-1].seq
                    locked.messages += len(fresh)
                    locked.matched += matched
                    locked.tagged += tagged
                locked.pulled_at = timezone.now()
                locked.error = ""
                locked.save(update_fields=["seq", "messages", "matched", "tagged", "pulled_at", "error"])
            result.seq = locked.seq
            result.pages += 1
            result.messages += len(fresh)
            result.matched += matched
            result.tagged += tagged
            if len(page.messages) < page_size or not fresh:
                break
    return result


PULL_EVERY = dt.timedelta(seconds=30)


def chat_archive_pull_due() -> int:
    """Enqueue an archive pull for every connected brand with an enabled keyword rule (the worker's sweep calls it
    every minute); at most one per brand per PULL_EVERY across workers. Returns how many were enqueued."""
    from siyu.tags.tasks import chat_archive_pull_run

    tenants = KeywordRule.objects.filter(enabled=True).values_list("tenant_id", flat=True).distinct().order_by()
    enqueued = 0
    for tenant_id in sorted(set(tenants)):
        connection = connection_for_tenant(tenant_id=tenant_id)
        if connection is None or archive_base_url(connection) is None:
            continue
        if not cache.add(f"tags:archive_pull:{tenant_id}", "1", timeout=int(PULL_EVERY.total_seconds())):
            continue
        enqueue_on_commit(chat_archive_pull_run, tenant_id)
        enqueued += 1
    return enqueued
