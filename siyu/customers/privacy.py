"""The customers context's part of a data subject's rights (PIPL): what siyu holds on one customer row, and its
erasure. Called by siyu.privacy's orchestrator only, which checks the actor and audits.

Erasure empties the customer row (name, phone, address, their blind indexes and match keys) and keeps it as a
tombstone, so lifecycle counts stay right; deletes every identity, so a later add by the same person creates a new
customer; and clears what guides wrote about the person on follow relations (remark, description), whose WeCom
external_userid is replaced by an opaque marker.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.utils import timezone

from siyu.core import pii
from siyu.core.exports import csv_exports_expire
from siyu.customers.models import Customer, CustomerExport, CustomerMerge, FollowRelation, Identity
from siyu.customers.selectors import customer_export_path

_EMPTIED = {
    "name_enc": "",
    "name_index": "",
    "phone_enc": "",
    "phone_hash": "",
    "address_enc": "",
    "match_name_city_phone": "",
    "match_name_address": "",
}


def erased_marker(row_id: int) -> str:
    """What replaces a WeCom id on a kept row: unique per row (unique constraints hold), meaningless outside."""
    return f"erased:{row_id}"


def merged_customer_ids(*, tenant_id: int, customer_id: int) -> list[int]:
    """The customer and every customer merged into it, directly or through other merges (survivor first)."""
    found = [customer_id]
    frontier = [customer_id]
    while frontier:
        children = list(
            Customer.objects.filter(tenant_id=tenant_id, merged_into_id__in=frontier)
            .exclude(id__in=found)
            .values_list("id", flat=True)
        )
        found.extend(sorted(children))
        frontier = children
    return found


def wecom_external_userids(*, tenant_id: int, customer_id: int) -> list[str]:
    """Every WeCom external_userid the customer is known by (identities and follow relations)."""
    ids = set(
        Identity.objects.filter(
            tenant_id=tenant_id, customer_id=customer_id, kind=Identity.Kind.WECOM_EXTERNAL_USERID
        ).values_list("value", flat=True)
    )
    ids.update(
        FollowRelation.objects.filter(tenant_id=tenant_id, customer_id=customer_id).values_list(
            "external_userid", flat=True
        )
    )
    return sorted(v for v in ids if not v.startswith("erased:"))


def lookup_keys(*, tenant_id: int, customer_id: int) -> tuple[list[str], list[str]]:
    """The customer's phone hashes and unionids, for contexts that find a person by them (leads)."""
    phones = set(Customer.objects.filter(tenant_id=tenant_id, id=customer_id).values_list("phone_hash", flat=True))
    phones.update(
        Identity.objects.filter(tenant_id=tenant_id, customer_id=customer_id, kind=Identity.Kind.PHONE).values_list(
            "value", flat=True
        )
    )
    unionids = Identity.objects.filter(
        tenant_id=tenant_id, customer_id=customer_id, kind=Identity.Kind.UNIONID
    ).values_list("value", flat=True)
    return sorted(p for p in phones if p), sorted(unionids)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def export_customer(*, tenant_id: int, customer_id: int) -> dict[str, Any]:
    """Profile (decrypted), identities (phones as held: a keyed hash), follow relations and merges."""
    customer = Customer.objects.select_related("owner_guide").get(tenant_id=tenant_id, id=customer_id)
    identities = Identity.objects.filter(tenant_id=tenant_id, customer_id=customer_id).order_by("id")
    relations = (
        FollowRelation.objects.filter(tenant_id=tenant_id, customer_id=customer_id)
        .select_related("guide")
        .order_by("id")
    )
    merges = CustomerMerge.objects.filter(tenant_id=tenant_id, survivor_id=customer_id).order_by("id")
    return {
        "profile": {
            "id": customer.id,
            "name": pii.decrypt(customer.name_enc, field="name"),
            "phone": pii.decrypt(customer.phone_enc, field="phone"),
            "address": pii.decrypt(customer.address_enc, field="address"),
            "gender": customer.gender,
            "city": customer.city,
            "lifecycle_stage": customer.lifecycle_stage,
            "intent_level": customer.intent_level,
            "source": customer.source,
            "owner_guide": customer.owner_guide.name if customer.owner_guide else None,
            "created_at": _iso(customer.created_at),
            "updated_at": _iso(customer.updated_at),
        },
        "identities": [
            {"kind": i.kind, "value": i.value, "verified": i.verified, "created_at": _iso(i.created_at)}
            for i in identities
        ],
        "follow_relations": [
            {
                "guide": r.guide.name,
                "external_userid": r.external_userid,
                "added_at": _iso(r.added_at),
                "remark": r.remark,
                "description": r.description,
                "add_way": r.add_way,
                "state": r.state,
                "status": r.status,
                "deleted_at": _iso(r.deleted_at),
            }
            for r in relations
        ],
        "merges": [
            {
                "merged_customer_id": m.merged_id,
                "rule": m.rule,
                "status": m.status,
                "merged_at": _iso(m.merged_at),
                "unmerged_at": _iso(m.unmerged_at),
            }
            for m in merges
        ],
    }


def erase_customer(*, tenant_id: int, customer_id: int) -> dict[str, int]:
    customers = Customer.objects.filter(tenant_id=tenant_id, id=customer_id).update(
        **_EMPTIED, updated_at=timezone.now()
    )
    identities, _ = Identity.objects.filter(tenant_id=tenant_id, customer_id=customer_id).delete()
    relations = 0
    for relation_id in FollowRelation.objects.filter(tenant_id=tenant_id, customer_id=customer_id).values_list(
        "id", flat=True
    ):
        relations += FollowRelation.objects.filter(id=relation_id).update(
            remark="", description="", external_userid=erased_marker(relation_id)
        )
    # A merge's record names the identity that matched and the profile values it filled in: both personal data.
    merges = CustomerMerge.objects.filter(tenant_id=tenant_id, survivor_id=customer_id).update(
        identity_value="", filled={}
    ) + CustomerMerge.objects.filter(tenant_id=tenant_id, merged_id=customer_id).update(identity_value="", filled={})
    # Exports made so far may hold the person: withdrawn, so the erasure reaches every copy siyu made.
    exports = csv_exports_expire(
        model=CustomerExport,
        path_of=customer_export_path,
        tenant_id=tenant_id,
        created_before=timezone.now(),
        reason=f"withdrawn: a customer's data was erased (customer {customer_id}); export again",
    )
    return {
        "customers": customers,
        "identities": identities,
        "follow_relations": relations,
        "merges": merges,
        "exports_withdrawn": exports,
    }


def exports_expire_due() -> int:
    """Every brand's exports older than SIYU_EXPORT_RETENTION_DAYS: files deleted, rows expired (the worker's sweep)."""
    days = settings.SIYU_EXPORT_RETENTION_DAYS
    return csv_exports_expire(
        model=CustomerExport,
        path_of=customer_export_path,
        created_before=timezone.now() - dt.timedelta(days=days),
        reason=f"expired: exports are kept {days} days",
    )
