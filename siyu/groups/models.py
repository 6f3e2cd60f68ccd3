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


# -- group live codes (群活码), tag invitations and group migration (社群迁移) ----------------------------------------

# WeCom lets at most 200 people join a customer group through a QR code (the emulator's join_way_room_limit);
# a code switches a little before, so the guide keeps room to invite people by hand.
WECOM_ROOM_LIMIT = 200
DEFAULT_THRESHOLD = 180
MAX_WAY_CHATS = 5  # groupchat/add_join_way takes at most five chats (wecom-api.md §4.5)
MAX_STATE = 30


class GroupCode(TenantOwned):
    """A group live code (群活码): one permanent QR over several customer groups, backed by a WeCom 「加入群聊」 way.

    The way's `qr_code` never changes; the groups behind it do: the way holds the current window of up to five
    groups with room (`way_chat_ids`), moved on as groups reach their threshold or as the schedule turns. With
    `auto_create` on, WeCom opens the next group (`room_base_name` + a number) when every listed group is full.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")

    class SwitchMode(models.TextChoices):
        THRESHOLD = "threshold", _("When a group reaches its threshold")
        SCHEDULE = "schedule", _("By schedule")

    name = models.CharField(max_length=100)
    store = models.ForeignKey("core.Store", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    state = models.CharField(max_length=MAX_STATE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    switch_mode = models.CharField(max_length=16, choices=SwitchMode.choices, default=SwitchMode.THRESHOLD)
    default_threshold = models.PositiveSmallIntegerField(default=DEFAULT_THRESHOLD)
    auto_create = models.BooleanField(default=True)
    room_base_name = models.CharField(max_length=40, blank=True, default="")
    room_base_id = models.PositiveIntegerField(default=1)
    invite_text = models.CharField(max_length=500, blank=True, default="")
    # The WeCom join way: its id, its QR picture, and the chats it holds now (as last written to WeCom).
    config_id = models.CharField(max_length=64, blank=True, default="")
    qr_code = models.CharField(max_length=500, blank=True, default="")
    way_chat_ids = models.JSONField(default=list, blank=True)
    # Every group has reached its threshold and WeCom will not open another: joiners are turned away.
    is_full = models.BooleanField(default=False)
    synced_at = models.DateTimeField(null=True, blank=True)
    sync_error = models.CharField(max_length=500, blank=True, default="")
    # The id of the public landing page (/g/<token>/): unguessable, so codes cannot be enumerated.
    public_token = models.CharField(max_length=32, unique=True)
    created_by_id = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "state"], name="group_code_state_unique")]
        indexes = [models.Index(fields=["tenant", "store"], name="group_code_store")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class GroupCodeSlot(TenantOwned):
    """One group a code rotates over, in order, with the member count at which the code moves on.

    In schedule mode `active_from`/`active_until` bound when the group takes joiners (either may be open).
    """

    code = models.ForeignKey(GroupCode, on_delete=models.CASCADE, related_name="slots")
    group = models.ForeignKey(CustomerGroup, on_delete=models.CASCADE, related_name="code_slots")
    position = models.PositiveIntegerField(default=0)
    threshold = models.PositiveSmallIntegerField(default=DEFAULT_THRESHOLD)
    active_from = models.DateTimeField(null=True, blank=True)
    active_until = models.DateTimeField(null=True, blank=True)
    auto_created = models.BooleanField(default=False)  # opened by WeCom when the others were full
    added_at = models.DateTimeField()
    full_at = models.DateTimeField(null=True, blank=True)  # when it first reached its threshold

    class Meta:
        constraints = [models.UniqueConstraint(fields=["code", "group"], name="group_code_slot_unique")]
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.code_id}#{self.position}: {self.group_id}"


class GroupInviteRule(TenantOwned):
    """Customers who get `tag` are invited to `code` (按标签邀请入群): one rule per tag."""

    tag = models.ForeignKey("tags.Tag", on_delete=models.CASCADE, related_name="+")
    code = models.ForeignKey(GroupCode, on_delete=models.CASCADE, related_name="invite_rules")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "tag"], name="group_invite_rule_tag_unique")]

    def __str__(self) -> str:
        return f"tag {self.tag_id} → code {self.code_id}"


class GroupInvite(TenantOwned):
    """An invitation of one customer to a code's groups: a 1:1 message from their guide carrying the code
    (externalcontact/add_msg_template; the guide confirms it in WeCom). One per customer and code."""

    class Status(models.TextChoices):
        SENDING = "sending", _("Sending")
        INVITED = "invited", _("Invited")
        JOINED = "joined", _("Joined")
        FAILED = "failed", _("Failed")

    code = models.ForeignKey(GroupCode, on_delete=models.CASCADE, related_name="invites")
    rule = models.ForeignKey(GroupInviteRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    guide = models.ForeignKey(Guide, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SENDING)
    msgid = models.CharField(max_length=64, blank=True, default="")
    error = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField()
    invited_at = models.DateTimeField(null=True, blank=True)
    joined_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["code", "customer"], name="group_invite_unique")]
        indexes = [models.Index(fields=["tenant", "status"], name="group_invite_status")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"invite {self.customer_id} to {self.code_id}"


class GroupMigration(TenantOwned):
    """A group migration campaign (社群迁移, seed 001): members of personal-WeChat groups move to the WeCom groups
    of a group code. Personal WeChat has no API, so each source group gets its own poster whose join way carries
    its own state; siyu counts who arrives through each state."""

    name = models.CharField(max_length=100)
    code = models.ForeignKey(GroupCode, on_delete=models.PROTECT, related_name="migrations")
    caption = models.CharField(max_length=200, blank=True, default="")
    starts_on = models.DateField()
    ends_on = models.DateField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class MigrationSource(TenantOwned):
    """One personal-WeChat group being migrated, with its own join way (state "mg<migration>s<source>")."""

    migration = models.ForeignKey(GroupMigration, on_delete=models.CASCADE, related_name="sources")
    name = models.CharField(max_length=100)
    member_count = models.PositiveIntegerField()
    # The imported member list (nicknames, one a line): personal data, encrypted at rest; only its size is shown.
    members_enc = models.TextField(blank=True, default="")
    position = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=MAX_STATE, blank=True, default="")
    config_id = models.CharField(max_length=64, blank=True, default="")
    qr_code = models.CharField(max_length=500, blank=True, default="")
    way_chat_ids = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["tenant", "state"], name="migration_source_state")]

    def __str__(self) -> str:
        return self.name
