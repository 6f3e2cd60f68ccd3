"""Writes of the customers context: create and update customers, identities and follow relations.

Every function here validates its input, changes state in one transaction, and appends the matching
timeline event and audit row.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.analytics.services import event_record
from siyu.core import pii
from siyu.core.errors import Conflict, ValidationFailed
from siyu.core.models import Guide
from siyu.core.scopes import Actor
from siyu.core.selectors import access_guide
from siyu.core.services import audit_record
from siyu.customers.models import Customer, FollowRelation, Gender, Identity, LifecycleStage
from siyu.customers.selectors import access_customer, customer_pii

MAX_NAME = 64
MAX_CITY = 50


@dataclass(frozen=True)
class IdentityInput:
    kind: str
    value: str


def _clean_name(name: str) -> str:
    name = name.strip()
    if len(name) > MAX_NAME:
        raise ValidationFailed(f"name is longer than {MAX_NAME} characters", field="name")
    return name


def _clean_phone(phone: str) -> str:
    if phone.strip() == "":
        return ""
    digits = pii.normalize_phone(phone)
    if not (len(digits) == 11 and digits.startswith("1")):
        raise ValidationFailed("phone must be an 11-digit mainland mobile number", field="phone")
    return digits


def _clean_choice(value: Any, choices: Iterable[Any], field: str) -> Any:
    allowed = list(choices)
    if value not in allowed:
        raise ValidationFailed(f"{field} must be one of {', '.join(map(str, allowed))}", field=field)
    return value


def _identity_value(kind: str, value: str) -> str:
    _clean_choice(kind, Identity.Kind.values, "identities.kind")
    value = value.strip()
    if not value or len(value) > 128:
        raise ValidationFailed("identity value must be 1 to 128 characters", field="identities.value")
    if kind == Identity.Kind.PHONE:
        return pii.phone_hash(_clean_phone(value))
    return value


def customer_create(
    *,
    actor: Actor,
    name: str = "",
    phone: str = "",
    gender: int = Gender.UNKNOWN,
    city: str = "",
    source: str = "manual",
    lifecycle_stage: str = LifecycleStage.NEW,
    owner_guide_id: int | None = None,
    identities: Iterable[IdentityInput] = (),
    created_at: dt.datetime | None = None,
) -> Customer:
    """Create a customer with its identities; refuses an identity (phone included) another customer holds."""
    name = _clean_name(name)
    phone = _clean_phone(phone)
    _clean_choice(gender, Gender.values, "gender")
    _clean_choice(lifecycle_stage, LifecycleStage.values, "lifecycle_stage")
    if len(city) > MAX_CITY:
        raise ValidationFailed(f"city is longer than {MAX_CITY} characters", field="city")
    owner: Guide | None = access_guide(actor=actor, guide_id=owner_guide_id) if owner_guide_id else None
    if owner is None and not actor.is_brand_wide:
        # A scoped user's new customer must land inside their own scope, or they could never see it again.
        raise ValidationFailed("owner_guide_id is required for your role", field="owner_guide_id")
    wanted = [(i.kind, _identity_value(i.kind, i.value)) for i in identities]
    if phone:
        wanted.append((Identity.Kind.PHONE, pii.phone_hash(phone)))
    wanted = list(dict.fromkeys(wanted))
    now = created_at or timezone.now()
    try:
        with transaction.atomic():
            customer = Customer.objects.create(
                tenant_id=actor.tenant_id,
                name_enc=pii.encrypt(name, field="name"),
                name_index=pii.name_index(name),
                phone_enc=pii.encrypt(phone, field="phone"),
                phone_hash=pii.phone_hash(phone) if phone else "",
                gender=gender,
                city=city.strip(),
                source=source[:64],
                lifecycle_stage=lifecycle_stage,
                owner_guide=owner,
                created_at=now,
                updated_at=now,
            )
            Identity.objects.bulk_create(
                [
                    Identity(tenant_id=actor.tenant_id, customer=customer, kind=kind, value=value, created_at=now)
                    for kind, value in wanted
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
    except IntegrityError as exc:
        raise Conflict("another customer already has this phone or identity", field="identities") from exc
    return customer


UPDATABLE = ("name", "phone", "gender", "city", "lifecycle_stage", "intent_level", "owner_guide_id")


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
        if new_hash and Identity.objects.filter(
            tenant_id=actor.tenant_id, kind=Identity.Kind.PHONE, value=new_hash
        ).exclude(customer_id=customer.id).exists():
            raise Conflict("another customer already has this phone", field="phone")
        Identity.objects.filter(customer=customer, kind=Identity.Kind.PHONE).delete()
        if new_hash:
            Identity.objects.create(
                tenant_id=actor.tenant_id, customer=customer, kind=Identity.Kind.PHONE, value=new_hash,
                created_at=timezone.now(),
            )
        customer.phone_enc = pii.encrypt(phone, field="phone")
        customer.phone_hash = new_hash
    if "gender" in changes:
        customer.gender = _clean_choice(changes["gender"], Gender.values, "gender")
    if "city" in changes:
        city = (changes["city"] or "").strip()
        if len(city) > MAX_CITY:
            raise ValidationFailed(f"city is longer than {MAX_CITY} characters", field="city")
        customer.city = city
    if "lifecycle_stage" in changes:
        customer.lifecycle_stage = _clean_choice(changes["lifecycle_stage"], LifecycleStage.values, "lifecycle_stage")
    if "intent_level" in changes:
        level = changes["intent_level"]
        if not isinstance(level, int) or not 0 <= level <= 5:
            raise ValidationFailed("intent_level must be an integer from 0 to 5", field="intent_level")
        customer.intent_level = level
    if "owner_guide_id" in changes:
        guide_id = changes["owner_guide_id"]
        customer.owner_guide = access_guide(actor=actor, guide_id=guide_id) if guide_id else None
    customer.updated_at = timezone.now()
    customer.save()
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
def follow_relation_delete(*, actor: Actor, customer_id: int, guide_id: int, by_customer: bool) -> FollowRelation:
    """Mark a follow relation deleted, by the customer (流失) or by the guide."""
    customer = access_customer(actor=actor, customer_id=customer_id)
    relation = FollowRelation.objects.select_for_update().filter(
        tenant_id=actor.tenant_id, customer=customer, guide_id=guide_id
    ).first()
    if relation is None:
        raise ValidationFailed("this guide has no relation with the customer", field="guide_id")
    now = timezone.now()
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
    return relation


def customer_reveal(*, actor: Actor, customer_id: int, ip: str | None = None) -> dict[str, str]:
    """Decrypt a customer's personal data for display, writing a `pii.reveal` audit row."""
    customer = access_customer(actor=actor, customer_id=customer_id)
    audit_record(actor=actor, action="pii.reveal", target_type="customer", target_id=customer.id, ip=ip)
    return customer_pii(customer)


EXPORT_HEADER = ["id", "name", "phone", "city", "lifecycle_stage", "owner_guide", "created_at"]


def customer_export_csv(
    *, actor: Actor, customers: Iterable[Customer], reveal: bool, ip: str | None = None, filters: dict[str, Any]
) -> str:
    """Customers as CSV (masked unless `reveal`), writing a `pii.export` audit row with the filters used."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_HEADER)
    count = 0
    for customer in customers:
        data = customer_pii(customer)
        name, phone = (data["name"], data["phone"]) if reveal else (pii.mask_name(data["name"]), pii.mask_phone(data["phone"]))
        writer.writerow([
            customer.id, name, phone, customer.city, customer.lifecycle_stage,
            customer.owner_guide.name if customer.owner_guide else "", customer.created_at.isoformat(),
        ])
        count += 1
    audit_record(
        actor=actor, action="pii.export", target_type="customer", detail={"rows": count, "revealed": reveal, "filters": filters}, ip=ip,
    )
    return buffer.getvalue()
