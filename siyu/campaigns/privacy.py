"""The campaigns context's part of a data subject's rights (PIPL): participation in fission campaigns.

Erasure keeps the participant rows and their counts (leaderboards and campaign totals stay right) and removes what
points at the person: page tokens (replaced, so old links stop working), the personal QR, the device fingerprints
of landing visits (replaced per row, so they match nothing) and the texts sent to them. Called by siyu.privacy only.
"""

from __future__ import annotations

import secrets
from typing import Any

from siyu.campaigns.models import LandingVisit, Participant, ParticipantDevice, ParticipantMessage


def export_customer(*, tenant_id: int, customer_id: int) -> dict[str, Any]:
    rows = (
        Participant.objects.filter(tenant_id=tenant_id, customer_id=customer_id)
        .select_related("campaign")
        .order_by("joined_at", "id")
    )
    return {
        "campaigns": [
            {
                "campaign": p.campaign.name,
                "kind": p.campaign.kind,
                "joined_at": p.joined_at.isoformat(),
                "invites_counted": p.invites_counted,
                "invites_pending": p.invites_pending,
                "invites_rejected": p.invites_rejected,
                "review": p.review,
                "rewards": [{"tier": g.tier.reward_name, "status": g.status} for g in p.grants.select_related("tier")],
                "messages": [m.text for m in p.messages.order_by("created_at", "id")],
            }
            for p in rows
        ]
    }


def erase_customer(*, tenant_id: int, customer_id: int) -> dict[str, int]:
    participant_ids = list(
        Participant.objects.filter(tenant_id=tenant_id, customer_id=customer_id).values_list("id", flat=True)
    )
    for participant_id in participant_ids:
        Participant.objects.filter(id=participant_id).update(
            token=secrets.token_urlsafe(32), share_token=secrets.token_urlsafe(32), qr_url="", fraud_reasons=[]
        )
    devices = 0
    for model in (LandingVisit, ParticipantDevice):
        for row_id in model.objects.filter(participant_id__in=participant_ids).values_list("id", flat=True):
            devices += model.objects.filter(id=row_id).update(device_hash=f"erased:{row_id}")
    messages = ParticipantMessage.objects.filter(participant_id__in=participant_ids).update(text="")
    return {"participants": len(participant_ids), "devices": devices, "messages": messages}
