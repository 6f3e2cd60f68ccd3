"""Writes of the demo loader: one phase per function, each committed with its `DemoLoadState` flag.

The small structure (brand, regions, stores, guides, tag catalogue, logins) goes through the owning contexts'
services, so it is validated and audited like anything a person creates. The volume (customers, identities,
follow relations, tags, events, orders: about a million rows) goes through `rows_insert`, which writes rows of
other contexts' models directly. That bypasses the per-row services, which would need several queries per row
and hours for the whole brand, but it produces exactly the rows those services would: personal data encrypted
and hashed with `siyu.core.pii` as `customer_create` does, phone identities holding the phone hash, and every
timeline event built and validated by `siyu.analytics.services.event_build` with the properties the services
record (customer.created, contact.added, tag.added, order.paid, ...). What it leaves out on purpose is the
per-row audit trail: a load is recorded by one `demo.load` audit row instead of 50,000 `customer.create` rows.

The last phase, `acquisition` (siyu.demo.acquisition), makes the brand's live codes, group codes, store locator and
fission campaign through the owning contexts' services, against a private in-process emulator (see there).

Jobs: the services queue follow-up jobs as they write (a code's rebalance at midnight, a settle at the end of each
invite's hold). A bulk load holds them back (`jobs_held`): the history it writes is settled by the loader itself, and
what the running brand still has to do later is on its rows (a code's `rebalance_at`, an invite's `hold_until`),
where the worker's periodic sweeps find it, as they do for any job that was lost. So a load leaves no job behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, models, transaction
from django.utils import timezone
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
from django_tasks.backends.dummy import DummyBackend

from siyu.analytics.models import Event
from siyu.analytics.services import event_build
from siyu.commerce.models import Order
from siyu.core import pii
from siyu.core import services as core_services
from siyu.core.errors import Conflict, ValidationFailed
from siyu.core.hours import daily_hours
from siyu.core.models import Franchisee, Guide, Membership, Region, Role, Store, Tenant
from siyu.core.scopes import Actor
from siyu.customers.models import Customer, FollowRelation, Identity
from siyu.demo import reference as ref
from siyu.demo.acquisition import acquisition_total, demo_acquisition_create
from siyu.demo.generate import (
    ActivitySpec,
    CustomerPlan,
    FissionPlan,
    GroupSpec,
    OrgPlan,
    activity_plan,
    customer_plan,
    fission_plan,
    group_plan,
    local_midnight,
    org_plan,
)
from siyu.demo.models import DemoLoad, DemoLoadState
from siyu.demo.operations import demo_operations_create, operations_total
from siyu.emulator import ids as wecom_ids
from siyu.groups.models import CustomerGroup, GroupMember
from siyu.tags.models import CustomerTag, Tag
from siyu.tags.services import tag_group_create

BATCH = 5000
UTC = dt.UTC


# --- the bulk writer ------------------------------------------------------------------------------------


def _sqlite_datetime(value: dt.datetime) -> str:
    # What Django's SQLite backend stores for an aware datetime under USE_TZ: naive UTC, ISO with a space.
    # The generator hands out UTC datetimes, so the conversion is usually skipped.
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return str(value)[:-6]  # "2026-01-09 05:56:56+00:00" without its offset; faster than replace + isoformat


# Same encoding as JSONField.get_db_prep_value (json.dumps with default settings), without dumps' per-call setup.
_json = json.JSONEncoder().encode


def _adapter(model_field: models.Field[Any, Any], vendor: str) -> Callable[[Any], Any] | None:
    """A fast conversion for the column types the loader writes; anything else goes through Django."""
    kind = model_field.get_internal_type()
    if kind == "JSONField":
        return _json
    if kind == "DateTimeField":
        return _sqlite_datetime if vendor == "sqlite" else None
    if kind in {
        "AutoField", "BigAutoField", "BigIntegerField", "IntegerField", "PositiveIntegerField",
        "PositiveSmallIntegerField", "SmallIntegerField", "CharField", "TextField", "SlugField",
        "BooleanField", "ForeignKey",
    }:  # fmt: skip
        return None
    return lambda value: model_field.get_db_prep_save(value, connection)


def rows_insert(
    *,
    model: type[models.Model],
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Append `rows` (tuples of `columns`, by attname) to `model`'s table: COPY on PostgreSQL, else executemany.

    Columns left out take the field's default (auto_now_add: now; nullable: NULL); a required column left
    out is an error. Call inside a transaction. Returns the number of rows written.

    `rows` may be a generator, consumed while the COPY is open: producing a row must not query the database
    (the connection is busy with the COPY, and psycopg would wait for it forever).
    """
    if not settings.USE_TZ:
        raise RuntimeError("the demo loader writes aware datetimes and needs USE_TZ = True")
    by_attname = {f.attname: f for f in model._meta.concrete_fields}
    unknown = [c for c in columns if c not in by_attname]
    if unknown:
        raise ValueError(f"{model.__name__} has no column {', '.join(unknown)}")
    now = timezone.now()
    fill: list[tuple[models.Field[Any, Any], Any]] = []
    for f in model._meta.concrete_fields:
        if f.primary_key or f.attname in columns:
            continue
        if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False):
            fill.append((f, now))
        elif f.has_default():
            fill.append((f, f.get_default()))
        elif f.null:
            fill.append((f, None))
        else:
            raise ValueError(f"{model.__name__}.{f.attname} needs a value")
    fields = [by_attname[c] for c in columns] + [f for f, _ in fill]
    vendor = connection.vendor
    adapters = [(i, a) for i, f in enumerate(fields[: len(columns)]) if (a := _adapter(f, vendor))]
    extra = tuple(a(v) if v is not None and (a := _adapter(f, vendor)) else v for f, v in fill)

    def prepared() -> Iterator[tuple[Any, ...]]:
        for row in rows:
            values = list(row)
            for i, adapt in adapters:
                if values[i] is not None:
                    values[i] = adapt(values[i])
            yield (*values, *extra)

    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    count = 0
    with connection.cursor() as cursor:
        if vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for values in prepared():
                    copy.write_row(values)
                    count += 1
                    if on_rows and count % BATCH == 0:
                        on_rows(BATCH)
            if on_rows and count % BATCH:
                on_rows(count % BATCH)
        else:
            sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(fields))})"  # noqa: S608
            batch: list[tuple[Any, ...]] = []
            for values in prepared():
                batch.append(values)
                if len(batch) == BATCH:
                    cursor.executemany(sql, batch)
                    count += len(batch)
                    if on_rows:
                        on_rows(len(batch))
                    batch = []
            if batch:
                cursor.executemany(sql, batch)
                count += len(batch)
                if on_rows:
                    on_rows(len(batch))
    return count


