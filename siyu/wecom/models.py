"""The WeCom connection of a brand and the raw callbacks it receives."""

from __future__ import annotations

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

    connection = models.ForeignKey(WeComConnection, on_delete=models.CASCADE, related_name="callbacks")
    received_at = models.DateTimeField(db_index=True)
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
    dedupe_key = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-received_at"], name="raw_callback_tenant_received"),
            models.Index(fields=["tenant", "status", "received_at"], name="raw_callback_tenant_status"),
            models.Index(fields=["connection", "nonce"], name="raw_callback_nonce"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type}/{self.change_type} #{self.pk}"
