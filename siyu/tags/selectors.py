"""Reads of the tags context, scoped by tenant."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Count, QuerySet

from siyu.core.errors import NotFound, PermissionDenied
from siyu.core.scopes import Actor
from siyu.customers.selectors import customer_scope
from siyu.tags.keywords import RuleSpec
from siyu.tags.models import ChatArchiveCursor, CustomerTag, KeywordRule, Tag, TagGroup, TagSource


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


# -- chat keyword rules (关键词打标) --------------------------------------------------------------------------------


def require_keyword_admin(actor: Actor) -> None:
    """Keyword rules are the brand's: HQ reads and changes them, other roles neither."""
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ manages keyword rules")


def keyword_rule_list(*, actor: Actor) -> QuerySet[KeywordRule]:
    require_keyword_admin(actor)
    return KeywordRule.objects.filter(tenant_id=actor.tenant_id).prefetch_related("tags__group")


def access_keyword_rule(*, actor: Actor, rule_id: int, for_update: bool = False) -> KeywordRule:
    require_keyword_admin(actor)
    qs = KeywordRule.objects.filter(tenant_id=actor.tenant_id, id=rule_id)
    rule = (qs.select_for_update() if for_update else qs.prefetch_related("tags__group")).first()
    if rule is None:
        raise NotFound(f"keyword rule {rule_id} not found", field="rule_id")
    return rule


def keyword_rule_specs(*, tenant_id: int) -> list[RuleSpec]:
    """The brand's enabled rules as the matcher takes them (for the tagging job, which runs as the system)."""
    rules = KeywordRule.objects.filter(tenant_id=tenant_id, enabled=True).prefetch_related("tags").order_by("id")
    return [
        RuleSpec(
            id=rule.id,
            keywords=tuple(rule.keywords),
            exclusions=tuple(rule.exclusions),
            mode=rule.mode,
            scope=rule.scope,
            customer_only=rule.customer_only,
            tag_ids=tuple(sorted(t.id for t in rule.tags.all())),
        )
        for rule in rules
    ]


def keyword_rule_tagged_counts(*, actor: Actor) -> dict[int, int]:
    """How many customer tags each rule applied (and still stand), in one grouped query."""
    require_keyword_admin(actor)
    rows = (
        CustomerTag.objects.filter(
            tenant_id=actor.tenant_id, source=TagSource.KEYWORD, rule__startswith="keyword_rule:"
        )
        .values("rule")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("rule", "n")
    )
    counts: dict[int, int] = {}
    for label, n in rows:
        number = label.removeprefix("keyword_rule:")
        if number.isdigit():
            counts[int(number)] = n
    return counts


def chat_archive_cursors(*, actor: Actor) -> QuerySet[ChatArchiveCursor]:
    """How far keyword tagging has read the brand's session archive (one row per corp it was connected to)."""
    require_keyword_admin(actor)
    return ChatArchiveCursor.objects.filter(tenant_id=actor.tenant_id).order_by("-pulled_at", "-id")
