"""Writes of the customers context: create and update customers, identities and follow relations.

Every function here validates its input, changes state in one transaction, and appends the matching
timeline event and audit row.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from siyu.analytics.services import event_build, event_bulk_record, event_record
from siyu.core import pii
from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.core.exports import csv_export_execute
from siyu.core.jobs import enqueue_on_commit
from siyu.core.models import Guide
from siyu.core.scopes import Actor
from siyu.core.selectors import access_guide, access_store
from siyu.core.services import audit_record
from siyu.core.validation import clean_text
from siyu.customers import cleaning
from siyu.customers import identity as oneid
from siyu.customers.alerts import loss_alert_raise, loss_alerts_raise
from siyu.customers.lifecycle import customer_stage_move
from siyu.customers.models import Customer, CustomerExport, FollowRelation, Gender, Identity, LifecycleStage
from siyu.customers.selectors import (
    ExportFile,
    access_customer,
    customer_by_identity,
    customer_export_get,
    customer_export_path,
    customer_ids_by_identity,
    customer_list,
    customer_pii,
    customer_root_id,
)
from siyu.tags.selectors import tag_list

logger = logging.getLogger(__name__)

MAX_NAME = cleaning.MAX_NAME
MAX_CITY = cleaning.MAX_CITY


@dataclass(frozen=True)
class IdentityInput:
    kind: str
    value: str
    # Phones only: the customer proved the number (bound it as a member). See siyu.customers.identity.
    verified: bool = False


_clean_name = cleaning.clean_name
_clean_city = cleaning.clean_city
_clean_phone = cleaning.clean_phone
_clean_choice = cleaning.clean_choice
_identity_value = cleaning.identity_value


def customer_create(
    *,
    actor: Actor,
    name: str = "",
    phone: str = "",
    address: str = "",
    gender: int = Gender.UNKNOWN,
    city: str = "",
    source: str = "manual",
    lifecycle_stage: str = LifecycleStage.NEW,
    owner_guide_id: int | None = None,
    identities: Iterable[IdentityInput] = (),
    created_at: dt.datetime | None = None,
    merge_shared: bool = False,
) -> Customer:
    """Create a customer with its identities and return it.

    An identity (phone included) another customer holds is refused (409, nothing written), unless `merge_shared`:
    then, for loaders acting for the brand (HQ only), the OneID rules apply as for any arriving identity
    (siyu.customers.identity): an account id or a phone verified on both sides merges the two, the older surviving,
    and the customer returned is the survivor; an unverified phone stays with its holder and the pair goes to the
    review queue. Either way a customer sharing a fuzzy key (name + city + phone ending, name + address) is proposed.
    """
    name = _clean_name(name)
    phone = _clean_phone(phone)
    address = cleaning.clean_address(address)
    _clean_choice(gender, Gender.values, "gender")
    _clean_choice(lifecycle_stage, LifecycleStage.values, "lifecycle_stage")
    city = _clean_city(city)
    source = clean_text(source, field="source", max_length=64)
    if merge_shared and not actor.is_brand_wide:
        raise PermissionDenied("only HQ or a loader acting for the brand may merge customers", field="merge_shared")
    owner: Guide | None = access_guide(actor=actor, guide_id=owner_guide_id) if owner_guide_id else None
    if owner is None and not actor.is_brand_wide:
        # A scoped user's new customer must land inside their own scope, or they could never see it again.
        raise ValidationFailed("owner_guide_id is required for your role", field="owner_guide_id")
    wanted: dict[tuple[str, str], bool] = {}
    for i in identities:
        key = (i.kind, _identity_value(i.kind, i.value))
        wanted[key] = wanted.get(key, False) or (i.verified is True and i.kind == Identity.Kind.PHONE)
    if phone:
        wanted.setdefault((Identity.Kind.PHONE, pii.phone_hash(phone)), False)
    now = created_at or timezone.now()
    by_phone, by_address = oneid.match_keys(name=name, city=city, phone=phone, address=address)
    try:
        with transaction.atomic():
            held: set[tuple[str, str]] = set()
            if merge_shared:
                for kind, value in wanted:
                    if Identity.objects.filter(tenant_id=actor.tenant_id, kind=kind, value=value).exists():
                        held.add((kind, value))
            customer = Customer.objects.create(
                tenant_id=actor.tenant_id,
                name_enc=pii.encrypt(name, field="name"),
                name_index=pii.name_index(name),
                phone_enc=pii.encrypt(phone, field="phone"),
                phone_hash=pii.phone_hash(phone) if phone else "",
                address_enc=pii.encrypt(address, field="address"),
                gender=gender,
                city=city,
                source=source,
                lifecycle_stage=lifecycle_stage,
                owner_guide=owner,
                created_at=now,
                updated_at=now,
                match_name_city_phone=by_phone,
                match_name_address=by_address,
            )
            Identity.objects.bulk_create(
                [
                    Identity(
                        tenant_id=actor.tenant_id,
                        customer=customer,
                        kind=kind,
                        value=value,
                        verified=verified,
                        created_at=now,
                    )
                    for (kind, value), verified in wanted.items()
                    if (kind, value) not in held
                ]
            )
            if owner is not None and not actor.is_brand_wide:
                # Scope follows follow relations: record that the owner serves this customer.
                FollowRelation.objects.create(
                    tenant_id=actor.tenant_id,
                    customer=customer,
                    guide=owner,
                    external_userid="",
                    added_at=now,
                    add_way=FollowRelation.AddWay.ADMIN_ASSIGNED,
                )
            event_record(
                tenant_id=actor.tenant_id,
                type="customer.created",
                customer_id=customer.id,
                actor_id=actor.user_id,
                occurred_at=now,
                properties={"source": customer.source},
            )
            audit_record(actor=actor, action="customer.create", target_type="customer", target_id=customer.id)
            current = customer.id
            for kind, value in sorted(held):
                current = oneid.identity_arrive(
                    actor=actor, customer_id=current, kind=kind, value=value, verified=wanted[(kind, value)], at=now
                ).customer_id
            if current != customer.id:
                customer = Customer.objects.get(id=current)
            oneid.candidates_propose_for(customer)
    except IntegrityError as exc:
        raise Conflict("another customer already has this phone or identity", field="identities") from exc
    return customer


def customer_get_or_create_by_identity(
    *,
    actor: Actor,
    kind: str,
    value: str,
    source: str,
    created_at: dt.datetime | None = None,
    owner_guide_id: int | None = None,
) -> tuple[Customer, bool]:
    """The customer holding identity (kind, value); a new customer with just that identity if nobody holds it.

    Returns (customer, created). Safe when two jobs meet the same new identity at once: they race on the
    identity's unique constraint, and the loser returns the winner's customer.
    """
    stored = _identity_value(kind, value)
    existing = customer_by_identity(actor=actor, kind=kind, value=stored)
    if existing is not None:
        return existing, False
    try:
        customer = customer_create(
            actor=actor,
            source=source,
            owner_guide_id=owner_guide_id,
            identities=[IdentityInput(kind=kind, value=value)],
            created_at=created_at,
        )
    except Conflict:
        existing = customer_by_identity(actor=actor, kind=kind, value=stored)
        if existing is None:  # held by a customer outside the actor's scope: still a conflict for this actor
            raise
        return existing, False
    return customer, True


UPDATABLE = ("name", "phone", "address", "gender", "city", "lifecycle_stage", "intent_level", "owner_guide_id")
# The fields the fuzzy duplicate keys are made of (siyu.customers.identity.match_keys).
_MATCHED = frozenset({"name", "phone", "address", "city"})


@transaction.atomic
def customer_update(*, actor: Actor, customer_id: int, changes: dict[str, Any]) -> Customer:
    """Apply `changes` (only the fields in UPDATABLE) to a customer inside the actor's scope."""
    unknown = sorted(set(changes) - set(UPDATABLE))
    if unknown:
        raise ValidationFailed(f"cannot update {', '.join(unknown)}", field=unknown[0])
    customer = access_customer(actor=actor, customer_id=customer_id, for_update=True)
    if "name" in changes:
        name = _clean_name(changes["name"] or "")
        customer.name_enc = pii.encrypt(name, field="name")
        customer.name_index = pii.name_index(name)
    if "phone" in changes:
        phone = _clean_phone(changes["phone"] or "")
        new_hash = pii.phone_hash(phone) if phone else ""
        if (
            new_hash
            and Identity.objects.filter(tenant_id=actor.tenant_id, kind=Identity.Kind.PHONE, value=new_hash)
            .exclude(customer_id=customer.id)
            .exists()
        ):
            raise Conflict("another customer already has this phone", field="phone")
        Identity.objects.filter(customer=customer, kind=Identity.Kind.PHONE).delete()
        if new_hash:
            Identity.objects.create(
                tenant_id=actor.tenant_id,
                customer=customer,
                kind=Identity.Kind.PHONE,
                value=new_hash,
                created_at=timezone.now(),
            )
        customer.phone_enc = pii.encrypt(phone, field="phone")
        customer.phone_hash = new_hash
    if "address" in changes:
        customer.address_enc = pii.encrypt(cleaning.clean_address(changes["address"] or ""), field="address")
    if "gender" in changes:
        customer.gender = _clean_choice(changes["gender"], Gender.values, "gender")
    if "city" in changes:
        customer.city = _clean_city(changes["city"] or "")
    stage = None
    if "lifecycle_stage" in changes:
        stage = _clean_choice(changes["lifecycle_stage"], LifecycleStage.values, "lifecycle_stage")
    if "intent_level" in changes:
        level = changes["intent_level"]
        if not isinstance(level, int) or not 0 <= level <= 5:
            raise ValidationFailed("intent_level must be an integer from 0 to 5", field="intent_level")
        customer.intent_level = level
    if "owner_guide_id" in changes:
        guide_id = changes["owner_guide_id"]
        customer.owner_guide = access_guide(actor=actor, guide_id=guide_id) if guide_id else None
    customer.updated_at = timezone.now()
    if _MATCHED & set(changes):
        oneid.match_keys_refresh(customer)
    customer.save()
    if _MATCHED & set(changes):
        oneid.candidates_propose_for(customer)
    if stage is not None and stage != customer.lifecycle_stage:
        # A stage set by hand is a kanban move: held against the rules, with its own event and audit row.
        customer = customer_stage_move(actor=actor, customer_id=customer.id, stage=stage)
    fields = sorted(changes)
    event_record(
        tenant_id=actor.tenant_id,
        type="customer.updated",
        customer_id=customer.id,
        actor_id=actor.user_id,
        properties={"fields": fields},
    )
    audit_record(
        actor=actor, action="customer.update", target_type="customer", target_id=customer.id, detail={"fields": fields}
    )
    return customer


