"""Automatic tagging rules (自动打标规则): behaviour, purchase, RFM bands and member tier.

A rule is a query: `_matches` builds, per tag the rule applies, a subquery of the customer ids that match now.
A run (`tag_rule_apply`) is set-based whatever the brand's size: one INSERT … per batch for customers who match and
lack the tag, one DELETE for the rule's own tags on customers who no longer match, bulk events and bulk WeCom marks.
A tag a customer already carries from any other source is left as it is (it keeps its first source), and a tag the
rule did not apply is never removed by it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, OuterRef, QuerySet, Subquery, Sum
from django.utils import timezone

from siyu.analytics.models import Event
from siyu.analytics.services import event_build, event_bulk_record
from siyu.commerce.models import Order
from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.core.jobs import enqueue_on_commit
from siyu.core.scopes import Actor
from siyu.core.services import audit_record
from siyu.core.validation import clean_text
from siyu.groups.services import group_invites_on_tags
from siyu.tags import push
from siyu.tags.models import CustomerTag, Tag, TagRule, TagSource

MAX_NAME = 50
MAX_BANDS = 10
MAX_DAYS = 3650
MAX_COUNT = 1_000_000
MAX_BOUND = 10**9  # days, orders or yuan: far above any real band, and within every database's integers
TIER_EVENT = "member.tier_changed"
PAID = (Order.Status.PAID, Order.Status.COMPLETED)
RFM_METRICS = ("recency", "frequency", "monetary")
SOURCE = {
    TagRule.Kind.BEHAVIOUR: TagSource.BEHAVIOUR,
    TagRule.Kind.PURCHASE: TagSource.PURCHASE,
    TagRule.Kind.RFM: TagSource.RFM,
    TagRule.Kind.TIER: TagSource.TIER,
}
NIGHTLY_AT = dt.time(2, 0)  # brand time: after the day's orders and events are in
BRAND_TZ = ZoneInfo("Asia/Shanghai")
BATCH = 2000


def require_rule_admin(actor: Actor) -> None:
    """Tagging rules are the brand's: HQ reads and changes them, other roles neither."""
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ manages tagging rules")


def tag_rule_list(*, actor: Actor) -> QuerySet[TagRule]:
    require_rule_admin(actor)
    return TagRule.objects.filter(tenant_id=actor.tenant_id).select_related("tag__group")


def access_tag_rule(*, actor: Actor, rule_id: int, for_update: bool = False) -> TagRule:
    require_rule_admin(actor)
    qs = TagRule.objects.filter(tenant_id=actor.tenant_id, id=rule_id)
    rule = (qs.select_for_update() if for_update else qs.select_related("tag__group")).first()
    if rule is None:
        raise NotFound(f"tagging rule {rule_id} not found", field="rule_id")
    return rule


def next_night(now: dt.datetime | None = None) -> dt.datetime:
    """The next 02:00 brand time after `now`."""
    local = (now or timezone.now()).astimezone(BRAND_TZ)
    at = dt.datetime.combine(local.date(), NIGHTLY_AT, tzinfo=BRAND_TZ)
    if at <= local:
        at += dt.timedelta(days=1)
    return at


# -- validation ------------------------------------------------------------------------------------------------------


def _positive(params: Mapping[str, Any], key: str, *, required: bool, maximum: int | None = None) -> int | None:
    value = params.get(key)
    if value is None:
        if required:
            raise ValidationFailed(f"{key} is required", field=key)
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationFailed(f"{key} must be a whole number above 0", field=key)
    if maximum is not None and value > maximum:
        raise ValidationFailed(f"{key} must be at most {maximum}", field=key)
    return value


def _brand_tag(actor: Actor, tag_id: Any, field: str) -> Tag:
    if isinstance(tag_id, bool) or not isinstance(tag_id, int):
        raise ValidationFailed(f"{field} must be a tag id", field=field)
    tag = Tag.objects.filter(tenant_id=actor.tenant_id, id=tag_id).first()
    if tag is None:
        raise NotFound(f"tag {tag_id} not found", field=field)
    return tag


