"""Reads of the inheritance context (客户继承), scoped by the acting user.

Who sees a transfer: HQ every transfer of the brand; region and store managers and franchisees those whose
handover guide is in their scope (the customers leaving it are theirs); guides none — inheritance is a manager's
tool. Who may start one: HQ, region and store managers (`can_start_transfers`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from siyu.core.errors import NotFound, PermissionDenied
from siyu.core.models import Guide, Role
from siyu.core.scopes import Actor
from siyu.core.selectors import guide_list
from siyu.customers.models import FollowRelation
from siyu.customers.selectors import CustomerCard, customer_card
from siyu.inheritance.models import Transfer, TransferGroupItem, TransferItem, UnassignedCustomer, UnassignedFetch

MANAGERS = frozenset({Role.HQ_ADMIN, Role.REGION_MANAGER, Role.STORE_MANAGER})
VIEWERS = MANAGERS | {Role.FRANCHISEE}


def can_start_transfers(actor: Actor) -> bool:
    return actor.role in MANAGERS


def require_manager(actor: Actor) -> None:
    if not can_start_transfers(actor):
        raise PermissionDenied("only HQ, region and store managers can hand customers to another guide")


def transfer_list(
    *, actor: Actor, status: str = "", kind: str = "", handover_guide_id: int | None = None
) -> QuerySet[Transfer]:
    """Transfers in scope, newest first, with their guides."""
    qs = Transfer.objects.filter(tenant_id=actor.tenant_id).select_related("handover", "takeover", "requested_by")
    if actor.role not in VIEWERS:
        return qs.none()
    if actor.guide_ids is not None:
        qs = qs.filter(handover_id__in=sorted(actor.guide_ids))
    if status:
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    if handover_guide_id:
        qs = qs.filter(handover_id=handover_guide_id)
    return qs.order_by("-created_at", "-id")


def access_transfer(*, actor: Actor, transfer_id: int) -> Transfer:
    """Fetch and authorise in one call: another brand's or an out-of-scope transfer is not found."""
    transfer = transfer_list(actor=actor).filter(id=transfer_id).first()
    if transfer is None:
        raise NotFound(f"transfer {transfer_id} not found", field="transfer_id")
    return transfer


def item_counts(transfer_ids: list[int]) -> dict[int, dict[str, int]]:
    """transfer id → {item status → count} (customers only), for a page of transfers in one query."""
    counts: dict[int, dict[str, int]] = {i: {} for i in transfer_ids}
    rows = (
        TransferItem.objects.filter(transfer_id__in=transfer_ids)
        .order_by()
        .values_list("transfer_id", "status")
        .annotate(n=Count("id"))
    )
    for transfer_id, status, n in rows:
        counts[transfer_id][status] = n
    return counts


@dataclass(frozen=True)
class TransferRow:
    """A transfer as lists show it: the row plus how many of its customers are in each status."""

    transfer: Transfer
    counts: dict[str, int]
    group_counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def group_total(self) -> int:
        return sum(self.group_counts.values())

    @property
    def groups_succeeded(self) -> int:
        return self.group_counts.get(TransferGroupItem.Status.SUCCEEDED, 0)


def transfer_rows(transfers: list[Transfer]) -> list[TransferRow]:
    ids = [t.id for t in transfers]
    counts = item_counts(ids)
    groups: dict[int, dict[str, int]] = {i: {} for i in ids}
    group_rows = TransferGroupItem.objects.filter(transfer_id__in=ids).order_by().values_list("transfer_id", "status")
    for transfer_id, status, n in group_rows.annotate(n=Count("id")):
        groups[transfer_id][status] = n
    return [TransferRow(transfer=t, counts=counts[t.id], group_counts=groups[t.id]) for t in transfers]


@dataclass(frozen=True)
class ItemRow:
    item: TransferItem
    customer: CustomerCard | None  # None when the customer was deleted since


@dataclass(frozen=True)
class TransferDetail:
    transfer: Transfer
    counts: dict[str, int]
    items: list[ItemRow]
    groups: list[TransferGroupItem]


def transfer_detail(*, actor: Actor, transfer_id: int) -> TransferDetail:
    """One transfer with every customer (masked) and group chat and its outcome."""
    transfer = access_transfer(actor=actor, transfer_id=transfer_id)
    items = list(TransferItem.objects.filter(transfer=transfer).select_related("customer__owner_guide").order_by("id"))
    groups = list(TransferGroupItem.objects.filter(transfer=transfer).select_related("group").order_by("id"))
    return TransferDetail(
        transfer=transfer,
        counts=dict(Counter(i.status for i in items)),
        items=[ItemRow(item=i, customer=customer_card(i.customer) if i.customer else None) for i in items],
        groups=groups,
    )


