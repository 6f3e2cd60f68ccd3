"""The commerce context's part of a data subject's rights (PIPL): a customer's orders.

Orders hold no personal data of their own (no names, phones or addresses: those live on the customer row), so an
erasure keeps them on the tombstone customer and GMV stays right. Called by siyu.privacy only.
"""

from __future__ import annotations

from typing import Any

from siyu.commerce.models import Order


def export_customer(*, tenant_id: int, customer_id: int) -> dict[str, Any]:
    rows = Order.objects.filter(tenant_id=tenant_id, customer_id=customer_id).order_by("paid_at", "id")
    return {
        "orders": [
            {
                "shop": o.shop,
                "order_no": o.order_no,
                "status": o.status,
                "amount_cents": o.amount_cents,
                "item_count": o.item_count,
                "product_series": o.product_series,
                "paid_at": o.paid_at.isoformat(),
            }
            for o in rows
        ]
    }


def erase_customer(*, tenant_id: int, customer_id: int) -> dict[str, int]:
    return {}
