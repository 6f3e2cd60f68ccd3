"""Tenants (brands), the org tree, per-tenant roles and the audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Tenant(models.Model):
    """A brand (品牌) that runs its private domain in siyu; every other row belongs to exactly one."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, unique=True)
    wecom_corp_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class TenantOwned(models.Model):
    """Abstract base: the tenant column every business table carries."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")

    class Meta:
        abstract = True


class Region(TenantOwned):
    """A sales region (大区) under the brand HQ."""

    name = models.CharField(max_length=100)
    code = models.CharField(max_length=32)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="region_code_unique")]
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Franchisee(TenantOwned):
    """A franchisee or channel partner (加盟商 / 渠道商) that owns stores and earns commission."""

    name = models.CharField(max_length=100)
    code = models.CharField(max_length=32)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="franchisee_code_unique")]
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Store(TenantOwned):
    """A physical store (门店) in a region, owned by the brand or by a franchisee."""

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="stores")
    franchisee = models.ForeignKey(Franchisee, on_delete=models.PROTECT, null=True, blank=True, related_name="stores")
    name = models.CharField(max_length=100)
    code = models.CharField(max_length=32)
    city = models.CharField(max_length=50, blank=True, default="")
    address = models.CharField(max_length=200, blank=True, default="")
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    # The weekly opening hours (siyu.core.hours): {"mon": [["10:00", "22:00"]], ...}, {} while not set.
    hours = models.JSONField(default=dict, blank=True)
    # 暂停营业: closed whatever the hours say (renovation, an outbreak, a lease dispute) until unmarked.
    temporarily_closed = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="store_code_unique")]
        # The store locator (siyu.storecodes) scans a latitude band per lookup and checks longitude inside the
        # index, so a lookup reads the few stores near the shopper, not the brand's thousands.
        indexes = [models.Index(fields=["tenant", "latitude", "longitude"], name="store_tenant_geo")]
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Guide(TenantOwned):
    """A guide or sales person (导购), i.e. a WeCom member; the brand IP account (官方IP) is a guide with no store."""

    class Kind(models.TextChoices):
        GUIDE = "guide", _("Guide")
        BRAND_IP = "brand_ip", _("Brand IP account")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        DEPARTED = "departed", _("Departed")

    store = models.ForeignKey(Store, on_delete=models.PROTECT, null=True, blank=True, related_name="guides")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    name = models.CharField(max_length=100)
    wecom_userid = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.GUIDE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    joined_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "wecom_userid"], name="guide_userid_unique"),
        ]
        ordering = ["wecom_userid"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    """What a user may see inside a brand; the scope column that matters depends on the role."""

    HQ_ADMIN = "hq_admin", _("HQ admin")
    REGION_MANAGER = "region_manager", _("Region manager")
    STORE_MANAGER = "store_manager", _("Store manager")
    GUIDE = "guide", _("Guide")
    FRANCHISEE = "franchisee", _("Franchisee")


class Membership(TenantOwned):
    """A user's role in one brand (a user may belong to several brands)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    region = models.ForeignKey(Region, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    store = models.ForeignKey(Store, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    franchisee = models.ForeignKey(Franchisee, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    guide = models.ForeignKey(Guide, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.tenant_id}:{self.role}"


class AuditLog(TenantOwned):
    """Who did what to which record, including every reveal or export of personal data (append-only)."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    detail = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "action", "created_at"], name="audit_tenant_action")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id}"