@transaction.atomic
def follow_relation_add(
    *,
    actor: Actor,
    customer_id: int,
    guide_id: int,
    external_userid: str,
    added_at: dt.datetime | None = None,
    add_way: int = FollowRelation.AddWay.UNKNOWN,
    state: str = "",
    remark: str = "",
) -> FollowRelation:
    """Record that a guide added (or re-added) a customer on WeCom."""
    if len(state) > 30:
        raise ValidationFailed("state is at most 30 characters", field="state")
    customer = access_customer(actor=actor, customer_id=customer_id)
    guide = access_guide(actor=actor, guide_id=guide_id)
    when = added_at or timezone.now()
    relation, _ = FollowRelation.objects.update_or_create(
        tenant_id=actor.tenant_id,
        guide=guide,
        customer=customer,
        defaults={
            "external_userid": external_userid,
            "added_at": when,
            "add_way": add_way,
            "state": state,
            "remark": remark[:40],
            "status": FollowRelation.Status.ACTIVE,
            "deleted_at": None,
        },
    )
    if external_userid:
        Identity.objects.get_or_create(
            tenant_id=actor.tenant_id,
            kind=Identity.Kind.WECOM_EXTERNAL_USERID,
            value=external_userid,
            defaults={"customer": customer, "created_at": when},
        )
    event_record(
        tenant_id=actor.tenant_id,
        type="contact.added",
        customer_id=customer.id,
        guide_id=guide.id,
        occurred_at=when,
        properties={"guide_id": guide.id, "add_way": add_way, "state": state},
    )
    return relation