_EVENT_COLUMNS = ("tenant_id", "customer_id", "guide_id", "actor_id", "type", "occurred_at", "properties")


def events_insert(*, events: Iterable[Event], on_rows: Callable[[int], None] | None = None) -> int:
    """Append events built (and validated) by `event_build`."""
    return rows_insert(
        model=Event,
        columns=_EVENT_COLUMNS,
        rows=(
            (e.tenant_id, e.customer_id, e.guide_id, e.actor_id, e.type, e.occurred_at, e.properties) for e in events
        ),
        on_rows=on_rows,
    )


# --- progress -------------------------------------------------------------------------------------------


class LoadReporter(Protocol):
    """What the loader tells whoever runs it; the command shows it as a rich progress bar."""

    def planning(self, what: str) -> None: ...

    def phase_started(self, phase: str, label: str, total: int) -> None: ...

    def phase_already_done(self, phase: str, label: str, rows: int) -> None: ...

    def advance(self, rows: int) -> None: ...

    def phase_finished(self, phase: str, rows: int, seconds: float) -> None: ...


class SilentReporter:
    def planning(self, what: str) -> None:
        pass

    def phase_started(self, phase: str, label: str, total: int) -> None:
        pass

    def phase_already_done(self, phase: str, label: str, rows: int) -> None:
        pass

    def advance(self, rows: int) -> None:
        pass

    def phase_finished(self, phase: str, rows: int, seconds: float) -> None:
        pass


# --- one load -------------------------------------------------------------------------------------------


