"""Customers (OneID), their identities and their follow relations with guides."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Guide, TenantOwned


class LifecycleStage(models.TextChoices):
    NEW = "new", _("New")
    ENGAGED = "engaged", _("Engaged")
    FIRST_PURCHASE = "first_purchase", _("First purchase")
    REPEAT = "repeat", _("Repeat buyer")
    DORMANT = "dormant", _("Dormant")
    LOST = "lost", _("Lost")


class Gender(models.IntegerChoices):
    UNKNOWN = 0, _("Unknown")
    MALE = 1, _("Male")
    FEMALE = 2, _("Female")


class Customer(TenantOwned):
    """One person across WeCom, phone, unionid and shops (OneID, 客户).

    Name, phone and address are stored encrypted (`*_enc`); `phone_hash` and `name_index` are keyed blind
    indexes for lookups. Read them only through the selectors, which mask by default and audit reveals.
    """

    name_enc = models.TextField(blank=True, default="")
    name_index = models.TextField(blank=True, default="")
    phone_enc = models.TextField(blank=True, default="")
    phone_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    address_enc = models.TextField(blank=True, default="")
    gender = models.IntegerField(choices=Gender.choices, default=Gender.UNKNOWN)
    city = models.CharField(max_length=50, blank=True, default="")
    lifecycle_stage = models.CharField(max_length=20, choices=LifecycleStage.choices, default=LifecycleStage.NEW)
    intent_level = models.PositiveSmallIntegerField(default=0)
    source = models.CharField(max_length=64, blank=True, default="")
    owner_guide = models.ForeignKey(Guide, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="customer_tenant_created"),
            models.Index(fields=["tenant", "phone_hash"], name="customer_tenant_phone"),
            models.Index(fields=["tenant", "lifecycle_stage"], name="customer_tenant_stage"),
        ]


class Identity(TenantOwned):
    """One identifier of a customer (身份): kind + value, unique per brand.

    Phone identities hold the keyed phone hash, never the number.
    """

    class Kind(models.TextChoices):
        WECOM_EXTERNAL_USERID = "wecom_external_userid", _("WeCom external user id")
        UNIONID = "unionid", _("WeChat unionid")
        PHONE = "phone", _("Phone")
        TMALL_BUYER = "tmall_buyer", _("Tmall buyer")
        JD_BUYER = "jd_buyer", _("JD buyer")
        YOUZAN_BUYER = "youzan_buyer", _("Youzan buyer")
        XIAOE_USER = "xiaoe_user", _("Xiaoe user")
        MEMBER_NO = "member_no", _("Member number")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    value = models.CharField(max_length=128)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "kind", "value"], name="identity_unique")]
        verbose_name_plural = "identities"


class FollowRelation(TenantOwned):
    """A guide ↔ customer WeCom friendship (跟进关系 / follow_user): who added whom, when, how, and its state."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        DELETED_BY_CUSTOMER = "deleted_by_customer", _("Customer deleted the guide")
        DELETED_BY_GUIDE = "deleted_by_guide", _("Guide deleted the customer")

    class AddWay(models.IntegerChoices):
        # WeCom's follow_user.add_way codes.
        UNKNOWN = 0, _("Unknown")
        QR_CODE = 1, _("Scanned a QR code")
        PHONE_SEARCH = 2, _("Searched phone number")
        CARD_SHARE = 3, _("Shared business card")
        GROUP_CHAT = 4, _("From a group chat")
        PHONE_CONTACTS = 5, _("Phone contacts")
        WECHAT_CONTACTS = 6, _("WeChat contacts")
        THIRD_PARTY = 8, _("Third-party app")
        EMAIL_SEARCH = 9, _("Searched email")
        CHANNELS = 10, _("WeChat Channels")
        MEMBER_SHARE = 201, _("Shared by a colleague")
        ADMIN_ASSIGNED = 202, _("Assigned by admin")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="follow_relations")
    guide = models.ForeignKey(Guide, on_delete=models.PROTECT, related_name="follow_relations")
    external_userid = models.CharField(max_length=64)
    added_at = models.DateTimeField()
    remark = models.CharField(max_length=40, blank=True, default="")
    description = models.CharField(max_length=150, blank=True, default="")
    add_way = models.IntegerField(choices=AddWay.choices, default=AddWay.UNKNOWN)
    state = models.CharField(max_length=30, blank=True, default="")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.ACTIVE)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "guide", "customer"], name="follow_relation_unique"),
        ]
        indexes = [
            models.Index(fields=["tenant", "guide", "status"], name="follow_guide_status"),
            models.Index(fields=["customer", "status"], name="follow_customer_status"),
        ]


class CustomerExport(TenantOwned):
    """A CSV export of customers, built by a background job (客户导出).

    `filters` holds the validated arguments of `selectors.customer_list`; the job re-applies them with the
    requester's data scope, so an export never holds more than its requester could see. `progress` counts the
    rows written so far out of `total`; `file_name` is the file's path relative to MEDIA_ROOT once done.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    requested_ip = models.GenericIPAddressField(null=True, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    reveal = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    file_name = models.CharField(max_length=200, blank=True, default="")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "requested_by", "-created_at"], name="customer_export_requester"),
        ]