@transaction.atomic
def follow_relation_delete(
    *, actor: Actor, customer_id: int, guide_id: int, by_customer: bool, at: dt.datetime | None = None
) -> FollowRelation:
    """Mark a follow relation deleted, by the customer (流失) or by the guide, at `at` (default: now).

    WeCom callbacks pass the event's CreateTime, so the timeline shows when it happened, not when it was processed.
    """
    customer = access_customer(actor=actor, customer_id=customer_id)
    relation = (
        FollowRelation.objects.select_for_update()
        .filter(tenant_id=actor.tenant_id, customer=customer, guide_id=guide_id)
        .first()
    )
    if relation is None:
        raise ValidationFailed("this guide has no relation with the customer", field="guide_id")
    now = at or timezone.now()
    relation.status = (
        FollowRelation.Status.DELETED_BY_CUSTOMER if by_customer else FollowRelation.Status.DELETED_BY_GUIDE
    )
    relation.deleted_at = now
    relation.save(update_fields=["status", "deleted_at"])
    event_record(
        tenant_id=actor.tenant_id,
        type="contact.deleted_by_customer" if by_customer else "contact.deleted_by_guide",
        customer_id=customer.id,
        guide_id=guide_id,
        occurred_at=now,
        properties={"guide_id": guide_id},
    )
    loss_alert_raise(relation=relation, at=now)
    return relation


@dataclass(frozen=True)
class RelationTransfer:
    """What `follow_relation_transfer` changed: False everywhere when a callback had already done it all."""

    added: bool  # the takeover guide's relation was created or re-activated
    ended: bool  # the handover guide's relation was ended
    owner_changed: bool