# -- choosing guides and customers -------------------------------------------------------------------------------


def handover_relations(*, actor: Actor, guide_id: int) -> QuerySet[FollowRelation]:
    """The WeCom customers a guide in scope follows now: what an inheritance can hand over."""
    guide = access_handover(actor=actor, guide_id=guide_id)
    return (
        FollowRelation.objects.filter(tenant_id=actor.tenant_id, guide=guide, status=FollowRelation.Status.ACTIVE)
        .exclude(external_userid="")
        .order_by("-added_at", "-id")
    )


def access_handover(*, actor: Actor, guide_id: int) -> Guide:
    """A guide in the actor's scope whose customers may be handed over."""
    guide = guide_list(actor=actor).filter(id=guide_id).first()
    if guide is None:
        raise NotFound(f"guide {guide_id} not found", field="handover_guide_id")
    return guide


def access_takeover(*, actor: Actor, guide_id: int) -> Guide:
    """A guide that may receive customers: one in the actor's scope, or the brand IP account, which serves the
    whole brand (so a store manager can hand a departed guide's customers to it)."""
    qs = Guide.objects.filter(tenant_id=actor.tenant_id, id=guide_id)
    if actor.guide_ids is not None:
        qs = qs.filter(Q(id__in=sorted(actor.guide_ids)) | Q(kind=Guide.Kind.BRAND_IP))
    guide = qs.first()
    if guide is None:
        raise NotFound(f"guide {guide_id} not found", field="takeover_guide_id")
    return guide


@dataclass(frozen=True)
class GuideChoice:
    guide: Guide
    customers: int  # active WeCom customers


def handover_choices(*, actor: Actor) -> list[GuideChoice]:
    """Guides in scope with their customer counts: departed guides first (their customers wait for an heir),
    then by most customers."""
    guides = guide_list(actor=actor).annotate(
        customers=Count(
            "follow_relations",
            filter=Q(follow_relations__status=FollowRelation.Status.ACTIVE, follow_relations__external_userid__gt=""),
        )
    )
    rows = [GuideChoice(guide=g, customers=g.customers) for g in guides]
    rows.sort(key=lambda r: (r.guide.status != Guide.Status.DEPARTED, -r.customers, r.guide.wecom_userid))
    return rows


def takeover_choices(*, actor: Actor) -> QuerySet[Guide]:
    """Active guides that may receive customers: those in scope, and the brand IP account."""
    qs = Guide.objects.filter(tenant_id=actor.tenant_id, status=Guide.Status.ACTIVE).select_related("store")
    if actor.guide_ids is not None:
        qs = qs.filter(Q(id__in=sorted(actor.guide_ids)) | Q(kind=Guide.Kind.BRAND_IP))
    return qs.order_by("-kind", "wecom_userid")  # "guide" > "brand_ip": guides first, the brand IP last


def brand_ip_guide(*, tenant_id: int) -> Guide | None:
    """The brand's IP account (官方IP), the heir of departed guides' customers; the oldest active one if several."""
    return (
        Guide.objects.filter(tenant_id=tenant_id, kind=Guide.Kind.BRAND_IP, status=Guide.Status.ACTIVE)
        .order_by("id")
        .first()
    )


# -- unassigned customers ----------------------------------------------------------------------------------------


def unassigned_list(*, actor: Actor, handover_guide_id: int | None = None) -> QuerySet[UnassignedCustomer]:
    """Departed guides' customers WeCom lists as unassigned (as of the last fetch), of guides in scope."""
    qs = UnassignedCustomer.objects.filter(tenant_id=actor.tenant_id).select_related("handover", "customer")
    if actor.role not in VIEWERS:
        return qs.none()
    if actor.guide_ids is not None:
        qs = qs.filter(handover_id__in=sorted(actor.guide_ids))
    if handover_guide_id:
        qs = qs.filter(handover_id=handover_guide_id)
    return qs.order_by("dimission_time", "handover_userid", "id")


def unassigned_fetch_state(*, actor: Actor) -> UnassignedFetch | None:
    return UnassignedFetch.objects.filter(tenant_id=actor.tenant_id).first()


def transfers_awaiting(*, tenant_id: int, takeover_userid: str, external_userid: str) -> list[int]:
    """Ids of the brand's transfers in which this customer waits to go to this WeCom member: what a transfer_fail
    callback (which names only the takeover member and the customer) may be about."""
    return sorted(
        TransferItem.objects.filter(
            tenant_id=tenant_id,
            external_userid=external_userid,
            status=TransferItem.Status.WAITING,
            transfer__takeover__wecom_userid=takeover_userid,
        )
        .values_list("transfer_id", flat=True)
        .distinct()
    )
