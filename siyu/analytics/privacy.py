"""The analytics context's part of a data subject's rights (PIPL): the customer's events (the timeline).

Erasure keeps every event, with its customer_id, as an opaque id (the customer row is a tombstone), so counts by
type and funnels stay right; it removes the properties that can hold personal data. The log is append-only for
services; this queryset update is its one sanctioned exception, ordered by law. Called by siyu.privacy only.
"""

from __future__ import annotations

from typing import Any

from siyu.analytics.models import Event

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
    return {"events_anonymised": changed}