def _clean(actor: Actor, kind: str, tag_id: int | None, params: Mapping[str, Any]) -> tuple[Tag | None, dict[str, Any]]:
    """The rule's tag and its parameters as stored; 4xx naming the field for anything wrong."""
    if not isinstance(params, Mapping):
        raise ValidationFailed("params must be an object", field="params")
    if kind == TagRule.Kind.BEHAVIOUR:
        event_type = clean_text(params.get("event_type", ""), field="event_type", max_length=64, required=True)
        clean = {
            "event_type": event_type,
            "min_count": _positive(params, "min_count", required=True, maximum=MAX_COUNT),
            "within_days": _positive(params, "within_days", required=True, maximum=MAX_DAYS),
        }
    elif kind == TagRule.Kind.PURCHASE:
        series = clean_text(params.get("product_series", ""), field="product_series", max_length=64, required=True)
        clean = {
            "product_series": series,
            "min_count": _positive(params, "min_count", required=False, maximum=MAX_COUNT) or 1,
            "within_days": _positive(params, "within_days", required=False, maximum=MAX_DAYS),
        }
    elif kind == TagRule.Kind.TIER:
        clean = {"tier": clean_text(params.get("tier", ""), field="tier", max_length=64, required=True)}
    elif kind == TagRule.Kind.RFM:
        return None, _clean_rfm(actor, params)
    else:
        raise ValidationFailed(f"unknown rule kind {kind!r}", field="kind")
    if tag_id is None:
        raise ValidationFailed("a rule of this kind applies one tag", field="tag_id")
    return _brand_tag(actor, tag_id, "tag_id"), clean


def _clean_rfm(actor: Actor, params: Mapping[str, Any]) -> dict[str, Any]:
    metric = params.get("metric")
    if metric not in RFM_METRICS:
        raise ValidationFailed(f"metric must be one of {', '.join(RFM_METRICS)}", field="metric")
    bands = params.get("bands")
    if not isinstance(bands, list) or not bands or len(bands) > MAX_BANDS:
        raise ValidationFailed(f"bands must list 1 to {MAX_BANDS} bands", field="bands")
    clean: list[dict[str, Any]] = []
    seen: set[int] = set()
    for band in bands:
        if not isinstance(band, Mapping):
            raise ValidationFailed("each band is an object with tag_id, min and max", field="bands")
        tag = _brand_tag(actor, band.get("tag_id"), "bands")
        if tag.id in seen:
            raise ValidationFailed("each band applies its own tag", field="bands")
        seen.add(tag.id)
        low, high = band.get("min", 0), band.get("max")
        top = MAX_DAYS if metric == "recency" else MAX_BOUND  # recency bounds are days back from now
        for value in (low, high):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top):
                raise ValidationFailed(f"band bounds are whole numbers from 0 to {top}", field="bands")
        if low is None:
            low = 0
        if high is not None and high <= low:
            raise ValidationFailed("a band's max must be above its min", field="bands")
        clean.append({"tag_id": tag.id, "min": low, "max": high})
    within = _positive(params, "within_days", required=False, maximum=MAX_DAYS)
    return {"metric": metric, "bands": clean, "within_days": within}


# -- writes ----------------------------------------------------------------------------------------------------------


def _detail(rule: TagRule) -> dict[str, Any]:
    return {"name": rule.name, "kind": rule.kind, "tag_id": rule.tag_id, "params": rule.params, "enabled": rule.enabled}


