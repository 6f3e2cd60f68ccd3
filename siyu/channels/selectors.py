"""Reads of the channels context, scoped by tenant and the actor's data scope.

A live code is in an actor's scope when one of its guides is, or its store is (HQ sees every code). Stats are
computed from follow relations carrying the code's state, added while the code existed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from siyu.channels.models import LiveCode, LiveCodeGuide, QrBranding, WelcomeAsset, WelcomeMessage, WelcomeSend
from siyu.core.errors import NotFound
from siyu.core.models import Guide
from siyu.core.scopes import Actor
from siyu.customers.models import FollowRelation

RETENTION_DAYS = 7


def live_code_list(
    *, actor: Actor, status: str = "", purpose: str = "", q: str = "", include_deleted: bool = False
) -> QuerySet[LiveCode]:
    qs = LiveCode.objects.filter(tenant_id=actor.tenant_id).select_related("store", "fallback_guide")
    if not include_deleted:
        qs = qs.exclude(status=LiveCode.Status.DELETED)
    if actor.guide_ids is not None:
        guides = LiveCodeGuide.objects.filter(live_code=OuterRef("pk"), guide_id__in=actor.guide_ids)
        qs = qs.filter(Exists(guides) | Q(store_id__in=actor.store_ids or ()))
    if status:
        qs = qs.filter(status=status)
    if purpose:
        qs = qs.filter(purpose=purpose)
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(state=q))
    return qs.order_by("-created_at", "-id")


def access_live_code(*, actor: Actor, live_code_id: int) -> LiveCode:
    """The code, if it is in the actor's scope (deleted codes included: their history stays readable)."""
    code = live_code_list(actor=actor, include_deleted=True).filter(id=live_code_id).first()
    if code is None:
        raise NotFound(f"live code {live_code_id} not found", field="live_code_id")
    return code


def live_code_guides(code: LiveCode) -> list[LiveCodeGuide]:
    """Every guide of the code. Unscoped: for the services and public pages; people read `live_code_members`."""
    return list(LiveCodeGuide.objects.filter(live_code=code).select_related("guide", "guide__store"))


def live_code_members(*, actor: Actor, code: LiveCode) -> list[LiveCodeGuide]:
    """The code's guides the actor may see: a store manager sees a code shared with another store (through its own
    guide) but not who the other store's guides are."""
    qs = LiveCodeGuide.objects.filter(tenant_id=actor.tenant_id, live_code=code)
    if actor.guide_ids is not None:
        qs = qs.filter(guide_id__in=sorted(actor.guide_ids))
    return list(qs.select_related("guide", "guide__store").order_by("id"))


def live_code_next_users(*, actor: Actor, code: LiveCode) -> list[str]:
    """The WeCom members the next scan reaches, as far as the actor sees them (members of other stores left out)."""
    users = list(code.wecom_users)
    if actor.guide_ids is None or not users:
        return users
    seen = set(
        Guide.objects.filter(
            tenant_id=actor.tenant_id, id__in=sorted(actor.guide_ids), wecom_userid__in=users
        ).values_list("wecom_userid", flat=True)
    )
    return [u for u in users if u in seen]


def live_code_for_store(*, tenant_id: int, store_id: int) -> LiveCode | None:
    """The active store-purpose code of a store (the newest, if several), for the store-code landing page."""
    return (
        LiveCode.objects.filter(
            tenant_id=tenant_id, store_id=store_id, purpose=LiveCode.Purpose.STORE, status=LiveCode.Status.ACTIVE
        )
        .exclude(config_id="")
        .order_by("-created_at", "-id")
        .first()
    )


def live_code_qr_url(code: LiveCode, fmt: str = "png") -> str:
    """A public, unguessable URL of the code's QR picture (png or svg), for landing pages and posters."""
    return reverse("console:channel_qr_public", kwargs={"token": code.qr_token, "fmt": fmt})


def live_code_by_qr_token(*, token: str) -> LiveCode | None:
    return LiveCode.objects.filter(qr_token=token).exclude(status=LiveCode.Status.DELETED).exclude(config_id="").first()


def live_code_link(code: LiveCode) -> str:
    """What the QR encodes: WeCom's contact-way link (the qr_code URL), which WeChat opens to add the guide."""
    return code.qr_code or f"https://work.weixin.qq.com/ca/{code.config_id or code.state}"


def qr_branding(*, tenant_id: int) -> QrBranding | None:
    return QrBranding.objects.filter(tenant_id=tenant_id).first()


def welcome_messages(*, actor: Actor) -> QuerySet[WelcomeMessage]:
    """The default and per-guide welcome messages the actor may see (per-code ones show with their code)."""
    qs = WelcomeMessage.objects.filter(tenant_id=actor.tenant_id).exclude(scope=WelcomeMessage.Scope.CODE)
    if actor.guide_ids is not None:
        qs = qs.filter(Q(scope=WelcomeMessage.Scope.DEFAULT) | Q(guide_id__in=actor.guide_ids))
    return qs.select_related("guide").order_by("scope", "guide__name")


def welcome_for_code(code: LiveCode) -> WelcomeMessage | None:
    return WelcomeMessage.objects.filter(
        tenant_id=code.tenant_id, scope=WelcomeMessage.Scope.CODE, live_code=code
    ).first()


