"""Read models of the console pages, composed only from other contexts' scoped selectors.

Nothing here queries a model directly: every queryset starts from a selector that already applied the
tenant and the actor's data scope, and this module only aggregates, pages or arranges it for display.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, DateTimeField, Func, IntegerField, Q, QuerySet, Sum, Value
from django.utils import timezone

from siyu.analytics.events import EVENT_TYPES
from siyu.analytics.models import Event
from siyu.analytics.selectors import timeline_for_customer
from siyu.commerce.models import Order, Shop
from siyu.commerce.selectors import order_list, orders_for_customer
from siyu.core.models import Guide, Region, Store
from siyu.core.scopes import Actor
from siyu.core.selectors import guide_list, region_list, store_list
from siyu.customers.models import Customer, FollowRelation, Identity, LifecycleStage
from siyu.customers.selectors import (
    CustomerCard,
    access_customer,
    customer_card,
    customer_list,
    customer_scope,
    follow_relation_list,
    follow_relations_for,
    identities_for,
)
from siyu.tags.models import CustomerTag, TagSource
from siyu.tags.selectors import tags_for_customers

# Paid and completed orders count towards GMV; refunded and closed ones do not.
GMV_STATUSES = (Order.Status.PAID, Order.Status.COMPLETED)
CHART_MIN_WEEKS = 12
CHART_MAX_WEEKS = 104
MAX_PAGE = 100_000


def yuan(cents: int | None) -> str:
    """Fen → "1,234.50" (integer arithmetic, so sums never drift)."""
    cents = cents or 0
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{frac:02d}"


# ----- overview -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeeklySeries:
    weeks: list[str]
    customers: list[int]
    orders: list[int]


@dataclass(frozen=True)
class Overview:
    customers: int
    active_relations: int
    orders: int
    gmv_cents: int
    series: WeeklySeries

    @property
    def gmv_yuan(self) -> str:
        return yuan(self.gmv_cents)


class WeekIndex(Func):
    """Whole weeks from `start` to a timestamp (0 for the week that begins at `start`), computed in the database.

    Django's TruncWeek runs as a Python function per row on SQLite (seconds over 50,000 rows); date arithmetic
    in SQL is native on both databases. Weeks are 7 × 24 h from a local Monday midnight, so in a time zone
    with daylight saving a boundary can be off by an hour; the brand zones here (Asia/Shanghai) have none.
    """

    output_field = IntegerField()
    arity = 2

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="CAST((julianday(%(expressions)s)) / 7 AS INTEGER)",
            arg_joiner=") - julianday(", **extra,
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="FLOOR(EXTRACT(EPOCH FROM (%(expressions)s)) / 604800)::integer",
            arg_joiner=" - ", **extra,
        )


def _week_counts(qs: QuerySet[Any], date_field: str, start: dt.datetime) -> dict[int, int]:
    """Rows per week index from `start` (rows before `start` are left out)."""
    rows = (
        qs.filter(**{f"{date_field}__gte": start})
        .annotate(week=WeekIndex(date_field, Value(start, output_field=DateTimeField())))
        .values("week")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["week"]: row["n"] for row in rows}


def weekly_series(*, actor: Actor, today: dt.date | None = None) -> WeeklySeries:
    """New customers and orders per week (Monday-based, brand time zone) over the weeks that have data.

    The window runs from the first week with data (at most two years back, at least twelve weeks) to this
    week, so a quiet recent stretch shows as zeros instead of being cut off.
    """
    today = today or timezone.localdate()
    this_week = today - dt.timedelta(days=today.weekday())
    first_allowed = this_week - dt.timedelta(weeks=CHART_MAX_WEEKS - 1)
    start = timezone.make_aware(dt.datetime.combine(first_allowed, dt.time.min))
    customers = _week_counts(customer_scope(actor=actor).order_by(), "created_at", start)
    orders = _week_counts(order_list(actor=actor).order_by(), "paid_at", start)
    last = CHART_MAX_WEEKS - 1
    first = min([*customers, *orders, last - (CHART_MIN_WEEKS - 1)])
    indexes = range(first, last + 1)
    return WeeklySeries(
        weeks=[(first_allowed + dt.timedelta(weeks=i)).isoformat() for i in indexes],
        customers=[customers.get(i, 0) for i in indexes],
        orders=[orders.get(i, 0) for i in indexes],
    )


def overview_for(*, actor: Actor) -> Overview:
    orders = order_list(actor=actor).order_by()
    return Overview(
        customers=customer_scope(actor=actor).count(),
        active_relations=follow_relation_list(actor=actor, status=FollowRelation.Status.ACTIVE).count(),
        orders=orders.count(),
        gmv_cents=orders.filter(status__in=GMV_STATUSES).aggregate(total=Sum("amount_cents"))["total"] or 0,
        series=weekly_series(actor=actor),
    )


# ----- customer list --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerRow:
    card: CustomerCard
    created_at: dt.datetime
    stage_label: str
    tags: list[CustomerTag]


class CheapPaginator(Paginator):
    """A paginator that asks the database for one row more than a page instead of counting every match.

    Counting 50,000 scoped customers (an EXISTS per row for scoped roles) on every page turn costs more
    than the page itself; the list shows "next" while more rows exist, and the total arrives in a second
    request (`customer_total`) after the table has rendered.
    """

    def page(self, number: Any) -> Page:  # type: ignore[override]
        try:
            # Clamped: an absurd page number would overflow the database's OFFSET integer.
            number = min(max(1, int(number)), MAX_PAGE)
        except (TypeError, ValueError):
            number = 1
        bottom = (number - 1) * self.per_page
        # Past the end (an old link) gives an empty page that says so; counting first to clamp the number
        # would cost the COUNT this paginator exists to avoid.
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        return CheapPage(rows[: self.per_page], number, self, has_more=len(rows) > self.per_page)


class CheapPage(Page):
    def __init__(self, object_list: list[Any], number: int, paginator: Paginator, *, has_more: bool) -> None:
        super().__init__(object_list, number, paginator)
        self._has_more = has_more

    def has_next(self) -> bool:
        return self._has_more

    def next_page_number(self) -> int:
        return self.number + 1

    def previous_page_number(self) -> int:
        # Django's version validates against num_pages, i.e. runs the COUNT this page avoids.
        return max(1, self.number - 1)

    def start_index(self) -> int:
        return (self.number - 1) * self.paginator.per_page + 1 if self.object_list else 0

    def end_index(self) -> int:
        return (self.number - 1) * self.paginator.per_page + len(self.object_list)


def customer_page(
    *, actor: Actor, filters: dict[str, Any], page: Any, per_page: int
) -> tuple[Page, list[CustomerRow]]:
    """One page of the customer list with masked cards and tag chips, in three queries whatever the page size."""
    page_obj = CheapPaginator(customer_list(actor=actor, **filters), per_page).page(page)
    customers: list[Customer] = list(page_obj.object_list)
    tags = tags_for_customers(tenant_id=actor.tenant_id, customer_ids=[c.id for c in customers])
    stages = dict(LifecycleStage.choices)
    rows = [
        CustomerRow(
            card=customer_card(c),
            created_at=c.created_at,
            stage_label=str(stages.get(c.lifecycle_stage, c.lifecycle_stage)),
            tags=tags.get(c.id, []),
        )
        for c in customers
    ]
    return page_obj, rows


def customer_count(*, actor: Actor, filters: dict[str, Any]) -> int:
    return customer_list(actor=actor, **filters).order_by().count()


# ----- customer 360 ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagSourceGroup:
    source: str
    label: str
    tags: list[CustomerTag]


@dataclass(frozen=True)
class Customer360:
    customer: Customer
    card: CustomerCard
    identities: list[Identity]
    relations: list[FollowRelation]
    tag_groups: list[TagSourceGroup]
    orders: list[Order]
    order_count: int
    gmv_cents: int
    guide_names: dict[int, str] = field(default_factory=dict)

    @property
    def gmv_yuan(self) -> str:
        return yuan(self.gmv_cents)


ORDERS_SHOWN = 20


def customer_360(*, actor: Actor, customer_id: int) -> Customer360:
    """Everything the 360 page shows; raises NotFound for another tenant's or an out-of-scope customer."""
    customer = access_customer(actor=actor, customer_id=customer_id)
    relations = list(follow_relations_for(actor=actor, customer_id=customer.id))
    by_source: dict[str, list[CustomerTag]] = defaultdict(list)
    for row in tags_for_customers(tenant_id=actor.tenant_id, customer_ids=[customer.id]).get(customer.id, []):
        by_source[row.source].append(row)
    source_labels = dict(TagSource.choices)
    orders = orders_for_customer(actor=actor, customer_id=customer.id)
    totals = orders.order_by().aggregate(n=Count("id"), gmv=Sum("amount_cents", filter=Q(status__in=GMV_STATUSES)))
    gmv = totals["gmv"] or 0
    return Customer360(
        customer=customer,
        card=customer_card(customer),
        identities=list(identities_for(actor=actor, customer_id=customer.id)),
        relations=relations,
        tag_groups=[
            TagSourceGroup(source=s, label=str(source_labels.get(s, s)), tags=by_source[s])
            for s in TagSource.values
            if s in by_source
        ],
        orders=list(orders.select_related("store", "guide")[:ORDERS_SHOWN]),
        order_count=totals["n"],
        gmv_cents=gmv,
        guide_names={r.guide_id: r.guide.name for r in relations},
    )