@transaction.atomic
def tag_rule_create(
    *,
    actor: Actor,
    name: str,
    kind: str,
    params: Mapping[str, Any],
    tag_id: int | None = None,
    enabled: bool = True,
) -> TagRule:
    """A new automatic tagging rule (HQ only); it first runs with the next nightly recompute, or on "run now"."""
    require_rule_admin(actor)
    name = clean_text(name, field="name", max_length=MAX_NAME, required=True)
    tag, clean = _clean(actor, kind, tag_id, params)
    if TagRule.objects.filter(tenant_id=actor.tenant_id, name=name).exists():
        raise Conflict(f"a tagging rule is already called {name!r}", field="name")
    try:
        with transaction.atomic():
            rule = TagRule.objects.create(
                tenant_id=actor.tenant_id,
                name=name,
                kind=kind,
                tag=tag,
                params=clean,
                enabled=bool(enabled),
                next_run_at=next_night(),
            )
    except IntegrityError as exc:
        raise Conflict(f"a tagging rule is already called {name!r}", field="name") from exc
    audit_record(actor=actor, action="tag_rule.create", target_type="tag_rule", target_id=rule.id, detail=_detail(rule))
    return rule


@transaction.atomic
def tag_rule_update(
    *,
    actor: Actor,
    rule_id: int,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tag_id: int | None = None,
    enabled: bool | None = None,
) -> TagRule:
    """Change a rule (HQ only): the fields given. Its kind is fixed; tags it applied stay until its next run."""
    rule = access_tag_rule(actor=actor, rule_id=rule_id, for_update=True)
    before = _detail(rule)
    if name is not None:
        name = clean_text(name, field="name", max_length=MAX_NAME, required=True)
        if TagRule.objects.filter(tenant_id=actor.tenant_id, name=name).exclude(id=rule.id).exists():
            raise Conflict(f"a tagging rule is already called {name!r}", field="name")
        rule.name = name
    if params is not None or tag_id is not None:
        tag, clean = _clean(actor, rule.kind, rule.tag_id if tag_id is None else tag_id, params or rule.params)
        rule.tag, rule.params = tag, clean
    if enabled is not None:
        rule.enabled = bool(enabled)
    after = _detail(rule)
    changed = sorted(k for k in after if after[k] != before[k])
    if changed:
        rule.save()
        audit_record(
            actor=actor,
            action="tag_rule.update",
            target_type="tag_rule",
            target_id=rule.id,
            detail={"changed": changed, **after},
        )
    return access_tag_rule(actor=actor, rule_id=rule.id)


@transaction.atomic
def tag_rule_delete(*, actor: Actor, rule_id: int) -> None:
    """Remove a rule (HQ only); the tags it applied stay on the customers with their source and rule label."""
    rule = access_tag_rule(actor=actor, rule_id=rule_id, for_update=True)
    detail = _detail(rule)
    rule.delete()
    audit_record(actor=actor, action="tag_rule.delete", target_type="tag_rule", target_id=rule_id, detail=detail)


# -- running ---------------------------------------------------------------------------------------------------------


@dataclass
class RuleRun:
    matched: int = 0
    added: int = 0
    removed: int = 0


