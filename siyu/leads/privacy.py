"""The leads context's part of a data subject's rights (PIPL): leads of the same person (same phone or unionid).

A lead is found through the customer's phone hashes and unionids (so this must run before the customers context's
erasure forgets them), or by the customer it was converted into. Erasure empties the lead's name, phone, unionid
and their hashes; the row stays (lead counts per source and guide stay right) and no longer matches anyone.
Called by siyu.privacy only.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from siyu.core import pii
from siyu.customers.privacy import lookup_keys
from siyu.leads.models import Lead


def _leads(tenant_id: int, customer_id: int) -> QuerySet[Lead]:
    phones, unionids = lookup_keys(tenant_id=tenant_id, customer_id=customer_id)
    hashes = [pii.lookup_hash(u, kind="lead_unionid") for u in unionids]
    return Lead.objects.filter(
        Q(phone_hash__in=phones) | Q(unionid_hash__in=hashes) | Q(customer_id=customer_id), tenant_id=tenant_id
    )


def export_customer(*, tenant_id: int, customer_id: int) -> dict[str, Any]:
    return {
        "leads": [
            {
                "name": pii.decrypt(lead.name_enc, field="name"),
                "phone": pii.decrypt(lead.phone_enc, field="phone"),
                "unionid": pii.decrypt(lead.unionid_enc, field="unionid"),
                "source": lead.source,
                "status": lead.status,
                "intent_level": lead.intent_level,
                "created_at": lead.created_at.isoformat(),
                "converted_at": lead.converted_at.isoformat() if lead.converted_at else None,
            }
            for lead in _leads(tenant_id, customer_id).order_by("created_at", "id")
        ]
    }


def erase_customer(*, tenant_id: int, customer_id: int) -> dict[str, int]:
    changed = _leads(tenant_id, customer_id).update(
        name_enc="", phone_enc="", phone_hash="", unionid_hash="", unionid_enc=""
    )
    return {"leads": changed}
