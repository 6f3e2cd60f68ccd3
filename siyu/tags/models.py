"""Tag groups, tags and the tags applied to customers, each with the source that applied it."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Guide, TenantOwned
from siyu.customers.models import Customer


class TagGroup(TenantOwned):
    """A tag group (标签组), mirrored to a WeCom corp tag group when connected."""

    name = models.CharField(max_length=30)
    order = models.PositiveIntegerField(default=0)
    wecom_group_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="tag_group_name_unique")]
        ordering = ["-order", "id"]

    def __str__(self) -> str:
        return self.name


class Tag(TenantOwned):
    """A customer tag (标签), mirrored to a WeCom corp tag (names ≤ 30 characters, as WeCom requires)."""

    group = models.ForeignKey(TagGroup, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=30)
    order = models.PositiveIntegerField(default=0)
    wecom_tag_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "name"], name="tag_name_unique_in_group")]
        ordering = ["-order", "id"]

    def __str__(self) -> str:
        return self.name


class TagSource(models.TextChoices):
    MANUAL = "manual", _("Manual")
    CHANNEL = "channel", _("Channel code")
    KEYWORD = "keyword", _("Chat keyword")
    BEHAVIOUR = "behaviour", _("Behaviour")
    PURCHASE = "purchase", _("Purchase")
    RFM = "rfm", _("RFM")
    TIER = "tier", _("Member tier")
    WECOM = "wecom", _("WeCom")
    IMPORT = "import", _("Import")


class CustomerTag(TenantOwned):
    """A tag on a customer (客户标签): which source applied it, by which rule or guide, and when."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="customer_tags")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="customer_tags")
    source = models.CharField(max_length=16, choices=TagSource.choices, default=TagSource.MANUAL)
    rule = models.CharField(max_length=64, blank=True, default="")
    guide = models.ForeignKey(Guide, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "tag"], name="customer_tag_unique")]
        indexes = [models.Index(fields=["tenant", "tag"], name="customer_tag_tenant_tag")]
