"""The WeCom connection of a brand and the raw callbacks it receives."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Tenant, TenantOwned

DEFAULT_API_BASE_URL = "https://qyapi.weixin.qq.com/cgi-bin/"


class WeComConnection(models.Model):
    """A brand's WeCom corp (企业微信) and the self-built app siyu acts as.

    Secrets, the callback token and the EncodingAESKey are stored encrypted (`siyu.core.pii`, bound to their
    column name); read them through `selectors.connection_secrets`. `api_base_url` points at the real API by
    default and at the offline emulator in demos and tests.
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="wecom_connection")
    # Corp ids are global in WeCom, so one corp can only be one brand's connection.
    corp_id = models.CharField(max_length=64, unique=True)
    agent_id = models.CharField(max_length=32, blank=True, default="")
    contact_secret_enc = models.TextField(blank=True, default="")
    app_secret_enc = models.TextField(blank=True, default="")
    callback_token_enc = models.TextField(blank=True, default="")
    encoding_aes_key_enc = models.TextField(blank=True, default="")
    api_base_url = models.URLField(max_length=200, default=DEFAULT_API_BASE_URL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"WeCom {self.corp_id}"


class RawCallback(TenantOwned):
    """One verified, decrypted callback exactly as WeCom sent it, and how far its processing got (回调日志).

    Written by the callback endpoint before it answers, so nothing WeCom told us is lost when processing
    fails; `dedupe_key` is unique, so WeCom's retries of one event store one row.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        PROCESSED = "processed", _("Processed")
        FAILED = "failed", _("Failed")
        IGNORED = "ignored", _("Ignored")

    # The busiest table's insert pays for every index, so each one here earns its place: the tenant and the
    # connection lead the composite indexes below and are not indexed alone.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    connection = models.ForeignKey(WeComConnection, on_delete=models.CASCADE, related_name="callbacks", db_index=False)
    received_at = models.DateTimeField()
    msg_signature = models.CharField(max_length=64)
    timestamp = models.CharField(max_length=20)
    nonce = models.CharField(max_length=64)
    xml = models.TextField()
    # Every field of the inner XML (Event, ChangeType, UserID, ExternalUserID, State, WelcomeCode, CreateTime,
    # ChatId, Id, TagType, ...), as text; repeated children such as MemChangeList become lists.
    event = models.JSONField(default=dict)
    # Denormalised from `event` for the callback log's filters and the processing dispatch.
    event_type = models.CharField(max_length=64, blank=True, default="")
    change_type = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(null=True, blank=True)  # the event's CreateTime
    dedupe_key = models.CharField(max_length=64)  # unique: see Meta (a constraint, without PostgreSQL's LIKE index)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-received_at"], name="raw_callback_tenant_received"),
            # Only unfinished rows, a handful at any time: the processing's ordering per customer and the requeue
            # sweep look for them, and a processed row leaves this index instead of growing it forever.
            models.Index(
                fields=["tenant", "received_at"],
                condition=models.Q(status__in=["received", "failed"]),
                name="raw_callback_unfinished",
            ),
            models.Index(fields=["connection", "nonce"], name="raw_callback_nonce"),
        ]
        constraints = [models.UniqueConstraint(fields=["dedupe_key"], name="raw_callback_dedupe_key")]

    def __str__(self) -> str:
        return f"{self.event_type}/{self.change_type} #{self.pk}"


class SyncRun(TenantOwned):
    """One full or partial pull of a brand's WeCom data (`siyu sync`), and how far it got (同步记录).

    Written after every committed page, in the same transaction as the page's data: `checkpoint` holds per
    phase the position to continue from (cursor, batch, done), `counts` per phase what the committed pages
    did ({"created", "updated", "unchanged", "deleted", ...}). A run that failed or was killed is resumed
    from there by the next `siyu sync` with the same phases. `heartbeat_at` moves with every page, so a run
    whose process died is told from one still working.
    """

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        ABANDONED = "abandoned", _("Abandoned")

    connection = models.ForeignKey(WeComConnection, on_delete=models.CASCADE, related_name="sync_runs")
    phases = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    phase = models.CharField(max_length=16, blank=True, default="")  # the phase being (or last) worked on
    checkpoint = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    pages = models.PositiveIntegerField(default=0)  # committed pages, over every attempt
    attempts = models.PositiveIntegerField(default=1)  # the first start and each resume
    error = models.TextField(blank=True, default="")  # the last failure
    errors = models.JSONField(default=list, blank=True)  # every failure: {at, phase, error}
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-started_at"], name="sync_run_tenant_started")]

    def __str__(self) -> str:
        return f"sync #{self.pk} {self.status}"


class SyncSeen(models.Model):
    """Scratch rows of one sync run: what WeCom listed so far (members, follow relations, chats), so the end
    of a phase can tell what vanished even when its pages were fetched by several attempts. Deleted when the
    run finishes."""

    run = models.ForeignKey(SyncRun, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8)  # "member" | "follow" | "chat"
    key = models.CharField(max_length=160)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "kind", "key"], name="sync_seen_unique")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.key}"
