"""Channel live codes (渠道活码), their guides, welcome messages (欢迎语) and every welcome send.

A live code is a WeCom 「联系我」 contact way (config_id, qr_code) plus what siyu adds around it: which guides it
reaches and how they are picked, the tags a new customer gets, the welcome message, and the `state` that
attributes each add (and its follow relation) to the code.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Guide, Store, TenantOwned
from siyu.customers.models import Customer, FollowRelation
from siyu.tags.models import Tag

STATE_MAX = 30  # WeCom's limit on a contact way's state (wecom-api.md §4.3)


class LiveCode(TenantOwned):
    """A channel live code (渠道活码): one QR for a channel, ad, store or event over one or more guides."""

    class Purpose(models.TextChoices):
        CHANNEL = "channel", _("Channel")
        STORE = "store", _("Store")
        FISSION = "fission", _("Fission")

    class Strategy(models.TextChoices):
        ROUND_ROBIN = "round_robin", _("Round robin")
        LEAST_LOADED = "least_loaded", _("Least loaded")
        SCHEDULE = "schedule", _("Schedule")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")
        DELETED = "deleted", _("Deleted")

    name = models.CharField(max_length=100)
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.CHANNEL)
    store = models.ForeignKey(Store, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.ROUND_ROBIN)
    state = models.CharField(max_length=STATE_MAX)
    guides = models.ManyToManyField(Guide, through="LiveCodeGuide", related_name="+")
    # Who takes the adds when every guide of the code is capped or off duty; None → the brand IP account.
    fallback_guide = models.ForeignKey(Guide, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    tags = models.ManyToManyField(Tag, blank=True, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    config_id = models.CharField(max_length=64, blank=True, default="")
    qr_code = models.URLField(max_length=500, blank=True, default="")
    # The members the contact way lists in WeCom right now (what the strategy last pushed).
    wecom_users = models.JSONField(default=list, blank=True)
    # The state the way has in WeCom: an edited state is pushed by the next rebalance.
    wecom_state = models.CharField(max_length=STATE_MAX, blank=True, default="")
    # Round robin: how many adds the code has handed out, so the next guide is known without a scan.
    rotation = models.PositiveIntegerField(default=0)
    # When the eligible guides may change next (a schedule window or a new day for caps): rebalance then.
    rebalance_at = models.DateTimeField(null=True, blank=True)
    # The unguessable part of the public QR picture URL (landing pages show it without a login).
    qr_token = models.CharField(max_length=43, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # A state attributes adds to exactly one live code; a deleted code frees its state.
            models.UniqueConstraint(
                fields=["tenant", "state"], condition=~Q(status="deleted"), name="live_code_state_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "-created_at"], name="live_code_tenant_status"),
            models.Index(fields=["tenant", "store", "purpose"], name="live_code_tenant_store"),
            models.Index(fields=["rebalance_at"], name="live_code_rebalance_at"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class LiveCodeGuide(TenantOwned):
    """One guide of a live code, with an optional daily cap of adds and an optional schedule.

    `schedule` is a list of windows {"days": [0..6] (Monday = 0), "start": "HH:MM", "end": "HH:MM"} in the brand's
    time zone; empty means always on duty. Only the schedule strategy reads it.
    """

    live_code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, related_name="code_guides")
    guide = models.ForeignKey(Guide, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField(default=0)
    daily_cap = models.PositiveIntegerField(null=True, blank=True)
    schedule = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["live_code", "guide"], name="live_code_guide_unique")]
        ordering = ["position", "id"]


class WelcomeMessage(TenantOwned):
    """A welcome message (欢迎语): per live code, per guide, or the brand's default; the most specific wins.

    `text` may hold placeholders ({客户昵称}/{nickname}, {导购}/{guide}, {门店}/{store}); `attachments` holds up to
    nine {"msgtype": "image"|"link"|"miniprogram"|"file", ...} entries (see services.clean_attachments).
    """

    class Scope(models.TextChoices):
        CODE = "code", _("Live code")
        GUIDE = "guide", _("Guide")
        DEFAULT = "default", _("Default")

    scope = models.CharField(max_length=16, choices=Scope.choices)
    live_code = models.ForeignKey(LiveCode, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    guide = models.ForeignKey(Guide, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    text = models.TextField(blank=True, default="")
    attachments = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "live_code"], condition=Q(scope="code"), name="welcome_code_unique"
            ),
            models.UniqueConstraint(
                fields=["tenant", "guide"], condition=Q(scope="guide"), name="welcome_guide_unique"
            ),
            models.UniqueConstraint(fields=["tenant"], condition=Q(scope="default"), name="welcome_default_unique"),
        ]


class WelcomeAsset(TenantOwned):
    """An image or file a welcome message attaches, kept here and uploaded to WeCom's temporary media when sent.

    WeCom's temporary media lives 3 days: `media_id` is reused until `media_uploaded_at` is older than the
    refresh margin, then uploaded again.
    """

    class Kind(models.TextChoices):
        IMAGE = "image", _("Image")
        FILE = "file", _("File")

    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=128)
    content_type = models.CharField(max_length=100, default="application/octet-stream")
    content = models.BinaryField()
    size = models.PositiveIntegerField(default=0)
    media_id = models.CharField(max_length=128, blank=True, default="")
    media_uploaded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class WelcomeSend(TenantOwned):
    """One welcome message sent (or not) for one add: what went out, WeCom's answer and how long it took.

    `latency_ms` runs from siyu receiving the add callback to WeCom accepting the message (WeCom allows 20 s).
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")

    live_code = models.ForeignKey(LiveCode, on_delete=models.SET_NULL, null=True, blank=True, related_name="sends")
    welcome_message = models.ForeignKey(WelcomeMessage, on_delete=models.SET_NULL, null=True, blank=True)
    follow_relation = models.ForeignKey(FollowRelation, on_delete=models.SET_NULL, null=True, blank=True)
    customer = models.ForeignKey(Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    guide = models.ForeignKey(Guide, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    state = models.CharField(max_length=STATE_MAX, blank=True, default="")
    welcome_code = models.CharField(max_length=128, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    errcode = models.IntegerField(default=0)
    error = models.CharField(max_length=300, blank=True, default="")
    text = models.TextField(blank=True, default="")
    attachment_count = models.PositiveSmallIntegerField(default=0)
    received_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # A welcome code is usable once: one send per code, whatever re-runs the processing.
            models.UniqueConstraint(
                fields=["tenant", "welcome_code"], condition=~Q(welcome_code=""), name="welcome_send_code_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "live_code", "-created_at"], name="welcome_send_code"),
            models.Index(fields=["tenant", "status", "-created_at"], name="welcome_send_status"),
        ]
        ordering = ["-created_at", "-id"]


class QrBranding(TenantOwned):
    """The brand's logo drawn in the middle of every live code's QR (a default mark when none is uploaded)."""

    logo = models.BinaryField(blank=True, default=b"")
    logo_content_type = models.CharField(max_length=50, blank=True, default="")
    caption = models.CharField(max_length=60, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="qr_branding_unique")]