@transaction.atomic
def follow_relation_transfer(
    *, actor: Actor, customer_id: int, from_guide_id: int, to_guide_id: int, external_userid: str, at: dt.datetime
) -> RelationTransfer:
    """A customer taken over by another guide through WeCom inheritance (客户继承), completed at `at`.

    The takeover guide follows the customer (add_way 202 "assigned by admin", keeping the handover's remark and
    description), the handover's relation ends, and the customer's owner guide moves if it was the handover.
    WeCom also pushes callbacks for the same takeover (add_external_contact to the takeover, del_external_contact
    to an on-job handover) in any order relative to this call: each side is changed only when it is not so
    already, and its usual event (contact.added / contact.deleted_by_guide) is appended only when changed here,
    so the callbacks and this converge on one state and one set of events.
    """
    _require_brand_wide(actor)
    if from_guide_id == to_guide_id:
        raise ValidationFailed("the takeover guide must differ from the handover guide", field="to_guide_id")
    customer = access_customer(actor=actor, customer_id=customer_id, for_update=True)
    access_guide(actor=actor, guide_id=to_guide_id)
    relations = {
        r.guide_id: r
        for r in FollowRelation.objects.select_for_update().filter(
            tenant_id=actor.tenant_id, customer=customer, guide_id__in=(from_guide_id, to_guide_id)
        )
    }
    old, new = relations.get(from_guide_id), relations.get(to_guide_id)
    added = False
    if new is None:
        new = FollowRelation.objects.create(
            tenant_id=actor.tenant_id,
            customer=customer,
            guide_id=to_guide_id,
            external_userid=external_userid,
            added_at=at,
            add_way=FollowRelation.AddWay.ADMIN_ASSIGNED,
            remark=old.remark if old is not None else "",
            description=old.description if old is not None else "",
        )
        added = True
    elif new.status != FollowRelation.Status.ACTIVE and (new.deleted_at is None or new.deleted_at <= at):
        new.status, new.deleted_at, new.added_at = FollowRelation.Status.ACTIVE, None, at
        new.add_way = FollowRelation.AddWay.ADMIN_ASSIGNED
        new.save(update_fields=["status", "deleted_at", "added_at", "add_way"])
        added = True
    if added:
        event_record(
            tenant_id=actor.tenant_id,
            type="contact.added",
            customer_id=customer.id,
            guide_id=to_guide_id,
            occurred_at=at,
            properties={
                "guide_id": to_guide_id,
                "add_way": FollowRelation.AddWay.ADMIN_ASSIGNED,
                "state": "",
                "source": "transfer",
            },
        )
    ended = False
    # A relation re-added after the takeover time is a new friendship, not the one handed over.
    if old is not None and old.status == FollowRelation.Status.ACTIVE and old.added_at <= at:
        old.status, old.deleted_at = FollowRelation.Status.DELETED_BY_GUIDE, at
        old.save(update_fields=["status", "deleted_at"])
        ended = True
        event_record(
            tenant_id=actor.tenant_id,
            type="contact.deleted_by_guide",
            customer_id=customer.id,
            guide_id=from_guide_id,
            occurred_at=at,
            properties={"guide_id": from_guide_id, "source": "transfer"},
        )
    owner_changed = customer.owner_guide_id == from_guide_id
    if owner_changed:
        customer.owner_guide_id = to_guide_id
        customer.updated_at = timezone.now()
        customer.save(update_fields=["owner_guide", "updated_at"])
    return RelationTransfer(added=added, ended=ended, owner_changed=owner_changed)


def customer_reveal(*, actor: Actor, customer_id: int, ip: str | None = None) -> dict[str, str]:
    """Decrypt a customer's personal data for display, writing a `pii.reveal` audit row."""
    customer = access_customer(actor=actor, customer_id=customer_id)
    audit_record(actor=actor, action="pii.reveal", target_type="customer", target_id=customer.id, ip=ip)
    return customer_pii(customer)


EXPORT_HEADER = ["id", "name", "phone", "city", "lifecycle_stage", "owner_guide", "created_at"]
EXPORT_FILTERS = ("q", "tag_ids", "lifecycle_stage", "store_id", "guide_id")
EXPORT_BATCH_SIZE = 500
MAX_QUERY = 100


def export_row(customer: Customer, *, reveal: bool) -> list[Any]:
    """One CSV row; name and phone masked unless `reveal` (the caller audits either way)."""
    data = customer_pii(customer)
    name, phone = data["name"], data["phone"]
    if not reveal:
        name, phone = pii.mask_name(name), pii.mask_phone(phone)
    return [
        customer.id,
        name,
        phone,
        customer.city,
        customer.lifecycle_stage,
        customer.owner_guide.name if customer.owner_guide else "",
        customer.created_at.isoformat(),
    ]


def _clean_id(value: Any, field: str) -> int:
    # Console forms send ids as strings, the API as integers; bool is an int subclass and never an id.
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValidationFailed(f"{field} must be a positive integer id", field=field)
    return value


