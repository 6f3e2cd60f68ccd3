"""Customer groups (客户群): WeCom group chats owned by a guide, and who is (or was) in them."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Guide, TenantOwned
from siyu.customers.models import Customer


class CustomerGroup(TenantOwned):
    """A WeCom customer group chat (客户群), mirrored from groupchat/get.

    `owner` is the guide who owns the chat in WeCom (群主); the group is in a user's data scope when its owner is.
    `member_count` counts current members (internal and external), kept in step with the member rows.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        DISMISSED = "dismissed", _("Dismissed")

    chat_id = models.CharField(max_length=64)
    name = models.CharField(max_length=100, blank=True, default="")
    owner = models.ForeignKey(Guide, on_delete=models.PROTECT, related_name="customer_groups")
    notice = models.TextField(blank=True, default="")
    created_at = models.DateTimeField()  # WeCom's create_time
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    member_count = models.PositiveIntegerField(default=0)
    # WeCom's hash of the member list: equal versions mean an unchanged member list.
    member_version = models.CharField(max_length=64, blank=True, default="")
    dismissed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "chat_id"], name="customer_group_chat_unique")]
        indexes = [models.Index(fields=["tenant", "owner", "status"], name="customer_group_owner_status")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name or self.chat_id


class GroupMember(TenantOwned):
    """One person in a customer group: a corp member (linked to a guide) or an external contact (to a customer).

    One row per (group, WeCom id): someone who leaves keeps the row with `left_at` set, and a re-join clears it
    (the timeline keeps every join and leave as events).
    """

    class Type(models.IntegerChoices):
        # WeCom's member_list.type codes.
        MEMBER = 1, _("Corp member")
        EXTERNAL = 2, _("External contact")

    group = models.ForeignKey(CustomerGroup, on_delete=models.CASCADE, related_name="members")
    member_type = models.PositiveSmallIntegerField(choices=Type.choices)
    # The corp member's userid (type 1) or the customer's external_userid (type 2), as WeCom names them.
    userid = models.CharField(max_length=64)
    customer = models.ForeignKey(Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    guide = models.ForeignKey(Guide, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    join_time = models.DateTimeField()
    # groupchat/get's join_scene: 1 invited directly by a member, 2 via an invite link, 3 scanned the group QR code.
    join_scene = models.PositiveSmallIntegerField(default=0)
    invitor = models.CharField(max_length=64, blank=True, default="")
    # The state of the 「加入群聊」 way the member came through (channel attribution of group codes).
    state = models.CharField(max_length=30, blank=True, default="")
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "userid"], name="group_member_unique")]
        indexes = [
            models.Index(fields=["tenant", "customer"], name="group_member_customer"),
            models.Index(fields=["tenant", "userid"], name="group_member_userid"),
        ]

    def __str__(self) -> str:
        return f"{self.userid} in {self.group_id}"
