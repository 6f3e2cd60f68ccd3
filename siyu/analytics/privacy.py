"""The analytics context's part of a data subject's rights (PIPL): the customer's events (the timeline).

Erasure keeps every event, with its customer_id, as an opaque id (the customer row is a tombstone), so counts by
type and funnels stay right; it removes the properties that can hold personal data. The log is append-only for
services; this queryset update is its one sanctioned exception, ordered by law. Called by siyu.privacy only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.utils import timezone

from siyu.analytics.models import Event, SegmentExport
from siyu.analytics.selectors import segment_export_path
from siyu.core.exports import csv_exports_expire

# Property keys whose values can identify a person or hold what they said; every other key holds ids, codes,
# amounts or enums (siyu.analytics.events).
PII_PROPERTIES = frozenset(
    {
        "name",
        "nickname",
        "phone",
        "mobile",
        "email",
        "address",
        "remark",
        "description",
        "text",
        "message",
        "content",
        "keyword",
        "keywords",
        "external_userid",
        "unionid",
        "openid",
        "buyer_id",
        "buyer_nick",
        "userid",
        "avatar",
        "ip",
        "device",
        "device_hash",
    }
)


def export_customer(*, tenant_id: int, customer_id: int) -> dict[str, Any]:
    rows = Event.objects.filter(tenant_id=tenant_id, customer_id=customer_id).order_by("occurred_at", "id")
    return {
        "events": [
            {
                "type": e.type,
                "occurred_at": e.occurred_at.isoformat(),
                "guide_id": e.guide_id,
                "properties": e.properties,
            }
            for e in rows.iterator(chunk_size=2000)
        ]
    }


def erase_customer(*, tenant_id: int, customer_id: int) -> dict[str, int]:
    changed = 0
    rows = Event.objects.filter(tenant_id=tenant_id, customer_id=customer_id).values_list("id", "properties")
    for event_id, properties in rows.iterator(chunk_size=2000):
        if not isinstance(properties, dict) or not PII_PROPERTIES & properties.keys():
            continue
        kept = {k: v for k, v in properties.items() if k not in PII_PROPERTIES}
        changed += Event.objects.filter(id=event_id).update(properties=kept)
    # Segment exports made so far may hold the person: withdrawn (see siyu.customers.privacy).
    exports = csv_exports_expire(
        model=SegmentExport,
        path_of=segment_export_path,
        tenant_id=tenant_id,
        created_before=timezone.now(),
        reason=f"withdrawn: a customer's data was erased (customer {customer_id}); export again",
    )
    return {"events_anonymised": changed, "exports_withdrawn": exports}


def exports_expire_due() -> int:
    """Every brand's exports older than SIYU_EXPORT_RETENTION_DAYS: files deleted, rows expired (the worker's sweep)."""
    days = settings.SIYU_EXPORT_RETENTION_DAYS
    return csv_exports_expire(
        model=SegmentExport,
        path_of=segment_export_path,
        created_before=timezone.now() - dt.timedelta(days=days),
        reason=f"expired: exports are kept {days} days",
    )