def _clean_export_filters(*, actor: Actor, filters: Any) -> dict[str, Any]:
    """Validate export filters against the actor's scope; the result is what `customer_list` accepts.

    Empty values are dropped, so the stored filters show only what narrowed the export.
    """
    if not isinstance(filters, dict):
        raise ValidationFailed("filters must be an object", field="filters")
    unknown = sorted(set(filters) - set(EXPORT_FILTERS))
    if unknown:
        raise ValidationFailed(f"unknown filter {unknown[0]!r}; use {', '.join(EXPORT_FILTERS)}", field=unknown[0])
    clean: dict[str, Any] = {}
    q = filters.get("q")
    if q not in (None, ""):
        if not isinstance(q, str) or len(q.strip()) > MAX_QUERY:
            raise ValidationFailed(f"q must be text of at most {MAX_QUERY} characters", field="q")
        if q.strip():
            clean["q"] = q.strip()
    tag_ids = filters.get("tag_ids")
    if tag_ids not in (None, "", []):
        if not isinstance(tag_ids, list):
            raise ValidationFailed("tag_ids must be a list of tag ids", field="tag_ids")
        ids = list(dict.fromkeys(_clean_id(t, "tag_ids") for t in tag_ids))
        found = set(tag_list(actor=actor).filter(id__in=ids).values_list("id", flat=True))
        missing = [t for t in ids if t not in found]
        if missing:
            raise ValidationFailed(f"tag {missing[0]} not found", field="tag_ids")
        clean["tag_ids"] = ids
    stage = filters.get("lifecycle_stage")
    if stage not in (None, ""):
        clean["lifecycle_stage"] = _clean_choice(stage, LifecycleStage.values, "lifecycle_stage")
    for field, access in (("store_id", access_store), ("guide_id", access_guide)):
        value = filters.get(field)
        if value in (None, ""):
            continue
        object_id = _clean_id(value, field)
        try:
            # Only ids inside the actor's scope: naming another store would still export nothing,
            # but should say so rather than produce an empty file.
            access(actor=actor, **{field: object_id})
        except NotFound as exc:
            raise ValidationFailed(exc.message, field=field) from exc
        clean[field] = object_id
    return clean


@transaction.atomic
def customer_export_request(
    *, actor: Actor, filters: dict[str, Any], reveal: bool, ip: str | None = None
) -> CustomerExport:
    """Ask for a CSV export of the customers matching `filters`; a background job writes it after commit.

    Only HQ admins may export unmasked personal data (`reveal`). Follow the export with `customer_export_get`.
    """
    from siyu.customers.tasks import customer_export_run  # tasks import this module: import late, no cycle

    if actor.user_id is None:
        raise ValidationFailed("an export needs a requesting user to scope and audit it", field="actor")
    if reveal and not actor.is_brand_wide:
        raise PermissionDenied("only HQ admins may export unmasked personal data", field="reveal")
    clean = _clean_export_filters(actor=actor, filters=filters)
    export = CustomerExport.objects.create(
        tenant_id=actor.tenant_id, requested_by_id=actor.user_id, requested_ip=ip, filters=clean, reveal=reveal
    )
    audit_record(
        actor=actor,
        action="customer_export.request",
        target_type="customer_export",
        target_id=export.id,
        detail={"filters": clean, "revealed": reveal},
        ip=ip,
    )
    enqueue_on_commit(customer_export_run, export.id)
    return export


def _export_batches(rows: QuerySet[Customer], batch_size: int) -> Iterator[list[Customer]]:
    """`rows` (ordered newest first, as customer_list orders them) in batches, by keyset rather than OFFSET.

    Each batch is its own short query, so a long export holds no cursor or transaction open, and rows added
    while it runs cannot shift a page boundary and duplicate a customer.
    """
    batch = list(rows[:batch_size])
    while batch:
        yield batch
        last = batch[-1]
        batch = list(
            rows.filter(Q(created_at__lt=last.created_at) | Q(created_at=last.created_at, id__lt=last.id))[:batch_size]
        )


def customer_export_execute(*, export_id: int, batch_size: int = EXPORT_BATCH_SIZE) -> CustomerExport | None:
    """Run a pending export (siyu.core.exports): the customers its filters select in the requester's scope, as
    they are now, in keyset batches. None when there was nothing to claim; an error marks it failed."""

    def rows(export: CustomerExport, actor: Actor) -> tuple[int, Iterator[list[list[Any]]]]:
        selected = customer_list(actor=actor, **export.filters)
        batches = _export_batches(selected, batch_size)
        return selected.count(), ([export_row(c, reveal=export.reveal) for c in batch] for batch in batches)

    return csv_export_execute(
        model=CustomerExport,
        export_id=export_id,
        path_of=customer_export_path,
        header=EXPORT_HEADER,
        rows=rows,
        audit_target="customer_export",
        audit_detail=lambda export: {"filters": export.filters},
    )


