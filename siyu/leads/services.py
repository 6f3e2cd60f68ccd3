"""Writes of the leads context (线索): create with dedupe, assign and reassign, claim from the public pool (公海),
follow up, and the sweep that returns leads nobody followed up in time to the pool. Every change is audited."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.core import pii
from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.core.jobs import enqueue_on_commit
from siyu.core.models import Guide, Role
from siyu.core.scopes import Actor
from siyu.core.services import audit_record
from siyu.leads.models import Lead, LeadSettings
from siyu.leads.selectors import access_lead, pool_after_days

MAX_NAME = 64
MAX_SOURCE = 64
MAX_POOL_DAYS = 365
CLOSED = (Lead.Status.CONVERTED, Lead.Status.INVALID)


def _text(value: str, *, field: str, max_length: int) -> str:
    cleaned = (value or "").strip()
    if len(cleaned) > max_length or "\x00" in cleaned:
        raise ValidationFailed(f"{field} must be at most {max_length} characters of text", field=field)
    return cleaned


def _due(tenant_id: int, now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(days=pool_after_days(tenant_id=tenant_id))


def _guide_in_scope(actor: Actor, guide_id: int) -> Guide:
    guide = Guide.objects.filter(tenant_id=actor.tenant_id, id=guide_id, status=Guide.Status.ACTIVE).first()
    if guide is None or (actor.guide_ids is not None and guide.id not in actor.guide_ids):
        raise NotFound(f"guide {guide_id} not found", field="guide_id")
    return guide


@transaction.atomic
def lead_create(
    *,
    actor: Actor,
    name: str = "",
    phone: str = "",
    unionid: str = "",
    source: str = "",
    intent_level: int = 0,
) -> Lead:
    """A new lead; one per phone and per unionid in the brand (409 naming the field otherwise).

    A guide's lead is the guide's own; anyone else's starts in the public pool.
    """
    name = _text(name, field="name", max_length=MAX_NAME)
    source = _text(source, field="source", max_length=MAX_SOURCE)
    phone = (phone or "").strip()
    unionid = _text(unionid, field="unionid", max_length=128)
    if phone and len(pii.normalize_phone(phone)) != 11:
        raise ValidationFailed("phone must be an 11-digit mainland mobile number", field="phone")
    if not phone and not unionid:
        raise ValidationFailed("a lead needs a phone or a unionid", field="phone")
    if isinstance(intent_level, bool) or not 0 <= intent_level <= 5:
        raise ValidationFailed("intent_level must be 0-5", field="intent_level")
    phone_hash = pii.phone_hash(phone) if phone else ""
    unionid_hash = pii.lookup_hash(unionid, kind="lead_unionid") if unionid else ""
    for field, column, value in (("phone", "phone_hash", phone_hash), ("unionid", "unionid_hash", unionid_hash)):
        if value and Lead.objects.filter(tenant_id=actor.tenant_id, **{column: value}).exists():
            raise Conflict(f"a lead with this {field} already exists", field=field)
    now = timezone.now()
    owner = actor.guide_id if actor.role == Role.GUIDE and actor.guide_id else None
    try:
        with transaction.atomic():
            lead = Lead.objects.create(
                tenant_id=actor.tenant_id,
                name_enc=pii.encrypt(name, field="name"),
                phone_enc=pii.encrypt(pii.normalize_phone(phone), field="phone") if phone else "",
                phone_hash=phone_hash,
                unionid_hash=unionid_hash,
                source=source,
                intent_level=intent_level,
                owner_guide_id=owner,
                assigned_at=now if owner else None,
                pool_due_at=_due(actor.tenant_id, now) if owner else None,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError as exc:  # a concurrent create of the same person won the race
        raise Conflict("a lead with this phone or unionid already exists", field="phone") from exc
    audit_record(actor=actor, action="lead.create", target_type="lead", target_id=lead.id,
                 detail={"source": source, "owner_guide_id": owner})  # fmt: skip
    return lead


@transaction.atomic
def lead_assign(*, actor: Actor, lead_id: int, guide_id: int) -> Lead:
    """Assign (or reassign) a lead to a guide in the actor's scope (分配). Managers and HQ; not guides."""
    if actor.role == Role.GUIDE:
        raise PermissionDenied("guides claim leads from the pool; they do not assign them")
    lead = access_lead(actor=actor, lead_id=lead_id, for_update=True)
    guide = _guide_in_scope(actor, guide_id)
    if lead.status in CLOSED:
        raise Conflict(f"the lead is {lead.status}: reopen it by following it up first", field="lead_id")
    previous = lead.owner_guide_id
    now = timezone.now()
    lead.owner_guide = guide
    lead.assigned_at = now
    lead.pool_due_at = _due(actor.tenant_id, now)
    lead.updated_at = now
    lead.save(update_fields=["owner_guide", "assigned_at", "pool_due_at", "updated_at"])
    audit_record(actor=actor, action="lead.assign", target_type="lead", target_id=lead.id,
                 detail={"from_guide_id": previous, "to_guide_id": guide.id})  # fmt: skip
    return lead