class DemoRun:
    """One invocation of the loader: the plan (generated at most once) and the database ids phases need.

    Holds no rows of its own; everything it knows is regenerated from the load record or read back.
    """

    def __init__(self, load: DemoLoad, reporter: LoadReporter) -> None:
        self.load = load
        self.reporter = reporter
        self._org: OrgPlan | None = None
        self._plan: CustomerPlan | None = None
        self._customer_ids: list[int] | None = None
        self._guide_ids: list[int] | None = None
        self._activity: list[ActivitySpec] | None = None
        self._groups: list[GroupSpec] | None = None
        self._fission: FissionPlan | None = None

    @property
    def tenant_id(self) -> int:
        if self.load.tenant_id is None:
            raise RuntimeError("the brand phase has not run")
        return self.load.tenant_id

    @property
    def org(self) -> OrgPlan:
        if self._org is None:
            self._org = org_plan(seed=self.load.seed, anchor=self.load.anchor)
        return self._org

    @property
    def plan(self) -> CustomerPlan:
        if self._plan is None:
            self.reporter.planning(f"generating {self.load.customers:,} customers")
            self._plan = customer_plan(
                org=self.org, seed=self.load.seed, customers=self.load.customers, anchor=self.load.anchor
            )
        return self._plan

    @property
    def activity(self) -> list[ActivitySpec]:
        if self._activity is None:
            self.reporter.planning("generating timeline activity")
            self._activity = activity_plan(plan=self.plan, seed=self.load.seed)
        return self._activity

    @property
    def groups(self) -> list[GroupSpec]:
        if self._groups is None:
            self._groups = group_plan(org=self.org, plan=self.plan, activity=self.activity, seed=self.load.seed)
        return self._groups

    @property
    def fission(self) -> FissionPlan:
        if self._fission is None:
            self._fission = fission_plan(plan=self.plan, seed=self.load.seed)
        return self._fission

    @property
    def corp_id(self) -> str:
        return ref.corp_id_for(self.load.slug)

    def group_ids(self) -> dict[str, tuple[int, str]]:
        """Group name → (database id, chat_id) of the demo's groups (their names are unique in the demo)."""
        rows = CustomerGroup.objects.filter(tenant_id=self.tenant_id).values_list("name", "id", "chat_id")
        return {name: (group_id, chat_id) for name, group_id, chat_id in rows}

    @property
    def customer_ids(self) -> list[int]:
        """Database id of each planned customer, by plan index.

        The customers phase inserts them in plan order in one transaction, so ids ascend in plan order, and
        they come before any customer added through the console while an interrupted load waited to resume.
        """
        if self._customer_ids is None:
            customers = Customer.objects.filter(tenant_id=self.tenant_id).order_by("id")
            ids = list(customers.values_list("id", flat=True)[: self.load.customers])
            if len(ids) != self.load.customers:
                raise RuntimeError(f"expected {self.load.customers} demo customers, found {len(ids)}")
            self._customer_ids = ids
        return self._customer_ids

    @property
    def guide_ids(self) -> list[int]:
        if self._guide_ids is None:
            by_userid = dict(Guide.objects.filter(tenant_id=self.tenant_id).values_list("wecom_userid", "id"))
            self._guide_ids = [by_userid[g.wecom_userid] for g in self.org.guides]
        return self._guide_ids

    def store_ids(self) -> dict[str, int]:
        return dict(Store.objects.filter(tenant_id=self.tenant_id).values_list("code", "id"))

    def tag_ids(self) -> dict[tuple[str, str], int]:
        rows = Tag.objects.filter(tenant_id=self.tenant_id).values_list("group__name", "name", "id")
        return {(group, name): tag_id for group, name, tag_id in rows}

    def guide_lookup(self) -> Callable[[int | None], int | None]:
        """Plan guide index → database id, loaded now: row generators must not query (see rows_insert)."""
        ids = self.guide_ids
        return lambda index: None if index is None else ids[index]


