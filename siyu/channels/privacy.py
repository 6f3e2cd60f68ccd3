"""The channels context's part of a data subject's rights (PIPL): the welcome messages a customer was sent.

A sent welcome text may carry the customer's nickname ({客户昵称}), so erasure empties it and the single-use
welcome code; the row stays for the channel's send statistics. Called by siyu.privacy only.
"""

from __future__ import annotations

from typing import Any

from siyu.channels.models import WelcomeSend


def export_customer(*, tenant_id: int, customer_id: int) -> dict[str, Any]:
    rows = WelcomeSend.objects.filter(tenant_id=tenant_id, customer_id=customer_id).order_by("received_at", "id")
    return {
        "welcome_messages": [
            {"state": w.state, "status": w.status, "text": w.text, "received_at": w.received_at.isoformat()}
            for w in rows
        ]
    }


def erase_customer(*, tenant_id: int, customer_id: int) -> dict[str, int]:
    changed = WelcomeSend.objects.filter(tenant_id=tenant_id, customer_id=customer_id).update(text="", welcome_code="")
    return {"welcome_sends": changed}