def customer_export_download(*, actor: Actor, export_id: int, ip: str | None = None) -> ExportFile:
    """A finished export's file, for a download the caller streams; audited, as the file holds personal data."""
    export = customer_export_get(actor=actor, export_id=export_id)
    if export.status != CustomerExport.Status.DONE:
        raise Conflict(f"export {export_id} is {export.status}, not done", field="export_id")
    path = customer_export_path(export)
    if not path.is_file():
        raise NotFound(f"the file of export {export_id} is gone", field="export_id")
    audit_record(
        actor=actor,
        action="customer_export.download",
        target_type="customer_export",
        target_id=export.id,
        detail={"revealed": export.reveal},
        ip=ip,
    )
    stamp = timezone.localtime(export.created_at).strftime("%Y%m%d-%H%M")
    return ExportFile(path=path, download_name=f"customers-{stamp}-{export.id}.csv", revealed=export.reveal)


# -- mirroring WeCom contacts (客户同步) ------------------------------------------------------------------------


@dataclass(frozen=True)
class WeComContactInput:
    """One row of batch/get_by_user: a customer (external contact) as one guide follows them."""

    external_userid: str
    guide_id: int
    added_at: dt.datetime  # follow_info.createtime
    name: str = ""
    gender: int = Gender.UNKNOWN
    unionid: str = ""
    remark: str = ""
    description: str = ""
    add_way: int = FollowRelation.AddWay.UNKNOWN
    state: str = ""


@dataclass
class ContactSyncResult:
    """What one page of contacts did: relations created/updated/unchanged, customers created or filled in."""

    customer_ids: dict[str, int]  # external_userid → customer id, for every contact of the page
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    customers_created: int = 0
    customers_updated: int = 0
    merged: int = 0  # customers merged into another because they share a unionid (OneID)


def _relation_values(row: WeComContactInput) -> dict[str, Any]:
    return {
        "external_userid": row.external_userid,
        "added_at": row.added_at,
        "remark": row.remark[:40],
        "description": row.description[:150],
        "add_way": row.add_way,
        "state": row.state[:30],
    }


def _require_brand_wide(actor: Actor) -> None:
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ or the WeCom connector may load contacts in bulk")