def demo_brand_create(*, run: DemoRun) -> int:
    """Phase `brand`: the tenant, regions, franchisees, stores with coordinates, guides and the brand IP."""
    if Tenant.objects.filter(slug=run.load.slug).exists():
        raise Conflict(f"a brand with slug {run.load.slug!r} exists but was not made by this loader", field="slug")
    org = run.org
    tenant = core_services.tenant_create(name=ref.BRAND_NAME, slug=run.load.slug, wecom_corp_id=run.corp_id)
    regions = {code: core_services.region_create(tenant=tenant, name=name, code=code) for code, name in ref.REGIONS}
    franchisees = {
        code: core_services.franchisee_create(tenant=tenant, name=name, code=code) for code, name in ref.FRANCHISEES
    }
    stores: dict[str, Store] = {}
    for s in org.stores:
        stores[s.code] = core_services.store_create(
            tenant=tenant,
            region=regions[s.region_code],
            franchisee=franchisees[s.franchisee_code] if s.franchisee_code else None,
            name=s.name,
            code=s.code,
            city=s.city,
            address=s.address,
            latitude=s.latitude,
            longitude=s.longitude,
            hours=daily_hours(s.opens_at, s.closes_at),
        )
        run.reporter.advance(1)
    for g in org.guides:
        guide = core_services.guide_create(
            tenant=tenant,
            name=g.name,
            wecom_userid=g.wecom_userid,
            store=stores[g.store_code] if g.store_code else None,
            kind=g.kind,
            joined_at=g.joined_at,
        )
        if g.status != Guide.Status.ACTIVE:
            # guide_create makes active guides; departures are a later state change (离职), set here.
            Guide.objects.filter(pk=guide.pk).update(status=g.status)
        run.reporter.advance(1)
    run.load.tenant = tenant
    run.load.save(update_fields=["tenant"])
    core_services.audit_record(
        actor=Actor.system(tenant.id),
        action="demo.load",
        target_type="tenant",
        target_id=tenant.id,
        detail={"seed": run.load.seed, "customers": run.load.customers},
    )
    return 1 + len(regions) + len(franchisees) + len(stores) + len(org.guides)


def demo_tags_create(*, run: DemoRun) -> int:
    """Phase `tags`: the brand's tag groups and tags, through the tags context's service."""
    actor = Actor.system(run.tenant_id)
    count = 0
    for name, order, _source, tags in ref.TAG_GROUPS:
        tag_group_create(actor=actor, name=name, order=order, tags=list(tags))
        count += 1 + len(tags)
        run.reporter.advance(1 + len(tags))
    return count


def demo_customers_insert(*, run: DemoRun) -> int:
    """Phase `customers`: customers with encrypted name, phone and address, plus their customer.created events."""
    plan, tenant_id = run.plan, run.tenant_id
    guide_ids = run.guide_ids
    name_indexes: dict[str, str] = {}  # names repeat a lot; the blind index of a name is deterministic

    def name_index(name: str) -> str:
        if name not in name_indexes:
            name_indexes[name] = pii.name_index(name)
        return name_indexes[name]

    rows = (
        (
            tenant_id,
            pii.encrypt(c.name, field="name"),
            name_index(c.name),
            pii.encrypt(c.phone, field="phone"),
            pii.phone_hash(c.phone) if c.phone else "",
            pii.encrypt(c.address, field="address"),
            c.gender,
            c.city,
            c.lifecycle_stage,
            c.intent_level,
            c.source,
            guide_ids[c.owner] if c.owner is not None else None,
            c.created_at,
            c.created_at,
        )
        for c in plan.customers
    )
    columns = (
        "tenant_id", "name_enc", "name_index", "phone_enc", "phone_hash", "address_enc", "gender", "city",
        "lifecycle_stage", "intent_level", "source", "owner_guide_id", "created_at", "updated_at",
    )  # fmt: skip
    count = rows_insert(model=Customer, columns=columns, rows=rows, on_rows=run.reporter.advance)
    ids = run.customer_ids
    events = (
        event_build(
            tenant_id=tenant_id,
            type="customer.created",
            customer_id=ids[c.index],
            occurred_at=c.created_at,
            properties={"source": c.source},
        )
        for c in plan.customers
    )
    return count + events_insert(events=events, on_rows=run.reporter.advance)


def demo_identities_insert(*, run: DemoRun) -> int:
    """Phase `identities`: WeCom, unionid, phone (as its keyed hash), member and shop buyer identities."""
    ids, tenant_id, customers = run.customer_ids, run.tenant_id, run.plan.customers

    def rows() -> Iterator[tuple[Any, ...]]:
        for c in customers:
            if c.phone:
                yield (tenant_id, ids[c.index], Identity.Kind.PHONE, pii.phone_hash(c.phone), c.created_at)
            for kind, value, since in c.identities:
                yield (tenant_id, ids[c.index], kind, value, since)

    columns = ("tenant_id", "customer_id", "kind", "value", "created_at")
    return rows_insert(model=Identity, columns=columns, rows=rows(), on_rows=run.reporter.advance)


