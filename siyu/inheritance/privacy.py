"""The inheritance context's part of a data subject's rights (PIPL): transfers of the customer between guides.

Erasure keeps the transfer items (the transfer's totals stay right) and replaces the WeCom external_userid on them
with an opaque marker. Called by siyu.privacy only.
"""

from __future__ import annotations

from typing import Any

from siyu.customers.privacy import erased_marker
from siyu.inheritance.models import TransferItem, UnassignedCustomer


def export_customer(*, tenant_id: int, customer_id: int) -> dict[str, Any]:
    items = (
        TransferItem.objects.filter(tenant_id=tenant_id, customer_id=customer_id)
        .select_related("transfer__handover", "transfer__takeover")
        .order_by("id")
    )
    return {
        "transfers": [
            {
                "from_guide": i.transfer.handover.name,
                "to_guide": i.transfer.takeover.name,
                "kind": i.transfer.kind,
                "status": i.status,
                "created_at": i.transfer.created_at.isoformat(),
            }
            for i in items
        ]
    }


def erase_customer(*, tenant_id: int, customer_id: int) -> dict[str, int]:
    changed = 0
    for model in (TransferItem, UnassignedCustomer):
        for row_id in model.objects.filter(tenant_id=tenant_id, customer_id=customer_id).values_list("id", flat=True):
            changed += model.objects.filter(id=row_id).update(external_userid=erased_marker(row_id))
    return {"transfer_items": changed}
