"""Lifecycle stages (客户生命周期): the brand's configuration, the automatic rules, moves by hand, and the kanban.

Stages run new → engaged → first purchase → repeat → dormant → lost. The rules, in order of precedence:

- lost: every guide relation has ended (deleted either way), or no activity for `lost_days`;
- dormant: no activity for `dormant_days`;
- repeat: at least two paid orders; first purchase: exactly one;
- engaged: an interaction (chat, material opened, check-in, campaign, group, store locator) within `engaged_days`;
- new: none of the above.

"Activity" is the latest of the last interaction, the last paid order and the customer's creation, so a customer
added yesterday is not dormant. A customer moved by hand keeps that stage for `hold_days` (`stage_held_until`);
a stage that is disabled receives nobody from the rules. Every move appends `customer.stage_changed`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Case, Count, DateTimeField, F, IntegerField, Max, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models import When as DbWhen
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.analytics.models import Event
from siyu.analytics.services import event_build, event_bulk_record, event_record
from siyu.core.errors import Conflict, PermissionDenied, ValidationFailed
from siyu.core.jobs import enqueue_on_commit
from siyu.core.scopes import Actor
from siyu.core.services import audit_record
from siyu.customers.models import Customer, FollowRelation, LifecycleConfig, LifecycleStage
from siyu.customers.selectors import access_customer, customer_card, customer_scope

# Events that count as the customer interacting with the brand (the "engaged" rule and "last interaction").
INTERACTION_TYPES = (
    "message.received",
    "material.opened",
    "checkin.done",
    "campaign.joined",
    "campaign.invited",
    "group.joined",
    "storecode.visited",
    "contact.added",
    "order.paid",
)
PAID_STATUSES = ("paid", "completed")
DEFAULT_COLORS = {
    LifecycleStage.NEW: "#64748b",
    LifecycleStage.ENGAGED: "#0ea5e9",
    LifecycleStage.FIRST_PURCHASE: "#22c55e",
    LifecycleStage.REPEAT: "#15803d",
    LifecycleStage.DORMANT: "#f59e0b",
    LifecycleStage.LOST: "#ef4444",
}
MAX_DAYS = 3650
MAX_STAGE_NAME = 20
RUN_EVERY = dt.timedelta(days=1)
BOARD_PAGE = 20


@dataclass(frozen=True)
class StageSetting:
    stage: str
    name: str
    color: str
    enabled: bool


def _default_stages() -> list[dict[str, Any]]:
    return [{"stage": s.value, "name": "", "color": DEFAULT_COLORS[s], "enabled": True} for s in LifecycleStage]


def lifecycle_config_get(*, tenant_id: int) -> LifecycleConfig:
    """The brand's configuration; the defaults (unsaved) until HQ saves one."""
    config = LifecycleConfig.objects.filter(tenant_id=tenant_id).first()
    if config is None:
        config = LifecycleConfig(tenant_id=tenant_id, stages=_default_stages(), updated_at=timezone.now())
    return config


def stage_settings(config: LifecycleConfig) -> list[StageSetting]:
    """Every stage in display order, with its shown name (the brand's, else the built-in translated one)."""
    labels = dict(LifecycleStage.choices)
    return [
        StageSetting(
            stage=row["stage"],
            name=row.get("name") or str(labels[row["stage"]]),
            color=row.get("color") or DEFAULT_COLORS[LifecycleStage(row["stage"])],
            enabled=bool(row.get("enabled", True)),
        )
        for row in config.stages or _default_stages()
    ]


def require_lifecycle_admin(actor: Actor) -> None:
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ configures the lifecycle")