@transaction.atomic
def lead_claim(*, actor: Actor, lead_id: int, guide_id: int | None = None) -> Lead:
    """Take a lead from the public pool (认领): a guide for themselves, a manager or HQ for a guide in their scope.
    409 when the lead is no longer in the pool (someone else was first)."""
    if actor.role == Role.GUIDE:
        if not actor.guide_id or guide_id not in (None, actor.guide_id):
            raise PermissionDenied("guides claim leads for themselves only")
        owner = actor.guide_id
    else:
        if guide_id is None:
            raise ValidationFailed("guide_id is required: which guide takes the lead", field="guide_id")
        owner = _guide_in_scope(actor, guide_id).id
    lead = access_lead(actor=actor, lead_id=lead_id)
    now = timezone.now()
    # Conditional update: of two claims at once, exactly one changes the row.
    claimed = (
        Lead.objects.filter(id=lead.id, owner_guide__isnull=True)
        .exclude(status__in=CLOSED)
        .update(owner_guide_id=owner, assigned_at=now, pool_due_at=_due(actor.tenant_id, now), updated_at=now)
    )
    if not claimed:
        raise Conflict("the lead is not in the pool any more", field="lead_id")
    audit_record(actor=actor, action="lead.claim", target_type="lead", target_id=lead.id,
                 detail={"guide_id": owner})  # fmt: skip
    return Lead.objects.select_related("owner_guide").get(id=lead.id)


@transaction.atomic
def lead_follow_up(*, actor: Actor, lead_id: int, status: str = Lead.Status.FOLLOWING) -> Lead:
    """Record a follow-up (跟进): the owner (or a manager over them) keeps the lead for another N days; converting
    or invalidating it closes it (it never returns to the pool)."""
    lead = access_lead(actor=actor, lead_id=lead_id, for_update=True)
    if status not in (Lead.Status.FOLLOWING, *CLOSED):
        raise ValidationFailed(f"status must be following, converted or invalid, not {status!r}", field="status")
    if lead.owner_guide_id is None:
        raise Conflict("the lead is in the pool: claim or assign it first", field="lead_id")
    if actor.role == Role.GUIDE and lead.owner_guide_id != actor.guide_id:
        raise NotFound(f"lead {lead_id} not found", field="lead_id")
    now = timezone.now()
    lead.status = status
    lead.last_followup_at = now
    lead.pool_due_at = None if status in CLOSED else _due(actor.tenant_id, now)
    lead.updated_at = now
    lead.save(update_fields=["status", "last_followup_at", "pool_due_at", "updated_at"])
    audit_record(actor=actor, action="lead.follow_up", target_type="lead", target_id=lead.id,
                 detail={"status": status})  # fmt: skip
    return lead


@transaction.atomic
def lead_settings_update(*, actor: Actor, pool_after_days: int) -> LeadSettings:
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ changes the lead settings")
    if isinstance(pool_after_days, bool) or not 1 <= pool_after_days <= MAX_POOL_DAYS:
        raise ValidationFailed(f"pool_after_days must be 1-{MAX_POOL_DAYS}", field="pool_after_days")
    settings, _ = LeadSettings.objects.update_or_create(
        tenant_id=actor.tenant_id, defaults={"pool_after_days": pool_after_days}
    )
    audit_record(actor=actor, action="lead.settings", detail={"pool_after_days": pool_after_days})
    return settings


@transaction.atomic
def leads_return_to_pool(*, tenant_id: int, now: dt.datetime | None = None) -> int:
    """Return the brand's leads whose follow-up time passed to the public pool (回收到公海); idempotent."""
    now = now or timezone.now()
    due = list(
        Lead.objects.select_for_update(skip_locked=True)
        .filter(tenant_id=tenant_id, owner_guide__isnull=False, pool_due_at__lte=now)
        .values_list("id", "owner_guide_id")
    )
    if not due:
        return 0
    Lead.objects.filter(id__in=[i for i, _ in due]).update(owner_guide=None, pool_due_at=None, updated_at=now)
    system = Actor.system(tenant_id)
    for lead_id, guide_id in due:
        audit_record(actor=system, action="lead.returned", target_type="lead", target_id=lead_id,
                     detail={"from_guide_id": guide_id})  # fmt: skip
    return len(due)


def leads_due(*, now: dt.datetime | None = None) -> int:
    """For the worker's sweep: one job per brand with leads due back in the pool. Returns the jobs enqueued."""
    from siyu.leads.tasks import leads_return_run

    now = now or timezone.now()
    tenants = sorted(
        set(Lead.objects.filter(owner_guide__isnull=False, pool_due_at__lte=now).values_list("tenant_id", flat=True))
    )
    for tenant_id in tenants:
        enqueue_on_commit(leads_return_run, tenant_id)
    return len(tenants)
