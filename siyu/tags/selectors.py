"""Reads of the tags context, scoped by tenant."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Count, QuerySet

from siyu.core.errors import NotFound
from siyu.core.scopes import Actor
from siyu.customers.selectors import customer_scope
from siyu.tags.models import CustomerTag, Tag, TagGroup


def tag_group_list(*, actor: Actor) -> QuerySet[TagGroup]:
    """Tag groups with their tags (tags are brand-wide: every role sees the brand's tag catalogue)."""
    return TagGroup.objects.filter(tenant_id=actor.tenant_id).prefetch_related("tags")


def tag_list(*, actor: Actor) -> QuerySet[Tag]:
    return Tag.objects.filter(tenant_id=actor.tenant_id).select_related("group")


def access_tag(*, actor: Actor, tag_id: int) -> Tag:
    tag = tag_list(actor=actor).filter(id=tag_id).first()
    if tag is None:
        raise NotFound(f"tag {tag_id} not found", field="tag_id")
    return tag


def access_tag_group(*, actor: Actor, group_id: int) -> TagGroup:
    group = TagGroup.objects.filter(tenant_id=actor.tenant_id, id=group_id).first()
    if group is None:
        raise NotFound(f"tag group {group_id} not found", field="group_id")
    return group


def customer_ids_with_tags(*, tenant_id: int, tag_ids: list[int]) -> QuerySet[CustomerTag]:
    """Customer ids carrying every tag in `tag_ids`, as a subquery."""
    qs = CustomerTag.objects.filter(tenant_id=tenant_id, tag_id=tag_ids[0]).values("customer_id")
    for tag_id in tag_ids[1:]:
        qs = qs.filter(
            customer_id__in=CustomerTag.objects.filter(tenant_id=tenant_id, tag_id=tag_id).values("customer_id")
        )
    return qs


def tags_for_customers(*, tenant_id: int, customer_ids: list[int]) -> dict[int, list[CustomerTag]]:
    """Tags of many customers in one query (for list pages). The caller has scoped `customer_ids`."""
    result: dict[int, list[CustomerTag]] = defaultdict(list)
    rows = CustomerTag.objects.filter(tenant_id=tenant_id, customer_id__in=customer_ids).select_related("tag__group")
    for row in rows.order_by("tag__group__order", "tag_id"):
        result[row.customer_id].append(row)
    return result


def tag_customer_counts(*, actor: Actor) -> dict[int, int]:
    """How many customers in the actor's scope carry each tag, in one grouped query."""
    rows = CustomerTag.objects.filter(tenant_id=actor.tenant_id)
    if not actor.is_brand_wide:
        # HQ sees the whole brand: the scope subquery would only slow the grouping down.
        rows = rows.filter(customer_id__in=customer_scope(actor=actor).values("id"))
    counts = rows.values("tag_id").annotate(n=Count("id")).order_by().values_list("tag_id", "n")
    return dict(counts)
