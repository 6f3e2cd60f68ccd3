"""Leads (线索): prospects not yet customers, each owned by a guide or waiting in the brand's public pool (公海)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Guide, TenantOwned


class LeadSettings(TenantOwned):
    """Per-brand lead settings: a lead not followed up within `pool_after_days` returns to the public pool."""

    pool_after_days = models.PositiveSmallIntegerField(default=7)
    # Matching open leads to customers (线索自动转客户, services.leads_convert_matched): when it last ran, and the
    # highest identity and lead ids it had seen, so each run reads only what is new since.
    matched_at = models.DateTimeField(null=True, blank=True)
    matched_identity_id = models.BigIntegerField(default=0)
    matched_lead_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="lead_settings_unique")]


class Lead(TenantOwned):
    """A prospect (线索): who (name and phone encrypted, like a customer's), where from, how interested, who follows
    them up, and when they go back to the public pool (公海).

    `phone_hash` and `unionid_hash` are keyed blind indexes, unique per brand where set, so the same person is one
    lead. `unionid_enc` keeps the unionid itself (encrypted) to find the customer holding it (leads made before it
    existed are found from the customers' side instead). A converted lead (转客户) names its `customer`, and who
    converted it when (`converted_by` null: converted automatically, the same phone or unionid became a customer).

    `owner_guide` null means the lead is in the pool, where any guide may claim it. `pool_due_at` is when an
    owned lead returns to the pool unless followed up before (the worker's sweep returns it).
    """

    class Status(models.TextChoices):
        NEW = "new", _("New")
        FOLLOWING = "following", _("Following up")
        CONVERTED = "converted", _("Converted")
        INVALID = "invalid", _("Invalid")

    name_enc = models.TextField(blank=True, default="")
    phone_enc = models.TextField(blank=True, default="")
    phone_hash = models.CharField(max_length=64, blank=True, default="")
    unionid_hash = models.CharField(max_length=64, blank=True, default="")
    unionid_enc = models.TextField(blank=True, default="")
    source = models.CharField(max_length=64, blank=True, default="")
    intent_level = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    owner_guide = models.ForeignKey(Guide, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    assigned_at = models.DateTimeField(null=True, blank=True)
    last_followup_at = models.DateTimeField(null=True, blank=True)
    pool_due_at = models.DateTimeField(null=True, blank=True)
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    converted_at = models.DateTimeField(null=True, blank=True)
    converted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "phone_hash"], condition=~models.Q(phone_hash=""), name="lead_phone_unique"
            ),
            models.UniqueConstraint(
                fields=["tenant", "unionid_hash"], condition=~models.Q(unionid_hash=""), name="lead_unionid_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "owner_guide", "-created_at"], name="lead_owner"),
            models.Index(fields=["pool_due_at"], condition=models.Q(pool_due_at__isnull=False), name="lead_pool_due"),
        ]
