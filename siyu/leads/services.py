"""Writes of the leads context (线索): create with dedupe, assign and reassign, claim from the public pool (公海),
follow up, convert into a customer (转客户, by hand or matched on phone or unionid by the sweep), and the sweep that
returns leads nobody followed up in time to the pool. Every change is audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, OuterRef, QuerySet, Subquery
from django.utils import timezone

from siyu.analytics.services import event_record
from siyu.core import pii
from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.core.jobs import enqueue_on_commit
from siyu.core.models import Guide, Role
from siyu.core.scopes import Actor
from siyu.core.services import audit_record
from siyu.customers.models import Identity
from siyu.customers.selectors import access_customer, customer_ids_by_identity, customer_root_id
from siyu.leads.models import Lead, LeadSettings
from siyu.leads.selectors import access_lead, pool_after_days

MAX_NAME = 64
MAX_SOURCE = 64
MAX_POOL_DAYS = 365
CLOSED = (Lead.Status.CONVERTED, Lead.Status.INVALID)
OPEN = (Lead.Status.NEW, Lead.Status.FOLLOWING)
# How often the sweep matches a brand's open leads to its customers (at most; a brand's pool sweep matches too).
MATCH_EVERY = dt.timedelta(minutes=10)
# Identity and lead ids read again on each run: a row inserted by a transaction that committed after a later id
# was read would otherwise be skipped. Matching is idempotent, so reading some twice costs nothing but the read.
ID_OVERLAP = 1000
MATCH_BATCH = 2000


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
                unionid_enc=pii.encrypt(unionid, field="unionid") if unionid else "",
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
    if status == Lead.Status.CONVERTED:
        # Converted means linked to a customer: the same path as the convert action, finding the customer by the
        # lead's phone or unionid (409 naming customer_id when there is none), never a bare status.
        return lead_convert(actor=actor, lead_id=lead_id)
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
        .exclude(status__in=CLOSED)  # a converted or invalid lead is nobody's to follow up: never back to the pool
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
    """For the worker's sweep: one job per brand with leads due back in the pool, or with open leads not matched to
    the customers for MATCH_EVERY (the job converts the matched ones first). Returns the jobs enqueued."""
    from siyu.leads.tasks import leads_return_run

    now = now or timezone.now()
    due = Lead.objects.filter(owner_guide__isnull=False, pool_due_at__lte=now).exclude(status__in=CLOSED)
    matched_lately = LeadSettings.objects.filter(matched_at__gt=now - MATCH_EVERY).values("tenant_id")
    unmatched = Lead.objects.filter(status__in=OPEN).exclude(tenant_id__in=matched_lately)
    tenants = sorted(
        set(due.values_list("tenant_id", flat=True).distinct())
        | set(unmatched.values_list("tenant_id", flat=True).distinct())
    )
    for tenant_id in tenants:
        enqueue_on_commit(leads_return_run, tenant_id)
    return len(tenants)


# -- conversion (线索转客户) ---------------------------------------------------------------------------------------


def _customer_for(*, tenant_id: int, phone_hash: str, unionid: str) -> tuple[int, str] | None:
    """The brand's customer holding this phone (as its keyed hash) or this unionid: (customer id, matched field).

    The whole brand, whoever serves the customer: the lead and the customer are the same person. A merged customer's
    identities belong to the survivor, so the survivor is what is found.
    """
    for kind, value, field in (("phone", phone_hash, "phone"), ("unionid", unionid, "unionid")):
        if not value:
            continue
        customer_id = customer_ids_by_identity(actor=Actor.system(tenant_id), kind=kind, values=[value]).get(value)
        if customer_id is not None:
            return customer_root_id(tenant_id=tenant_id, customer_id=customer_id), field
    return None


def _convert(*, actor: Actor, lead: Lead, customer_id: int, by: str, matched_on: str, now: dt.datetime) -> Lead:
    """Close `lead` as converted into `customer_id`: linked, who and when, out of the pool; audited, and the
    customer's timeline says where they came from. `by` is "hand" (an operator) or "match" (the sweep)."""
    lead.status = Lead.Status.CONVERTED
    lead.customer_id = customer_id
    lead.converted_at = now
    lead.converted_by_id = actor.user_id if by == "hand" else None
    lead.pool_due_at = None
    lead.updated_at = now
    lead.save(update_fields=["status", "customer", "converted_at", "converted_by", "pool_due_at", "updated_at"])
    audit_record(actor=actor, action="lead.convert", target_type="lead", target_id=lead.id,
                 detail={"customer_id": customer_id, "by": by, "matched_on": matched_on})  # fmt: skip
    event_record(
        tenant_id=lead.tenant_id,
        type="lead.converted",
        customer_id=customer_id,
        guide_id=lead.owner_guide_id,
        actor_id=actor.user_id if by == "hand" else None,
        occurred_at=now,
        properties={"lead_id": lead.id, "by": by, "source": lead.source, "matched_on": matched_on},
    )
    return lead