def demo_follow_relations_insert(*, run: DemoRun) -> int:
    """Phase `follows`: guide ↔ customer friendships, with contact.added / contact.deleted_* events."""
    ids, tenant_id = run.customer_ids, run.tenant_id
    guide_ids = run.guide_ids
    follows = [(c, f) for c in run.plan.customers for f in c.follows]
    rows = (
        (tenant_id, ids[c.index], guide_ids[f.guide], c.external_userid, f.added_at, f.remark, f.add_way, f.state,
         f.status, f.deleted_at)
        for c, f in follows
    )  # fmt: skip
    columns = (
        "tenant_id", "customer_id", "guide_id", "external_userid", "added_at", "remark", "add_way", "state",
        "status", "deleted_at",
    )  # fmt: skip
    count = rows_insert(model=FollowRelation, columns=columns, rows=rows, on_rows=run.reporter.advance)

    def events() -> Iterator[Event]:
        for c, f in follows:
            guide_id = guide_ids[f.guide]
            yield event_build(
                tenant_id=tenant_id,
                type="contact.added",
                customer_id=ids[c.index],
                guide_id=guide_id,
                occurred_at=f.added_at,
                properties={"guide_id": guide_id, "add_way": f.add_way, "state": f.state},
            )
            if f.deleted_at is not None:
                by_customer = f.status == FollowRelation.Status.DELETED_BY_CUSTOMER
                yield event_build(
                    tenant_id=tenant_id,
                    type="contact.deleted_by_customer" if by_customer else "contact.deleted_by_guide",
                    customer_id=ids[c.index],
                    guide_id=guide_id,
                    occurred_at=f.deleted_at,
                    properties={"guide_id": guide_id},
                )

    return count + events_insert(events=events(), on_rows=run.reporter.advance)


def demo_customer_tags_insert(*, run: DemoRun) -> int:
    """Phase `customer_tags`: tags on customers with the source that applied them, plus tag.added events."""
    ids, tenant_id, guide_id = run.customer_ids, run.tenant_id, run.guide_lookup()
    tag_ids = run.tag_ids()
    tagged = [(c, t) for c in run.plan.customers for t in c.tags]
    rows = (
        (tenant_id, ids[c.index], tag_ids[(t.group, t.name)], t.source, t.rule, guide_id(t.guide), t.at)
        for c, t in tagged
    )
    columns = ("tenant_id", "customer_id", "tag_id", "source", "rule", "guide_id", "created_at")
    count = rows_insert(model=CustomerTag, columns=columns, rows=rows, on_rows=run.reporter.advance)
    events = (
        event_build(
            tenant_id=tenant_id,
            type="tag.added",
            customer_id=ids[c.index],
            occurred_at=t.at,
            properties={"tag_id": tag_ids[(t.group, t.name)], "tag": t.name, "source": t.source},
        )
        for c, t in tagged
    )
    return count + events_insert(events=events, on_rows=run.reporter.advance)


# Demo chat ids are numbered far beyond anything the emulator's own sequence reaches, so groups the simulator
# creates later never collide with them.
DEMO_CHAT_BASE = 10_000_000
JOIN_SCENE_QR = 3  # groupchat/get's join_scene: scanned the group's QR code


def demo_groups_insert(*, run: DemoRun) -> int:
    """Phase `groups`: the city member groups (客户群) with their owners and members, as WeCom lists them.

    Membership rows only: the joins' timeline events are the activity phase's (`group.joined`, which names them).
    """
    tenant_id, guide_ids, ids = run.tenant_id, run.guide_ids, run.customer_ids
    customers = run.plan.customers
    userids = {g.index: g.wecom_userid for g in run.org.guides}
    anchor = run.load.anchor
    groups = run.groups

    def member_version(group: GroupSpec) -> str:
        # WeCom's hash of the member list, as the emulator computes it (siyu.emulator.cgi.groupchat), so that a
        # sync of the demo brand finds every group unchanged.
        everyone = [userids[group.owner], *(customers[c].external_userid for c, _ in group.members)]
        return hashlib.md5(",".join(sorted(everyone)).encode(), usedforsecurity=False).hexdigest()

    group_rows = (
        (tenant_id, wecom_ids.chat_id(run.corp_id, DEMO_CHAT_BASE + g.index), g.name, guide_ids[g.owner], "",
         g.created_at, CustomerGroup.Status.ACTIVE, 1 + len(g.members), member_version(g), anchor)
        for g in groups
    )  # fmt: skip
    columns = (
        "tenant_id", "chat_id", "name", "owner_id", "notice", "created_at", "status", "member_count",
        "member_version", "updated_at",
    )  # fmt: skip
    count = rows_insert(model=CustomerGroup, columns=columns, rows=group_rows, on_rows=run.reporter.advance)
    group_ids = run.group_ids()

    def member_rows() -> Iterator[tuple[Any, ...]]:
        for g in groups:
            group_id = group_ids[g.name][0]
            owner = userids[g.owner]
            yield (tenant_id, group_id, GroupMember.Type.MEMBER, owner, None, guide_ids[g.owner], g.created_at, 1, "")
            for c, at in g.members:
                yield (tenant_id, group_id, GroupMember.Type.EXTERNAL, customers[c].external_userid, ids[c], None, at,
                       JOIN_SCENE_QR, "")  # fmt: skip

    columns = ("tenant_id", "group_id", "member_type", "userid", "customer_id", "guide_id", "join_time",
               "join_scene", "state")  # fmt: skip
    return count + rows_insert(model=GroupMember, columns=columns, rows=member_rows(), on_rows=run.reporter.advance)