def welcome_assets(*, actor: Actor) -> QuerySet[WelcomeAsset]:
    return WelcomeAsset.objects.filter(tenant_id=actor.tenant_id).defer("content").order_by("-created_at")


def welcome_send_list(*, actor: Actor, live_code_id: int | None = None, status: str = "") -> QuerySet[WelcomeSend]:
    """Welcome sends of guides in scope, newest first (a code's, or the failures list with status=failed).

    A code another brand's or outside the scope is not found (404), never an empty page confirming nothing."""
    qs = WelcomeSend.objects.filter(tenant_id=actor.tenant_id).select_related("guide", "live_code", "welcome_message")
    if actor.guide_ids is not None:
        qs = qs.filter(guide_id__in=actor.guide_ids)
    if live_code_id is not None:
        qs = qs.filter(live_code_id=access_live_code(actor=actor, live_code_id=live_code_id).id)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


# -- stats ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayStat:
    day: dt.date
    adds: int
    deletes: int
    net: int


@dataclass(frozen=True)
class GuideStat:
    guide_id: int
    name: str
    adds: int
    deletes: int
    active: int


@dataclass(frozen=True)
class CodeStats:
    adds: int
    deletes: int
    net: int
    retention_7d: float | None  # share of customers added ≥ 7 days ago still following 7 days after their add
    retention_base: int  # how many adds that share is computed over
    by_day: list[DayStat]
    by_guide: list[GuideStat]
    sends: dict[str, int]


def _relations(actor: Actor, code: LiveCode) -> QuerySet[FollowRelation]:
    # WeCom's add times have whole seconds: an add in the second the code was made counts.
    since = code.created_at.replace(microsecond=0)
    qs = FollowRelation.objects.filter(tenant_id=code.tenant_id, state=code.state, added_at__gte=since)
    if code.deleted_at is not None:
        qs = qs.filter(added_at__lt=code.deleted_at)
    if actor.guide_ids is not None:
        qs = qs.filter(guide_id__in=actor.guide_ids)
    return qs


def live_code_stats(*, actor: Actor, live_code_id: int, days: int = 30, now: dt.datetime | None = None) -> CodeStats:
    """Adds, deletes, net adds, 7-day retention, per day (the last `days`) and per guide, from follow relations.

    A delete is a relation of the code that ended (by either side). Retention over day d's adds is the share
    still following at d + 7 (not deleted, or deleted later); only adds at least 7 days old count.
    """
    code = access_live_code(actor=actor, live_code_id=live_code_id)
    now = now or timezone.now()
    rels = _relations(actor, code)
    ended = Q(deleted_at__isnull=False)
    totals = rels.aggregate(adds=Count("id"), deletes=Count("id", filter=ended))
    since = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=days - 1)
    added = dict(
        rels.filter(added_at__gte=since)
        .annotate(day=TruncDate("added_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    deleted = dict(
        rels.filter(deleted_at__gte=since)
        .annotate(day=TruncDate("deleted_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    by_day = []
    for i in range(days):
        day = (since + dt.timedelta(days=i)).date()
        a, d = added.get(day, 0), deleted.get(day, 0)
        by_day.append(DayStat(day, a, d, a - d))
    # Retention: of the adds at least 7 days old, those not deleted within 7 days of their add. Computed in Python
    # over two columns: the per-row "deleted_at < added_at + 7 days" comparison differs between SQLite and PostgreSQL.
    window = dt.timedelta(days=RETENTION_DAYS)
    base = kept = 0
    for added_at, deleted_at in rels.filter(added_at__lte=now - window).values_list("added_at", "deleted_at"):
        base += 1
        if deleted_at is None or deleted_at >= added_at + window:
            kept += 1
    guides = dict(Guide.objects.filter(tenant_id=code.tenant_id).values_list("id", "name"))
    by_guide = [
        GuideStat(
            guide_id=row["guide_id"],
            name=guides.get(row["guide_id"], ""),
            adds=row["adds"],
            deletes=row["deletes"],
            active=row["adds"] - row["deletes"],
        )
        for row in rels.values("guide_id")
        .annotate(adds=Count("id"), deletes=Count("id", filter=ended))
        .order_by("-adds", "guide_id")
    ]
    sends = dict(
        welcome_send_list(actor=actor, live_code_id=code.id)
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return CodeStats(
        adds=totals["adds"],
        deletes=totals["deletes"],
        net=totals["adds"] - totals["deletes"],
        retention_7d=(kept / base) if base else None,
        retention_base=base,
        by_day=by_day,
        by_guide=by_guide,
        sends=sends,
    )


def live_code_adds(*, actor: Actor, live_code_id: int) -> QuerySet[FollowRelation]:
    """The follow relations attributed to the code, newest first (the detail page's recent adds)."""
    code = access_live_code(actor=actor, live_code_id=live_code_id)
    return _relations(actor, code).select_related("guide", "customer").order_by("-added_at", "-id")


def live_code_add_counts(*, actor: Actor, codes: list[LiveCode]) -> dict[int, tuple[int, int]]:
    """(adds, deletes) per code of a list page, in one query per code (the page shows 25)."""
    result = {}
    for code in codes:
        agg = _relations(actor, code).aggregate(
            adds=Count("id"), deletes=Count("id", filter=Q(deleted_at__isnull=False))
        )
        result[code.id] = (agg["adds"], agg["deletes"])
    return result
