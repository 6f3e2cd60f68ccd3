"""The typed event catalogue: every event a service may append to the log, with its required properties.

Adding an event type is adding a line here; `event_record` refuses unknown types and missing properties so
the timeline and the warehouse loader can rely on the shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class EventType:
    name: str
    label: Promise
    required: tuple[str, ...] = ()


EVENT_TYPES: dict[str, EventType] = {
    e.name: e
    for e in (
        EventType("customer.created", _("Customer created"), ("source",)),
        EventType("customer.updated", _("Profile updated"), ("fields",)),
        EventType("customer.stage_changed", _("Lifecycle stage changed"), ("from", "to", "by")),
        EventType("contact.added", _("Added a guide"), ("guide_id", "add_way")),
        EventType("contact.deleted_by_customer", _("Deleted the guide"), ("guide_id",)),
        EventType("contact.deleted_by_guide", _("Removed by the guide"), ("guide_id",)),
        EventType("contact.transfer_started", _("Transfer to another guide started"), ("from_guide_id", "to_guide_id")),
        EventType("contact.transferred", _("Taken over by another guide"), ("from_guide_id", "to_guide_id")),
        EventType("contact.transfer_failed", _("Transfer to another guide failed"), ("from_guide_id", "reason")),
        EventType("welcome.sent", _("Welcome message sent"), ("welcome_send_id", "latency_ms")),
        EventType("welcome.failed", _("Welcome message not sent"), ("welcome_send_id", "errcode", "error")),
        EventType("tag.added", _("Tag added"), ("tag_id", "source")),
        EventType("tag.removed", _("Tag removed"), ("tag_id",)),
        EventType("message.received", _("Sent a message"), ("guide_id",)),
        EventType("material.opened", _("Opened a material"), ("material",)),
        EventType("group.joined", _("Joined a group"), ("group",)),
        EventType("group.left", _("Left a group"), ("group",)),
        EventType("group.invited", _("Invited to a group"), ("group_code_id",)),
        EventType("checkin.done", _("Checked in"), ()),
        EventType("campaign.joined", _("Joined a campaign"), ("campaign_id",)),
        EventType("campaign.invited", _("Invited a friend"), ("campaign_id", "status")),
        EventType("reward.granted", _("Earned a reward"), ("campaign_id", "tier_id", "kind")),
        EventType("order.paid", _("Placed an order"), ("order_no", "amount_cents", "shop")),
        EventType("order.refunded", _("Refunded an order"), ("order_no", "amount_cents", "shop")),
        EventType("storecode.visited", _("Opened the store locator"), ("source", "fallback")),
        EventType("consent.granted", _("Gave consent"), ("purpose", "channel", "text_version")),
        EventType("consent.withdrawn", _("Withdrew consent"), ("purpose", "channel", "text_version")),
        EventType("lead.converted", _("Converted from a lead"), ("lead_id", "by")),
    )
}