def demo_activity_insert(*, run: DemoRun) -> int:
    """Phase `activity`: messages, opened materials, joined groups, check-ins and profile edits."""
    ids, tenant_id, guide_of, activity = run.customer_ids, run.tenant_id, run.guide_lookup(), run.activity
    groups = run.group_ids()

    def events() -> Iterator[Event]:
        for a in activity:
            guide_id = guide_of(a.guide)
            properties = {"guide_id": guide_id} if a.type == "message.received" else a.properties
            if a.type == "group.joined" and a.properties["group"] in groups:
                # As the groups context writes it (siyu.groups.services._joined), so the timeline links the group.
                group_id, chat_id = groups[str(a.properties["group"])]
                properties = {**a.properties, "group_id": group_id, "chat_id": chat_id, "join_scene": JOIN_SCENE_QR}
            yield event_build(
                tenant_id=tenant_id,
                type=a.type,
                customer_id=ids[a.customer],
                guide_id=guide_id,
                occurred_at=a.occurred_at,
                properties=properties,
            )

    return events_insert(events=events(), on_rows=run.reporter.advance)


def demo_orders_insert(*, run: DemoRun) -> int:
    """Phase `orders`: orders of every shop attributed to the first guide and its store, with order events."""
    ids, tenant_id, guide_id = run.customer_ids, run.tenant_id, run.guide_lookup()
    store_ids = run.store_ids()
    orders = run.plan.orders
    rows = (
        (tenant_id, ids[o.customer], o.shop, o.order_no, o.status, o.amount_cents, o.item_count, o.series,
         o.paid_at, guide_id(o.guide), store_ids[o.store_code] if o.store_code else None)
        for o in orders
    )  # fmt: skip
    columns = (
        "tenant_id", "customer_id", "shop", "order_no", "status", "amount_cents", "item_count", "product_series",
        "paid_at", "guide_id", "store_id",
    )  # fmt: skip
    count = rows_insert(model=Order, columns=columns, rows=rows, on_rows=run.reporter.advance)

    def events() -> Iterator[Event]:
        for o in orders:
            properties = {"order_no": o.order_no, "amount_cents": o.amount_cents, "shop": o.shop,
                          "product_series": o.series}  # fmt: skip
            common = {"tenant_id": tenant_id, "customer_id": ids[o.customer], "guide_id": guide_id(o.guide)}
            yield event_build(type="order.paid", occurred_at=o.paid_at, properties=properties, **common)
            if o.refunded_at is not None:
                yield event_build(type="order.refunded", occurred_at=o.refunded_at, properties=properties, **common)

    return count + events_insert(events=events(), on_rows=run.reporter.advance)