@transaction.atomic
def follow_relations_sync_wecom(*, actor: Actor, contacts: Sequence[WeComContactInput]) -> ContactSyncResult:
    """Mirror a page of WeCom contacts: customers found by external_userid, else by unionid, else created;
    their identities; and one follow relation per (customer, guide) with WeCom's remark, add_way, state and time.

    In bulk (a few queries per page, whatever its size) with the same events as the one-by-one services:
    customer.created, contact.added (for new and re-added relations, at WeCom's createtime), customer.updated
    when a missing name or gender is filled in. WeCom never overwrites what siyu knows better: an existing
    customer's name and gender are only filled when empty. A relation deleted in siyu stays deleted unless WeCom
    shows it was added again after the deletion (WeCom keeps listing a customer who deleted the guide).
    Idempotent: the same page again changes nothing and appends nothing. One audit row per page that changed.
    """
    _require_brand_wide(actor)
    if not contacts:
        return ContactSyncResult(customer_ids={})
    result = ContactSyncResult(customer_ids={})
    first: dict[str, WeComContactInput] = {}
    for row in contacts:
        if not row.external_userid or len(row.external_userid) > 128:
            raise ValidationFailed("external_userid must be 1 to 128 characters", field="external_userid")
        first.setdefault(row.external_userid, row)
    ext_kind, union_kind = Identity.Kind.WECOM_EXTERNAL_USERID, Identity.Kind.UNIONID
    by_ext = customer_ids_by_identity(actor=actor, kind=ext_kind, values=list(first))
    # Only contacts new to siyu are looked up by unionid (a customer known from a mini-program or a shop).
    unionids = {r.unionid for e, r in first.items() if r.unionid and e not in by_ext}
    by_union = customer_ids_by_identity(actor=actor, kind=union_kind, values=unionids) if unionids else {}
    # Which of the customers found by external_userid already carry a unionid (one each, at most, is linked).
    has_union = set(
        Identity.objects.filter(
            tenant_id=actor.tenant_id, kind=union_kind, customer_id__in=set(by_ext.values())
        ).values_list("customer_id", flat=True)
    )

    new_customers: dict[str, Customer] = {}
    identities: list[Identity] = []
    now = timezone.now()
    for ext, row in first.items():
        customer_id = by_ext.get(ext) or (by_union.get(row.unionid) if row.unionid else None)
        if customer_id is None:
            name = _clean_name(row.name[:MAX_NAME])
            new_customers[ext] = Customer(
                tenant_id=actor.tenant_id,
                name_enc=pii.encrypt(name, field="name"),
                name_index=pii.name_index(name),
                phone_enc=pii.encrypt("", field="phone"),
                gender=row.gender if row.gender in Gender.values else Gender.UNKNOWN,
                source="wecom",
                owner_guide_id=row.guide_id,
                created_at=row.added_at,
                updated_at=now,
            )
            continue
        if ext not in by_ext:
            identities.append(Identity(tenant_id=actor.tenant_id, customer_id=customer_id, kind=ext_kind, value=ext))
        # A unionid held by another customer is skipped by the insert's conflict handling (merging is not ours).
        if row.unionid and customer_id not in has_union:
            identities.append(
                Identity(tenant_id=actor.tenant_id, customer_id=customer_id, kind=union_kind, value=row.unionid)
            )
    Customer.objects.bulk_create(list(new_customers.values()))
    for ext, customer in new_customers.items():
        row = first[ext]
        identities.append(Identity(tenant_id=actor.tenant_id, customer=customer, kind=ext_kind, value=ext))
        if row.unionid and row.unionid not in by_union:
            identities.append(
                Identity(tenant_id=actor.tenant_id, customer=customer, kind=union_kind, value=row.unionid)
            )
    for identity in identities:
        identity.created_at = now
    # A unionid two contacts of one page share, or an identity a concurrent callback just stored, is skipped
    # rather than failing the page; the re-read below is what counts.
    Identity.objects.bulk_create(identities, ignore_conflicts=True)
    if identities:
        result.customer_ids = customer_ids_by_identity(actor=actor, kind=ext_kind, values=list(first))
    else:  # nothing new: every contact was already known by its external_userid
        result.customer_ids = by_ext
    orphans = [c.id for ext, c in new_customers.items() if result.customer_ids.get(ext) != c.id]
    if orphans:  # lost a race for the external_userid: the other writer's customer is the one
        Customer.objects.filter(id__in=orphans).delete()
    created_ids = {c.id for c in new_customers.values()} - set(orphans)
    result.customers_created = len(created_ids)
    result.merged = _merge_by_unionid(actor=actor, first=first, customer_ids=result.customer_ids, at=now)
    if result.merged:
        result.customer_ids = customer_ids_by_identity(actor=actor, kind=ext_kind, values=list(first))

    events: list[Any] = [
        event_build(
            tenant_id=actor.tenant_id,
            type="customer.created",
            customer_id=customer.id,
            occurred_at=customer.created_at,
            properties={"source": "wecom"},
        )
        for customer in new_customers.values()
        if customer.id in created_ids
    ]
    # Fill in what existing customers lack (customers made by a callback have neither name nor gender).
    known = Customer.objects.filter(
        tenant_id=actor.tenant_id, id__in=set(result.customer_ids.values()) - created_ids
    ).only("id", "name_index", "gender")
    ext_of = {c: e for e, c in result.customer_ids.items()}
    filled: list[Customer] = []
    for customer in known:
        row = first[ext_of[customer.id]]
        fields = []
        name = _clean_name(row.name[:MAX_NAME])
        if not customer.name_index and name:
            customer.name_enc, customer.name_index = pii.encrypt(name, field="name"), pii.name_index(name)
            fields.append("name")
        if customer.gender == Gender.UNKNOWN and row.gender in (Gender.MALE, Gender.FEMALE):
            customer.gender = row.gender
            fields.append("gender")
        if fields:
            customer.updated_at = now
            filled.append(customer)
            events.append(
                event_build(
                    tenant_id=actor.tenant_id,
                    type="customer.updated",
                    customer_id=customer.id,
                    occurred_at=now,
                    properties={"fields": fields, "source": "wecom"},
                )
            )
    Customer.objects.bulk_update(filled, fields=["name_enc", "name_index", "gender", "updated_at"])
    result.customers_updated = len(filled)

    relations = {
        (r.customer_id, r.guide_id): r
        for r in FollowRelation.objects.filter(
            tenant_id=actor.tenant_id,
            customer_id__in=set(result.customer_ids.values()),
            guide_id__in={row.guide_id for row in contacts},
        )
    }
    new_relations: dict[tuple[int, int], FollowRelation] = {}
    changed: dict[int, FollowRelation] = {}
    for row in contacts:
        customer_id = result.customer_ids[row.external_userid]
        key = (customer_id, row.guide_id)
        values = _relation_values(row)
        relation = relations.get(key) or new_relations.get(key)
        if relation is None:
            new_relations[key] = FollowRelation(
                tenant_id=actor.tenant_id, customer_id=customer_id, guide_id=row.guide_id, **values
            )
            events.append(_contact_added_event(actor, customer_id, row))
            continue
        if relation.status != FollowRelation.Status.ACTIVE:
            if relation.deleted_at is not None and row.added_at <= relation.deleted_at:
                # The same friendship siyu saw end (e.g. the customer deleted the guide: WeCom still lists it).
                result.unchanged += 1
                continue
            relation.status, relation.deleted_at = FollowRelation.Status.ACTIVE, None
            events.append(_contact_added_event(actor, customer_id, row))
        elif all(getattr(relation, name) == value for name, value in values.items()):
            result.unchanged += 1
            continue
        for name, value in values.items():
            setattr(relation, name, value)
        if relation.pk is not None:
            changed[relation.pk] = relation
    FollowRelation.objects.bulk_create(list(new_relations.values()))
    FollowRelation.objects.bulk_update(
        list(changed.values()), fields=[*_relation_values(contacts[0]), "status", "deleted_at"]
    )
    result.created, result.updated = len(new_relations), len(changed)
    event_bulk_record(events=events)
    if result.created or result.updated or result.customers_created or result.customers_updated:
        audit_record(
            actor=actor,
            action="customer.sync_wecom",
            target_type="customer",
            detail={
                "customers_created": result.customers_created,
                "customers_updated": result.customers_updated,
                "relations_created": result.created,
                "relations_updated": result.updated,
            },
        )
    return result