def _matches(rule: TagRule, now: dt.datetime) -> list[tuple[int, QuerySet[Any]]]:
    """(tag id, subquery of matching customer ids) for each tag the rule applies."""
    p = rule.params
    tenant = rule.tenant_id
    if rule.kind == TagRule.Kind.BEHAVIOUR:
        since = now - dt.timedelta(days=p["within_days"])
        qs = (
            Event.objects.filter(tenant_id=tenant, type=p["event_type"], occurred_at__gte=since)
            .exclude(customer_id=None)
            .values("customer_id")
            .annotate(n=Count("id"))
            .filter(n__gte=p["min_count"])
            .values("customer_id")
        )
        return [(rule.tag_id, qs)] if rule.tag_id else []
    if rule.kind == TagRule.Kind.PURCHASE:
        orders = Order.objects.filter(
            tenant_id=tenant, status__in=PAID, product_series=p["product_series"], customer__isnull=False
        )
        if p.get("within_days"):
            orders = orders.filter(paid_at__gte=now - dt.timedelta(days=p["within_days"]))
        qs = orders.values("customer_id").annotate(n=Count("id")).filter(n__gte=p["min_count"]).values("customer_id")
        return [(rule.tag_id, qs)] if rule.tag_id else []
    if rule.kind == TagRule.Kind.TIER:
        latest = (
            Event.objects.filter(tenant_id=tenant, type=TIER_EVENT, customer_id=OuterRef("customer_id"))
            .order_by("-occurred_at", "-id")
            .values("id")[:1]
        )
        qs = (
            Event.objects.filter(tenant_id=tenant, type=TIER_EVENT, properties__tier=p["tier"])
            .exclude(customer_id=None)
            .filter(id=Subquery(latest))
            .values("customer_id")
        )
        return [(rule.tag_id, qs)] if rule.tag_id else []
    # RFM: one grouped pass over paid orders, one band → one filter on it.
    orders = Order.objects.filter(tenant_id=tenant, status__in=PAID, customer__isnull=False)
    if p.get("within_days"):
        orders = orders.filter(paid_at__gte=now - dt.timedelta(days=p["within_days"]))
    per_customer = orders.values("customer_id").annotate(last=Max("paid_at"), n=Count("id"), m=Sum("amount_cents"))
    live_tags = set(
        Tag.objects.filter(tenant_id=tenant, id__in=[b["tag_id"] for b in p["bands"]]).values_list("id", flat=True)
    )
    result = []
    for band in p["bands"]:
        if band["tag_id"] not in live_tags:
            continue  # the band's tag was deleted
        low, high = band["min"], band["max"]
        if p["metric"] == "recency":  # days since the last paid order
            qs = per_customer.filter(last__lte=now - dt.timedelta(days=low))
            if high is not None:
                qs = qs.filter(last__gt=now - dt.timedelta(days=high))
        elif p["metric"] == "frequency":
            qs = per_customer.filter(n__gte=low)
            if high is not None:
                qs = qs.filter(n__lt=high)
        else:  # monetary, in yuan
            qs = per_customer.filter(m__gte=low * 100)
            if high is not None:
                qs = qs.filter(m__lt=high * 100)
        result.append((band["tag_id"], qs.values("customer_id")))
    return result


@transaction.atomic
def tag_rule_apply(*, rule_id: int, now: dt.datetime | None = None) -> RuleRun:
    """Run one rule now (as the system): add its tags where customers match, remove its own where they no longer
    do, record the counts on the rule, events on the timelines and WeCom marks in the outbox. Idempotent."""
    rule = TagRule.objects.select_for_update().filter(id=rule_id).first()
    run = RuleRun()
    if rule is None:
        return run
    now = now or timezone.now()
    tenant = rule.tenant_id
    source = SOURCE[TagRule.Kind(rule.kind)]
    added: dict[int, list[int]] = defaultdict(list)
    removed: dict[int, list[int]] = defaultdict(list)
    events = []
    tag_names: dict[int, str] = {}
    if not rule.enabled:
        return run  # a disabled rule neither adds nor removes: its tags stay as they are until it is enabled again
    wanted = _matches(rule, now)
    for tag_id, matching in wanted:
        tag_names.setdefault(tag_id, Tag.objects.filter(id=tag_id).values_list("name", flat=True).first() or "")
        have = CustomerTag.objects.filter(tenant_id=tenant, tag_id=tag_id).values("customer_id")
        new = list(matching.exclude(customer_id__in=have).order_by().values_list("customer_id", flat=True).distinct())
        CustomerTag.objects.bulk_create(
            [
                CustomerTag(
                    tenant_id=tenant, customer_id=c, tag_id=tag_id, source=source, rule=rule.label, created_at=now
                )
                for c in new
            ],
            batch_size=BATCH,
            ignore_conflicts=True,
        )
        stale = CustomerTag.objects.filter(tenant_id=tenant, tag_id=tag_id, rule=rule.label).exclude(
            customer_id__in=matching
        )
        gone = list(stale.values_list("customer_id", flat=True))
        stale.delete()
        for c in new:
            added[c].append(tag_id)
            events.append(_event(tenant, "tag.added", c, now, tag_id, tag_names[tag_id], source, rule.label))
        for c in gone:
            removed[c].append(tag_id)
            events.append(_event(tenant, "tag.removed", c, now, tag_id, tag_names[tag_id], source, rule.label))
        run.added += len(new)
        run.removed += len(gone)
    # Tags it applied that it no longer applies (a band removed, its tag changed): its own tags come off.
    current = {t for t, _ in wanted}
    leftovers = CustomerTag.objects.filter(tenant_id=tenant, rule=rule.label).exclude(tag_id__in=current)
    for c, tag_id, name in leftovers.values_list("customer_id", "tag_id", "tag__name"):
        removed[c].append(tag_id)
        events.append(_event(tenant, "tag.removed", c, now, tag_id, name, source, rule.label))
        run.removed += 1
    leftovers.delete()
    run.matched = _matched_count(rule)
    event_bulk_record(events=events)
    push.push_marks(tenant_id=tenant, add=added, remove=removed)
    group_invites_on_tags(tenant_id=tenant, pairs=[(c, t) for c, tags in added.items() for t in tags])
    TagRule.objects.filter(id=rule.id).update(
        last_run_at=now, last_matched=run.matched, last_added=run.added, last_removed=run.removed
    )
    if run.added or run.removed:
        audit_record(
            actor=Actor.system(tenant),
            action="tag_rule.run",
            target_type="tag_rule",
            target_id=rule.id,
            detail={"matched": run.matched, "added": run.added, "removed": run.removed},
        )
    return run


