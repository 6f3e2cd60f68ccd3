"""Writes of the tags context: tag groups, tags and tagging customers."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.analytics.services import event_record
from siyu.core.errors import Conflict, PermissionDenied, ValidationFailed
from siyu.core.models import Role
from siyu.core.scopes import Actor
from siyu.core.services import audit_record
from siyu.customers.selectors import access_customer
from siyu.tags.models import CustomerTag, Tag, TagGroup, TagSource
from siyu.tags.selectors import access_tag, access_tag_group

MAX_TAG_NAME = 30  # WeCom corp tag limit


def _clean_tag_name(name: str, field: str) -> str:
    name = name.strip()
    if not name:
        raise ValidationFailed(f"{field} must not be empty", field=field)
    if len(name) > MAX_TAG_NAME:
        raise ValidationFailed(f"{field} is longer than {MAX_TAG_NAME} characters (WeCom's limit)", field=field)
    return name


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