def _merge_by_unionid(
    *, actor: Actor, first: dict[str, WeComContactInput], customer_ids: dict[str, int], at: dt.datetime
) -> int:
    """OneID for a page of contacts: a contact whose unionid another customer holds (known from a mini-program or
    a shop) is that customer, so the two merge (siyu.customers.identity; the older survives). Returns how many."""
    wanted = {row.unionid: customer_ids[ext] for ext, row in first.items() if row.unionid and ext in customer_ids}
    if not wanted:
        return 0
    holders = customer_ids_by_identity(actor=actor, kind=Identity.Kind.UNIONID, values=list(wanted))
    merged = 0
    for unionid, customer_id in sorted(wanted.items()):
        holder = holders.get(unionid)
        if holder is None or holder == customer_id:
            continue
        # An earlier merge of this page may have merged this contact's customer already: continue from its survivor.
        current = customer_root_id(tenant_id=actor.tenant_id, customer_id=customer_id)
        arrival = oneid.identity_arrive(
            actor=actor, customer_id=current, kind=Identity.Kind.UNIONID, value=unionid, at=at
        )
        merged += arrival.merge is not None
    return merged


def _contact_added_event(actor: Actor, customer_id: int, row: WeComContactInput) -> Any:
    return event_build(
        tenant_id=actor.tenant_id,
        type="contact.added",
        customer_id=customer_id,
        guide_id=row.guide_id,
        occurred_at=row.added_at,
        properties={"guide_id": row.guide_id, "add_way": row.add_way, "state": row.state[:30]},
    )


@transaction.atomic
def follow_relations_prune_wecom(
    *, actor: Actor, guide_ids: Collection[int], present: Collection[tuple[int, int]], at: dt.datetime | None = None
) -> int:
    """End the active WeCom relations of `guide_ids` that WeCom no longer lists (the guide deleted the customer
    while siyu missed the callback). `present` holds the (customer id, guide id) pairs WeCom listed.

    Relations made in siyu without a WeCom external_userid are left alone. Returns how many were ended.
    """
    _require_brand_wide(actor)
    present_set = set(present)
    now = at or timezone.now()
    stale = [
        r
        for r in FollowRelation.objects.filter(
            tenant_id=actor.tenant_id, guide_id__in=set(guide_ids), status=FollowRelation.Status.ACTIVE
        )
        .exclude(external_userid="")
        .only("id", "tenant_id", "customer_id", "guide_id")
        if (r.customer_id, r.guide_id) not in present_set
    ]
    FollowRelation.objects.filter(id__in=[r.id for r in stale]).update(
        status=FollowRelation.Status.DELETED_BY_GUIDE, deleted_at=now
    )
    for relation in stale:
        relation.status, relation.deleted_at = FollowRelation.Status.DELETED_BY_GUIDE, now
    # A loss all the same, found late: the guide and the store manager hear of it as from the callback. In bulk:
    # a sync that finds a departed guide's thousands of customers gone makes a few queries, not thousands.
    loss_alerts_raise(relations=stale, at=now)
    event_bulk_record(
        events=[
            event_build(
                tenant_id=actor.tenant_id,
                type="contact.deleted_by_guide",
                customer_id=r.customer_id,
                guide_id=r.guide_id,
                occurred_at=now,
                properties={"guide_id": r.guide_id, "source": "wecom_sync"},
            )
            for r in stale
        ]
    )
    if stale:
        audit_record(
            actor=actor,
            action="follow_relation.prune_wecom",
            target_type="follow_relation",
            detail={"count": len(stale), "ids": [r.id for r in stale][:200]},
        )
    return len(stale)