def _matched_count(rule: TagRule) -> int:
    """Customers carrying the rule's tags because of it after the run (one grouped query)."""
    return (
        CustomerTag.objects.filter(tenant_id=rule.tenant_id, rule=rule.label).values("customer_id").distinct().count()
    )


def _event(
    tenant: int, type: str, customer: int, at: dt.datetime, tag_id: int, name: str, source: str, label: str
) -> Any:
    return event_build(
        tenant_id=tenant,
        type=type,
        customer_id=customer,
        occurred_at=at,
        properties={"tag_id": tag_id, "tag": name, "source": source, "rule": label},
    )


def tag_rule_run_now(*, actor: Actor, rule_id: int) -> RuleRun:
    """Run now (HQ only): recompute the rule at once and audit who asked."""
    rule = access_tag_rule(actor=actor, rule_id=rule_id)
    run = tag_rule_apply(rule_id=rule.id)
    audit_record(
        actor=actor,
        action="tag_rule.run_now",
        target_type="tag_rule",
        target_id=rule.id,
        detail={"matched": run.matched, "added": run.added, "removed": run.removed},
    )
    return run


def tag_rules_due(*, now: dt.datetime | None = None) -> int:
    """Enqueue the nightly recompute of every enabled rule whose `next_run_at` has passed (the worker's sweep calls
    it): moving `next_run_at` to the next night with a conditional UPDATE claims the rule, so a run is enqueued once
    across workers, and a night missed while nothing ran is caught up at the next sweep."""
    from siyu.tags.tasks import tag_rule_run_job

    now = now or timezone.now()
    enqueued = 0
    due = list(TagRule.objects.filter(enabled=True, next_run_at__lte=now).values_list("id", "next_run_at"))
    with transaction.atomic():
        for rule_id, was in due:
            if TagRule.objects.filter(id=rule_id, next_run_at=was).update(next_run_at=next_night(now)):
                enqueue_on_commit(tag_rule_run_job, rule_id)
                enqueued += 1
    return enqueued


def rule_tag_ids(rule: TagRule) -> Sequence[int]:
    """The tags a rule applies (its tag, or its RFM bands' tags)."""
    if rule.kind == TagRule.Kind.RFM:
        return [b["tag_id"] for b in rule.params.get("bands", [])]
    return [rule.tag_id] if rule.tag_id else []