@dataclass(frozen=True)
class TimelineEntry:
    event: Event
    label: str
    detail: str


def describe_event(event: Event, guide_names: dict[int, str]) -> str:
    """A one-line human summary of an event's properties (labels translated, money in yuan)."""
    props = event.properties or {}
    guide_id = props.get("guide_id") or event.guide_id
    guide = guide_names.get(guide_id, f"#{guide_id}") if guide_id else ""
    match event.type:
        case "contact.added":
            add_way = dict(FollowRelation.AddWay.choices).get(props.get("add_way", 0), "")
            parts = [guide, str(add_way)]
            if props.get("state"):
                parts.append(f"state={props['state']}")
            return " · ".join(p for p in parts if p)
        case "contact.deleted_by_customer" | "contact.deleted_by_guide" | "message.received" | "welcome.sent":
            return guide
        case "welcome.failed":
            return " · ".join(p for p in (guide, f"{props.get('errcode', '')} {props.get('error', '')}".strip()) if p)
        case "tag.added" | "tag.removed":
            source = dict(TagSource.choices).get(props.get("source", ""), "")
            return " · ".join(str(p) for p in (props.get("tag", f"#{props.get('tag_id')}"), source) if p)
        case "order.paid" | "order.refunded":
            shop = dict(Shop.choices).get(props.get("shop", ""), props.get("shop", ""))
            return f"{props.get('order_no', '')} · ¥{yuan(props.get('amount_cents'))} · {shop}"
        case "customer.created":
            return str(props.get("source", ""))
        case "lead.converted":
            # The lead's source (展会, 小程序…) and which of its keys matched, if it was found automatically.
            return " · ".join(str(p) for p in (props.get("source"), props.get("matched_on")) if p)
        case "customer.updated":
            return ", ".join(props.get("fields", []))
        case "material.opened":
            return str(props.get("material", ""))
        case "group.joined" | "group.left":
            return str(props.get("group", ""))
        case "contact.transfer_started" | "contact.transferred" | "contact.transfer_failed":
            names = [guide_names.get(props.get(k), f"#{props.get(k)}") for k in ("from_guide_id", "to_guide_id")]
            return " → ".join(names)
    return ""