def _clean_days(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        raise ValidationFailed(f"{field} must be a whole number of days from 1 to {MAX_DAYS}", field=field)
    return value


def _clean_stages(rows: Any) -> list[dict[str, Any]]:
    # Malformed rows are 422s; well-formed lists that do not make a board (a stage twice or missing, none
    # enabled) are 409s, as the API's schema cannot say so.
    if not isinstance(rows, list):
        raise ValidationFailed("stages must be a list", field="stages")
    seen: list[str] = []
    cleaned = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or row.get("stage") not in LifecycleStage.values:
            raise ValidationFailed(f"stages[{i}].stage is not a lifecycle stage", field="stages")
        if row["stage"] in seen:
            raise Conflict(f"stage {row['stage']} is listed twice", field="stages")
        seen.append(row["stage"])
        name = str(row.get("name") or "").strip()
        if len(name) > MAX_STAGE_NAME:
            raise ValidationFailed(f"a stage name is at most {MAX_STAGE_NAME} characters", field="stages")
        color = str(row.get("color") or DEFAULT_COLORS[LifecycleStage(row["stage"])])
        if not (len(color) == 7 and color[0] == "#" and all(c in "0123456789abcdefABCDEF" for c in color[1:])):
            raise ValidationFailed("a stage colour is #rrggbb", field="stages")
        cleaned.append({"stage": row["stage"], "name": name, "color": color, "enabled": bool(row.get("enabled", True))})
    if sorted(seen) != sorted(LifecycleStage.values):
        raise Conflict("stages must list every lifecycle stage once", field="stages")
    if not any(r["enabled"] for r in cleaned):
        raise Conflict("at least one stage must be enabled", field="stages")
    return cleaned


@transaction.atomic
def lifecycle_config_update(*, actor: Actor, changes: dict[str, Any]) -> LifecycleConfig:
    """HQ changes the stages (order, names, colours, enabled) and the rules' thresholds; audited."""
    require_lifecycle_admin(actor)
    config = lifecycle_config_get(tenant_id=actor.tenant_id)
    unknown = set(changes) - {"stages", "engaged_days", "dormant_days", "lost_days", "hold_days"}
    if unknown:
        raise ValidationFailed(f"unknown field {sorted(unknown)[0]}", field=sorted(unknown)[0])
    if "stages" in changes:
        config.stages = _clean_stages(changes["stages"])
    for field in ("engaged_days", "dormant_days", "lost_days", "hold_days"):
        if field in changes:
            setattr(config, field, _clean_days(changes[field], field))
    if config.dormant_days > config.lost_days:
        raise Conflict("dormant_days must not exceed lost_days", field="dormant_days")
    if not config.stages:
        config.stages = _default_stages()
    config.updated_at = timezone.now()
    if config.next_run_at is None:
        config.next_run_at = config.updated_at
    config.save()
    detail = {k: changes[k] for k in sorted(changes) if k != "stages"} | {"stages": "stages" in changes}
    audit_record(
        actor=actor, action="lifecycle.configure", target_type="lifecycle_config", target_id=config.id, detail=detail
    )
    return config


@dataclass(frozen=True)
class Move:
    customer_id: int
    from_stage: str
    to_stage: str


def _target_stage(config: LifecycleConfig, now: dt.datetime) -> Case:
    """The stage the rules give each customer, as one SQL CASE over annotated columns (see module docstring)."""
    return Case(
        DbWhen(
            Q(had_relations__gt=0, active_relations=0) | Q(last_activity__lt=now - dt.timedelta(days=config.lost_days)),
            then=Value(LifecycleStage.LOST.value),
        ),
        DbWhen(
            last_activity__lt=now - dt.timedelta(days=config.dormant_days), then=Value(LifecycleStage.DORMANT.value)
        ),
        DbWhen(paid_orders__gte=2, then=Value(LifecycleStage.REPEAT.value)),
        DbWhen(paid_orders=1, then=Value(LifecycleStage.FIRST_PURCHASE.value)),
        DbWhen(
            last_interaction__gte=now - dt.timedelta(days=config.engaged_days), then=Value(LifecycleStage.ENGAGED.value)
        ),
        default=Value(LifecycleStage.NEW.value),
    )


def _rules_queryset(*, tenant_id: int, config: LifecycleConfig, now: dt.datetime) -> QuerySet[Customer]:
    from siyu.commerce.models import Order  # commerce builds on customers: import late

    interactions = (
        Event.objects.filter(tenant_id=tenant_id, customer_id=OuterRef("pk"), type__in=INTERACTION_TYPES)
        .order_by()
        .values("customer_id")
        .annotate(m=Max("occurred_at"))
        .values("m")
    )
    orders = Order.objects.filter(tenant_id=tenant_id, customer_id=OuterRef("pk"), status__in=PAID_STATUSES).order_by()
    paid_count = orders.values("customer_id").annotate(n=Count("id")).values("n")
    last_paid = orders.values("customer_id").annotate(m=Max("paid_at")).values("m")
    relations = FollowRelation.objects.filter(tenant_id=tenant_id, customer_id=OuterRef("pk")).order_by()
    had = relations.values("customer_id").annotate(n=Count("id")).values("n")
    active = (
        relations.filter(status=FollowRelation.Status.ACTIVE).values("customer_id").annotate(n=Count("id")).values("n")
    )
    epoch = Value(dt.datetime(1970, 1, 1, tzinfo=dt.UTC), output_field=DateTimeField())
    return (
        Customer.objects.filter(tenant_id=tenant_id, merged_into__isnull=True)
        .filter(Q(stage_held_until__isnull=True) | Q(stage_held_until__lte=now))
        .annotate(
            last_interaction=Subquery(interactions, output_field=DateTimeField()),
            last_paid=Subquery(last_paid, output_field=DateTimeField()),
            paid_orders=Coalesce(Subquery(paid_count, output_field=IntegerField()), 0),
            had_relations=Coalesce(Subquery(had, output_field=IntegerField()), 0),
            active_relations=Coalesce(Subquery(active, output_field=IntegerField()), 0),
        )
        .annotate(
            last_activity=Greatest(F("created_at"), Coalesce("last_interaction", epoch), Coalesce("last_paid", epoch))
        )
        .annotate(target=_target_stage(config, now))
    )


def lifecycle_rules_preview(*, tenant_id: int, now: dt.datetime | None = None) -> list[Move]:
    """The moves the rules would make now (customers whose rule stage differs from their stage), by id."""
    config = lifecycle_config_get(tenant_id=tenant_id)
    enabled = [s.stage for s in stage_settings(config) if s.enabled]
    qs = _rules_queryset(tenant_id=tenant_id, config=config, now=now or timezone.now())
    rows = (
        qs.exclude(target=F("lifecycle_stage"))
        .filter(target__in=enabled)
        .values_list("id", "lifecycle_stage", "target")
    )
    return [Move(customer_id=i, from_stage=f, to_stage=t) for i, f, t in rows.order_by("id")]


@transaction.atomic
def lifecycle_recompute(*, tenant_id: int, now: dt.datetime | None = None) -> int:
    """Apply the rules to the whole brand, set-based: one read of the moves, one UPDATE per target stage, one bulk
    insert of events. Idempotent: a second run moves nobody. Schedules the next nightly run. Returns the moves."""
    now = now or timezone.now()
    moves = lifecycle_rules_preview(tenant_id=tenant_id, now=now)
    by_target: dict[str, list[int]] = {}
    for move in moves:
        by_target.setdefault(move.to_stage, []).append(move.customer_id)
    for stage, ids in by_target.items():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            Customer.objects.filter(tenant_id=tenant_id, id__in=chunk).update(lifecycle_stage=stage, updated_at=now)
    event_bulk_record(
        events=(
            event_build(
                tenant_id=tenant_id,
                type="customer.stage_changed",
                customer_id=m.customer_id,
                occurred_at=now,
                properties={"from": m.from_stage, "to": m.to_stage, "by": "rule"},
            )
            for m in moves
        )
    )
    config = lifecycle_config_get(tenant_id=tenant_id)
    config.last_run_at, config.last_moved, config.next_run_at = now, len(moves), now + RUN_EVERY
    config.updated_at = config.updated_at or now
    config.save()
    return len(moves)


def lifecycle_run_request(*, actor: Actor) -> None:
    """HQ's "run now": the rules run in a job after commit; audited."""
    from siyu.customers.tasks import lifecycle_recompute_run

    require_lifecycle_admin(actor)
    audit_record(actor=actor, action="lifecycle.run", target_type="tenant", target_id=actor.tenant_id)
    enqueue_on_commit(lifecycle_recompute_run, actor.tenant_id)


def lifecycle_due(*, now: dt.datetime | None = None) -> int:
    """Enqueue a rules run for every brand whose `next_run_at` has passed (the worker's sweep calls this)."""
    from siyu.customers.tasks import lifecycle_recompute_run

    now = now or timezone.now()
    due = list(LifecycleConfig.objects.filter(next_run_at__lte=now).values_list("tenant_id", flat=True))
    for tenant_id in due:
        # Claim: push next_run_at on first, so two workers' sweeps enqueue one run.
        claimed = LifecycleConfig.objects.filter(tenant_id=tenant_id, next_run_at__lte=now).update(
            next_run_at=now + RUN_EVERY
        )
        if claimed:
            enqueue_on_commit(lifecycle_recompute_run, tenant_id)
    return len(due)


@transaction.atomic
def customer_stage_move(*, actor: Actor, customer_id: int, stage: str) -> Customer:
    """Move a customer by hand (kanban drag or API); the stage holds `hold_days` against the rules. Audited.

    Out-of-scope and other brands' customers are not found; a disabled or unknown stage is refused.
    """
    if stage not in LifecycleStage.values:
        raise ValidationFailed(f"unknown lifecycle stage {stage!r}", field="stage")
    config = lifecycle_config_get(tenant_id=actor.tenant_id)
    if not any(s.stage == stage and s.enabled for s in stage_settings(config)):
        raise Conflict(f"lifecycle stage {stage} is disabled", field="stage")
    customer = access_customer(actor=actor, customer_id=customer_id, for_update=True)
    now = timezone.now()
    before = customer.lifecycle_stage
    customer.lifecycle_stage = stage
    customer.stage_held_until = now + dt.timedelta(days=config.hold_days)
    customer.updated_at = now
    customer.save(update_fields=["lifecycle_stage", "stage_held_until", "updated_at"])
    if before != stage:
        event_record(
            tenant_id=actor.tenant_id,
            type="customer.stage_changed",
            customer_id=customer.id,
            actor_id=actor.user_id,
            occurred_at=now,
            properties={"from": before, "to": stage, "by": "hand"},
        )
    detail = {"from": before, "to": stage, "held_until": customer.stage_held_until.isoformat()}
    audit_record(
        actor=actor, action="customer.stage_move", target_type="customer", target_id=customer.id, detail=detail
    )
    return customer


# -- the kanban ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoardCard:
    id: int
    name_masked: str
    owner_guide_name: str
    last_interaction_at: dt.datetime | None
    held_until: dt.datetime | None


@dataclass(frozen=True)
class BoardColumn:
    stage: str
    name: str
    color: str
    count: int
    cards: list[BoardCard]
    offset: int

    @property
    def more(self) -> bool:
        return self.offset + len(self.cards) < self.count

    @property
    def next_offset(self) -> int:
        return self.offset + len(self.cards)


def stage_counts(*, actor: Actor) -> dict[str, int]:
    """Customers per stage within the actor's data scope (one GROUP BY)."""
    rows = customer_scope(actor=actor).order_by().values("lifecycle_stage").annotate(n=Count("id"))
    counts = dict.fromkeys(LifecycleStage.values, 0)
    counts.update({r["lifecycle_stage"]: r["n"] for r in rows})
    return counts


def stage_cards(*, actor: Actor, stage: str, offset: int = 0, limit: int = BOARD_PAGE) -> list[BoardCard]:
    """One column's page of cards, most recently created first, masked."""
    last = (
        Event.objects.filter(tenant_id=actor.tenant_id, customer_id=OuterRef("pk"), type__in=INTERACTION_TYPES)
        .order_by()
        .values("customer_id")
        .annotate(m=Max("occurred_at"))
        .values("m")
    )
    rows = (
        customer_scope(actor=actor)
        .filter(lifecycle_stage=stage)
        .select_related("owner_guide")
        .annotate(last_interaction=Subquery(last, output_field=DateTimeField()))
        .order_by("-created_at", "-id")[offset : offset + limit]
    )
    return [
        BoardCard(
            id=c.id,
            name_masked=customer_card(c).name_masked,
            owner_guide_name=c.owner_guide.name if c.owner_guide else "",
            last_interaction_at=c.last_interaction,  # type: ignore[attr-defined]
            held_until=c.stage_held_until if c.stage_held_until and c.stage_held_until > timezone.now() else None,
        )
        for c in rows
    ]


def lifecycle_board(*, actor: Actor) -> list[BoardColumn]:
    """The kanban: one column per enabled stage, in the brand's order, with counts and the first page of cards."""
    config = lifecycle_config_get(tenant_id=actor.tenant_id)
    counts = stage_counts(actor=actor)
    return [
        BoardColumn(
            stage=s.stage,
            name=s.name,
            color=s.color,
            count=counts[s.stage],
            cards=stage_cards(actor=actor, stage=s.stage) if counts[s.stage] else [],
            offset=0,
        )
        for s in stage_settings(config)
        if s.enabled
    ]


def hold_note(config: LifecycleConfig) -> str:
    return _("A customer moved by hand keeps that stage for %(days)d days before the rules may move them again.") % {
        "days": config.hold_days
    }
