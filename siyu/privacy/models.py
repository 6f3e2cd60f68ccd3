"""A customer's rights over their data (PIPL 个人信息保护法): consents, and the export and erasure requests."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import TenantOwned
from siyu.customers.models import Customer


class ConsentPurpose(models.TextChoices):
    MARKETING = "marketing", _("Marketing messages")
    ANALYSIS = "analysis", _("Data analysis")
    THIRD_PARTY = "third_party", _("Sharing with third parties")
    CROSS_BORDER = "cross_border", _("Cross-border transfer")


class ConsentChannel(models.TextChoices):
    WECOM = "wecom", _("WeCom")
    SIDEBAR = "sidebar", _("Guide sidebar")
    STORE = "store", _("In store")
    IMPORT = "import", _("Import")
    CONSOLE = "console", _("Console")
    API = "api", _("API")


class Consent(TenantOwned):
    """One consent decision (同意记录): a customer granted or withdrew a purpose, when, through which channel, and
    which version of the consent text they saw.

    Append-only: a change of mind is a new row, so the history is the table; the current state of a purpose is its
    latest row (selectors.consent_state). A customer with no row for a purpose has not been asked.
    """

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    purpose = models.CharField(max_length=24, choices=ConsentPurpose.choices)
    granted = models.BooleanField()
    channel = models.CharField(max_length=16, choices=ConsentChannel.choices)
    text_version = models.CharField(max_length=32)
    recorded_at = models.DateTimeField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["tenant", "customer", "purpose", "-recorded_at"], name="consent_customer")]


class PrivacyRequest(TenantOwned):
    """One exercise of a data subject's right (个人信息权利请求): an export (right of access) or an erasure
    (right to delete), who asked, why, and what it touched per context.

    `customer_id` is a plain column, not a foreign key: a merge moves every foreign key to a customer, and this log
    must keep naming the customer the request was about. `customer_ids` lists every customer row an erasure covered
    (the survivor and those merged into it); `counts` maps "context.what" to the rows changed.
    """

    class Kind(models.TextChoices):
        EXPORT = "export", _("Export")
        ERASURE = "erasure", _("Erasure")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    customer_id = models.BigIntegerField()
    customer_ids = models.JSONField(default=list, blank=True)
    reason = models.CharField(max_length=200)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="privacy_request_recent"),
            models.Index(fields=["tenant", "customer_id"], name="privacy_request_customer"),
        ]


class ErasedCustomer(TenantOwned):
    """The tombstone mark of an erased customer (已删除): its row stays, emptied of personal data, so counts and
    funnels stay right; this row says when and by which request. One per customer row erased.
    """

    customer_id = models.BigIntegerField()
    request = models.ForeignKey(PrivacyRequest, on_delete=models.PROTECT, related_name="erased")
    erased_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "customer_id"], name="erased_customer_unique")]
