"""The wecom context's part of a data subject's rights (PIPL): the raw callbacks that name the customer.

The callback log keeps every callback as WeCom sent it; those about the customer carry their external_userid (and
a welcome code). Erasure empties the stored XML and drops those fields from the parsed event, keeping the row so
the log's counts stay right. Must run before the customers context's erasure, which forgets the ids.
Called by siyu.privacy only.
"""

from __future__ import annotations

from typing import Any

from siyu.customers.privacy import wecom_external_userids
from siyu.wecom.models import RawCallback

_PERSONAL_KEYS = ("ExternalUserID", "WelcomeCode", "UserID", "FailReason")


def _callbacks(tenant_id: int, customer_id: int) -> Any:
    ids = wecom_external_userids(tenant_id=tenant_id, customer_id=customer_id)
    return RawCallback.objects.filter(tenant_id=tenant_id, event__ExternalUserID__in=ids) if ids else None


def export_customer(*, tenant_id: int, customer_id: int) -> dict[str, Any]:
    rows = _callbacks(tenant_id, customer_id)
    if rows is None:
        return {"callbacks": []}
    return {
        "callbacks": [
            {"event_type": r.event_type, "change_type": r.change_type, "received_at": r.received_at.isoformat()}
            for r in rows.order_by("received_at", "id")
        ]
    }


def erase_customer(*, tenant_id: int, customer_id: int) -> dict[str, int]:
    rows = _callbacks(tenant_id, customer_id)
    if rows is None:
        return {"callbacks": 0}
    changed = 0
    for row_id, event in rows.values_list("id", "event"):
        kept = {k: v for k, v in event.items() if k not in _PERSONAL_KEYS}
        changed += RawCallback.objects.filter(id=row_id).update(xml="", event=kept)
    return {"callbacks": changed}