TIMELINE_PAGE = 20


def timeline_page(
    *, actor: Actor, customer_id: int, types: list[str] | None, page: Any, guide_names: dict[int, str] | None = None
) -> tuple[Page, list[TimelineEntry]]:
    """One page of a customer's timeline; authorises access to the customer first."""
    customer = access_customer(actor=actor, customer_id=customer_id)
    if guide_names is None:
        guide_names = {r.guide_id: r.guide.name for r in follow_relations_for(actor=actor, customer_id=customer.id)}
    events = timeline_for_customer(actor=actor, customer_id=customer.id, types=types)
    page_obj = Paginator(events, TIMELINE_PAGE).get_page(page)
    entries = [
        TimelineEntry(
            event=e,
            label=str(EVENT_TYPES[e.type].label) if e.type in EVENT_TYPES else e.type,
            detail=describe_event(e, guide_names),
        )
        for e in page_obj.object_list
    ]
    return page_obj, entries


# ----- orders ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderRow:
    order: Order
    customer: CustomerCard | None

    @property
    def amount_yuan(self) -> str:
        return yuan(self.order.amount_cents)


def order_page(*, actor: Actor, shop: str, status: str, page: Any, per_page: int) -> tuple[Page, list[OrderRow]]:
    qs = order_list(actor=actor).select_related("customer__owner_guide", "guide", "store")
    if shop:
        qs = qs.filter(shop=shop)
    if status:
        qs = qs.filter(status=status)
    page_obj = Paginator(qs, per_page).get_page(page)
    rows = [OrderRow(order=o, customer=customer_card(o.customer) if o.customer else None) for o in page_obj]
    return page_obj, rows