@transaction.atomic
def lead_convert(*, actor: Actor, lead_id: int, customer_id: int | None = None) -> Lead:
    """Convert a lead into a customer (转客户): into `customer_id` (a customer in the actor's scope), or, when None,
    into the brand's customer with the lead's phone or unionid (409 naming `customer_id` when there is none).

    A guide converts their own leads; managers and HQ any lead in scope, the pool's included. A converted lead is
    closed: it never returns to the public pool. 409 naming `lead_id` when it was converted already.
    """
    lead = access_lead(actor=actor, lead_id=lead_id, for_update=True)
    if actor.role == Role.GUIDE and lead.owner_guide_id is None:
        raise Conflict("the lead is in the pool: claim it first", field="lead_id")
    if actor.role == Role.GUIDE and lead.owner_guide_id != actor.guide_id:
        raise NotFound(f"lead {lead_id} not found", field="lead_id")
    if lead.status == Lead.Status.CONVERTED:
        raise Conflict(f"the lead was converted already (customer {lead.customer_id})", field="lead_id")
    if customer_id is not None:
        if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id < 1:
            raise ValidationFailed("customer_id must be a customer id", field="customer_id")
        target, matched_on = access_customer(actor=actor, customer_id=customer_id).id, ""
    else:
        found = _customer_for(
            tenant_id=actor.tenant_id,
            phone_hash=lead.phone_hash,
            unionid=pii.decrypt(lead.unionid_enc, field="unionid"),
        )
        if found is None:
            raise Conflict("no customer has this lead's phone or unionid: name the customer", field="customer_id")
        target, matched_on = found
    return _convert(actor=actor, lead=lead, customer_id=target, by="hand", matched_on=matched_on, now=timezone.now())


@transaction.atomic
def leads_convert_matched(*, tenant_id: int, now: dt.datetime | None = None) -> int:
    """Convert the brand's open leads whose phone or unionid a customer now holds (线索自动转客户); idempotent.

    For the sweep (a job per brand): phones are matched in SQL, every lead each run (an index lookup each).
    Unionids are kept as two different keyed hashes on the two sides, so they are matched from what is new since the
    last run: new customers' unionids hashed the lead's way, and new leads' unionids (decrypted) looked up.
    Returns how many leads were converted.
    """
    now = now or timezone.now()
    settings, _ = LeadSettings.objects.select_for_update().get_or_create(tenant_id=tenant_id)
    open_leads = Lead.objects.filter(tenant_id=tenant_id, status__in=OPEN)
    matches: dict[int, tuple[int, str]] = {}  # lead id → (customer id, matched on)

    phones = Identity.objects.filter(tenant_id=tenant_id, kind=Identity.Kind.PHONE, value=OuterRef("phone_hash"))
    for lead_id, customer_id in (
        open_leads.exclude(phone_hash="")
        .annotate(customer_found=Subquery(phones.values("customer_id")[:1]))
        .filter(customer_found__isnull=False)
        .values_list("id", "customer_found")
    ):
        matches[lead_id] = (customer_id, "phone")

    # New customers' unionids, hashed as leads keep them.
    top_identity = settings.matched_identity_id
    unionids = Identity.objects.filter(
        tenant_id=tenant_id, kind=Identity.Kind.UNIONID, id__gt=max(settings.matched_identity_id - ID_OVERLAP, 0)
    ).order_by("id")
    for batch in _batches(unionids.values_list("id", "value", "customer_id")):
        by_hash = {pii.lookup_hash(value, kind="lead_unionid"): customer for _, value, customer in batch}
        top_identity = max(top_identity, batch[-1][0])
        for lead_id, unionid_hash in open_leads.filter(unionid_hash__in=list(by_hash)).values_list(
            "id", "unionid_hash"
        ):
            matches.setdefault(lead_id, (by_hash[unionid_hash], "unionid"))
    # New leads' unionids, looked up among all customers. The watermark is read first: a lead made during the scan
    # is above it and read next run.
    top_lead = max(settings.matched_lead_id, Lead.objects.filter(tenant_id=tenant_id).aggregate(m=Max("id"))["m"] or 0)
    new_leads = open_leads.exclude(unionid_enc="").filter(id__gt=max(settings.matched_lead_id - ID_OVERLAP, 0))
    for batch in _batches(new_leads.order_by("id").values_list("id", "unionid_enc")):
        raw = {lead_id: pii.decrypt(token, field="unionid") for lead_id, token in batch}
        found = customer_ids_by_identity(actor=Actor.system(tenant_id), kind=Identity.Kind.UNIONID, values=raw.values())
        for lead_id, unionid in raw.items():
            if unionid in found:
                matches.setdefault(lead_id, (found[unionid], "unionid"))

    converted = 0
    system = Actor.system(tenant_id)
    leads = open_leads.select_for_update(skip_locked=True).filter(id__in=sorted(matches))
    for lead in leads.order_by("id"):
        customer_id, matched_on = matches[lead.id]
        customer_id = customer_root_id(tenant_id=tenant_id, customer_id=customer_id)
        _convert(actor=system, lead=lead, customer_id=customer_id, by="match", matched_on=matched_on, now=now)
        converted += 1
    settings.matched_at = now
    settings.matched_identity_id = top_identity
    settings.matched_lead_id = top_lead
    settings.save(update_fields=["matched_at", "matched_identity_id", "matched_lead_id"])
    return converted


def _batches(rows: QuerySet[Any, tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    """`rows` (ordered by id, id first) in batches of MATCH_BATCH, each read by keyset from the last id."""
    last = 0
    while True:
        batch = list(rows.filter(id__gt=last)[:MATCH_BATCH])
        if not batch:
            return
        yield batch
        last = batch[-1][0]
