"""The tags context's part of a data subject's rights (PIPL): a customer's tags with their sources.

Tags stay on an erased customer: once the customer row holds no personal data they describe nobody anyone can
identify, and tag counts (segments, reports) stay right. Called by siyu.privacy only.
"""

from __future__ import annotations

from typing import Any

from siyu.tags.models import CustomerTag


def export_customer(*, tenant_id: int, customer_id: int) -> dict[str, Any]:
    rows = (
        CustomerTag.objects.filter(tenant_id=tenant_id, customer_id=customer_id)
        .select_related("tag__group", "guide")
        .order_by("created_at", "id")
    )
    return {
        "tags": [
            {
                "group": row.tag.group.name,
                "tag": row.tag.name,
                "source": row.source,
                "rule": row.rule,
                "guide": row.guide.name if row.guide else None,
                "created_at": row.created_at.isoformat(),
            }
            for row in rows
        ]
    }


def erase_customer(*, tenant_id: int, customer_id: int) -> dict[str, int]:
    return {}