def demo_logins_create(*, run: DemoRun) -> int:
    """Phase `logins`: one login per role, password `siyu-demo`, through the core services."""
    tenant = Tenant.objects.get(pk=run.tenant_id)
    region = Region.objects.get(tenant=tenant, code=ref.LOGIN_REGION)
    store = Store.objects.get(tenant=tenant, code=ref.LOGIN_STORE)
    franchisee = Franchisee.objects.get(tenant=tenant, code=ref.LOGIN_FRANCHISEE)
    guide = Guide.objects.get(tenant=tenant, wecom_userid=ref.LOGIN_GUIDE)
    anchors: dict[str, dict[str, Any]] = {
        Role.HQ_ADMIN: {},
        Role.REGION_MANAGER: {"region": region},
        Role.STORE_MANAGER: {"store": store},
        Role.GUIDE: {"guide": guide},
        Role.FRANCHISEE: {"franchisee": franchisee},
    }
    count = 0
    for username, role in ref.LOGINS:
        try:
            user = core_services.user_create(username=username, password=ref.DEMO_PASSWORD)
        except Conflict:
            # Someone already has this login (another brand's demo, or a real admin): keep their password.
            user = get_user_model().objects.get(username=username)
        if not Membership.objects.filter(tenant=tenant, user=user).exists():
            core_services.membership_create(tenant=tenant, user=user, role=role, **anchors[role])
            count += 1
        if role == Role.GUIDE:
            # There is no service for linking a WeCom member to a login yet; the guide's own login sees its customers.
            Guide.objects.filter(pk=guide.pk).update(user=user)
        run.reporter.advance(1)
    return count


@dataclass(frozen=True)
class Phase:
    name: str
    label: str
    total: Callable[[DemoRun], int]
    write: Callable[..., int]  # keyword-only: write(run=...)


PHASES: tuple[Phase, ...] = (
    Phase("brand", "brand, regions, stores, guides", lambda r: len(r.org.stores) + len(r.org.guides),
          demo_brand_create),
    Phase("tags", "tag catalogue", lambda r: sum(1 + len(t) for *_, t in ref.TAG_GROUPS), demo_tags_create),
    # Totals that read r.plan generate it before the phase's bar appears (a spinner shows meanwhile).
    Phase("customers", "customers (+ events)", lambda r: 2 * len(r.plan.customers), demo_customers_insert),
    Phase("identities", "identities", lambda r: r.plan.identity_count, demo_identities_insert),
    Phase("follows", "follow relations (+ events)", lambda r: 2 * r.plan.follow_count + sum(
        1 for c in r.plan.customers for f in c.follows if f.deleted_at), demo_follow_relations_insert),
    Phase("customer_tags", "customer tags (+ events)", lambda r: 2 * r.plan.tag_count, demo_customer_tags_insert),
    Phase("groups", "customer groups and members", lambda r: sum(2 + len(g.members) for g in r.groups),
          demo_groups_insert),
    Phase("activity", "timeline activity", lambda r: len(r.activity), demo_activity_insert),
    Phase("orders", "orders (+ events)", lambda r: 2 * len(r.plan.orders) + sum(
        1 for o in r.plan.orders if o.refunded_at), demo_orders_insert),
    Phase("logins", "demo logins", lambda r: len(ref.LOGINS), demo_logins_create),
    # Last, so that a brand loaded before this phase existed gets its codes on the next `siyu demo`.
    Phase("acquisition", "live codes, group codes, fission", acquisition_total, demo_acquisition_create),
    Phase("operations", "segments, tagging rules, leads", operations_total, demo_operations_create),
)  # fmt: skip


@dataclass
class DemoLoadResult:
    load: DemoLoad
    already_loaded: bool
    phases: dict[str, int] = field(default_factory=dict)  # rows written by each phase run this time
    seconds: float = 0.0


def demo_load_start(*, slug: str, seed: int | None, customers: int | None, anchor: dt.datetime | None) -> DemoLoad:
    """The load record for `slug`, created on the first run; a resumed run must not change its parameters.

    Every run stamps `reloaded_at`, so the next `siyu serve` hands the WeCom emulator the brand afresh
    (siyu.demo.wecom.demo_emulator_attach), even when the load itself has nothing left to do.
    """
    with transaction.atomic():
        load = DemoLoad.objects.select_for_update().filter(slug=slug).first()
        if load is None:
            load = DemoLoad.objects.create(
                slug=slug,
                seed=ref.DEFAULT_SEED if seed is None else seed,
                customers=ref.DEFAULT_CUSTOMERS if customers is None else customers,
                anchor=local_midnight(anchor or timezone.now()),
            )
        elif (seed is not None and seed != load.seed) or (customers is not None and customers != load.customers):
            raise Conflict(
                f"demo brand {slug!r} was started with --seed {load.seed} --customers {load.customers}; "
                "run again with those values (or none) to finish it, or load into a fresh database",
                field="customers",
            )
        load.reloaded_at = timezone.now()
        load.save(update_fields=["reloaded_at"])
        existing = set(load.states.values_list("phase", flat=True))
        DemoLoadState.objects.bulk_create(
            [DemoLoadState(load=load, phase=p.name, position=i) for i, p in enumerate(PHASES) if p.name not in existing]
        )
    return load