# ----- org tree -------------------------------------------------------------------------------------------


@dataclass
class GuideNode:
    guide: Guide
    active_customers: int


@dataclass
class StoreNode:
    store: Store
    guides: list[GuideNode] = field(default_factory=list)


@dataclass
class RegionNode:
    region: Region
    stores: list[StoreNode] = field(default_factory=list)


@dataclass(frozen=True)
class OrgTree:
    regions: list[RegionNode]
    # Guides in scope without a store in scope: the brand IP account, or a guide's own account.
    unplaced: list[GuideNode]

    @property
    def store_count(self) -> int:
        return sum(len(r.stores) for r in self.regions)

    @property
    def guide_count(self) -> int:
        return sum(len(s.guides) for r in self.regions for s in r.stores) + len(self.unplaced)


def org_tree(*, actor: Actor) -> OrgTree:
    """Regions → stores → guides in the actor's scope, with each guide's active customers (four queries)."""
    counts = dict(
        follow_relation_list(actor=actor, status=FollowRelation.Status.ACTIVE)
        .values("guide_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("guide_id", "n")
    )
    regions = {r.id: RegionNode(region=r) for r in region_list(actor=actor)}
    stores: dict[int, StoreNode] = {}
    for store in store_list(actor=actor):
        node = StoreNode(store=store)
        stores[store.id] = node
        if store.region_id in regions:
            regions[store.region_id].stores.append(node)
    unplaced = []
    for guide in guide_list(actor=actor):
        node = GuideNode(guide=guide, active_customers=counts.get(guide.id, 0))
        if guide.store_id in stores:
            stores[guide.store_id].guides.append(node)
        else:
            unplaced.append(node)
    return OrgTree(regions=list(regions.values()), unplaced=unplaced)


# ----- analytics ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Funnel:
    customers: int
    with_guide: int
    buyers: int
    repeat_buyers: int


@dataclass(frozen=True)
class AnalyticsReport:
    stages: list[tuple[str, int]]
    sources: list[tuple[str, int]]
    gmv_by_shop: list[tuple[str, int]]
    funnel: Funnel
    series: WeeklySeries


def analytics_report(*, actor: Actor) -> AnalyticsReport:
    customers = customer_scope(actor=actor).order_by()
    paid = order_list(actor=actor).order_by().filter(status__in=GMV_STATUSES)
    stage_counts = dict(customers.values("lifecycle_stage").annotate(n=Count("id")).values_list("lifecycle_stage", "n"))
    sources = list(
        customers.values("source").annotate(n=Count("id")).order_by("-n", "source").values_list("source", "n")[:10]
    )
    shop_labels = dict(Shop.choices)
    by_shop = paid.values("shop").annotate(total=Sum("amount_cents")).order_by("-total").values_list("shop", "total")
    buyers = paid.exclude(customer_id=None).values("customer_id")
    return AnalyticsReport(
        stages=[(str(label), stage_counts.get(value, 0)) for value, label in LifecycleStage.choices],
        sources=[(s or "—", n) for s, n in sources],
        gmv_by_shop=[(str(shop_labels.get(s, s)), total or 0) for s, total in by_shop],
        funnel=Funnel(
            customers=customers.count(),
            with_guide=follow_relation_list(actor=actor, status=FollowRelation.Status.ACTIVE)
            .values("customer_id")
            .distinct()
            .count(),
            buyers=buyers.distinct().count(),
            repeat_buyers=buyers.annotate(n=Count("id")).filter(n__gte=2).count(),
        ),
        series=weekly_series(actor=actor),
    )