def demo_load(
    *,
    slug: str = ref.BRAND_SLUG,
    seed: int | None = None,
    customers: int | None = None,
    anchor: dt.datetime | None = None,
    reporter: LoadReporter | None = None,
) -> DemoLoadResult:
    """Load the demo brand, or finish a load that stopped half-way; a finished load is left untouched.

    Each phase writes its rows and marks itself done in one durable transaction: a crash (even kill -9)
    rolls the running phase back completely, and the next run regenerates it identically from the seed.
    """
    if customers is not None and customers < 1:
        raise ValidationFailed("the demo brand needs at least one customer", field="customers")
    started = time.perf_counter()
    load = demo_load_start(slug=slug, seed=seed, customers=customers, anchor=anchor)
    states = list(load.states.all())
    pending = [s for s in states if not s.done]
    result = DemoLoadResult(load=load, already_loaded=not pending)
    if not pending:
        return result
    run = DemoRun(load, reporter or SilentReporter())
    phases = {p.name: p for p in PHASES}
    for state in states:
        if state.done:  # a resumed load: show what the interrupted run had already committed
            run.reporter.phase_already_done(state.phase, phases[state.phase].label, state.rows)
    if connection.vendor == "sqlite":
        # A million rows of indexes do not fit SQLite's default 2 MB page cache; 256 MB, this connection only.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA cache_size = -262144")
    for state in pending:
        phase = phases[state.phase]
        run.reporter.phase_started(phase.name, phase.label, phase.total(run))
        phase_started = time.perf_counter()
        # Held around the commit: the services queue their jobs when the phase's transaction commits.
        with jobs_held(), transaction.atomic(durable=True):
            rows = phase.write(run=run)
            seconds = time.perf_counter() - phase_started
            DemoLoadState.objects.filter(pk=state.pk).update(
                done=True, rows=rows, seconds=round(seconds, 3), finished_at=timezone.now()
            )
        run.reporter.phase_finished(phase.name, rows, seconds)
        result.phases[phase.name] = rows
    _analyze()
    load.finished_at = timezone.now()
    load.save(update_fields=["finished_at"])
    result.seconds = time.perf_counter() - started
    return result


class _HeldJobs(DummyBackend):
    """The job backend while a phase of the load runs: keeps what is enqueued in memory, and cannot defer a job,
    so the services leave their timed follow-ups to the worker's sweeps, as they do under the immediate backend."""

    supports_defer = False


@contextmanager
def jobs_held() -> Iterator[None]:
    """Hold back the jobs this thread enqueues within the block (a bulk load's).

    Timed follow-ups (a rebalance at midnight, a settle when a hold ends) are not queued at all: the services see a
    backend that cannot defer, and leave them to the worker's periodic sweeps, which read them from the rows. Jobs
    meant to run at once are queued when the block ends without an error: after the transaction it wraps committed.
    """
    real = task_backends[DEFAULT_TASK_BACKEND_ALIAS]
    held = _HeldJobs(DEFAULT_TASK_BACKEND_ALIAS, {"QUEUES": sorted(real.queues)})
    task_backends[DEFAULT_TASK_BACKEND_ALIAS] = held  # this thread's backend only (a connection handler)
    try:
        yield
    finally:
        task_backends[DEFAULT_TASK_BACKEND_ALIAS] = real
    for job in held.results:
        job.task.enqueue(*job.args, **job.kwargs)


_LOADED_TABLES: tuple[type[models.Model], ...] = (Customer, Identity, FollowRelation, CustomerTag, Event, Order)


def _analyze() -> None:
    """Refresh planner statistics after a million-row load, so the console's first queries use the indexes."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            names = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in _LOADED_TABLES)
            cursor.execute(f"ANALYZE {names}")
        else:
            # PRAGMA optimize does nothing on a fresh connection (SQLite 3.40); without sqlite_stat1 the planner
            # picks full scans and scoped list pages take seconds. A full ANALYZE costs about 0.4 s here.
            cursor.execute("ANALYZE")
