"""Customers (OneID), their identities and their follow relations with guides."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Guide, Tenant, TenantOwned


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

    `match_name_city_phone` and `match_name_address` are keyed blind indexes of (exact name, city, last four phone
    digits) and (exact name, address) for finding likely duplicates without decrypting anyone (siyu.customers.identity).
    A customer merged into another keeps its row with `merged_into` set: hidden from every list and lookup, and
    brought back by an unmerge (CustomerMerge).
    """

    # No index of its own: every (tenant, …) index below serves a lookup by tenant alone, and on a bulk import each
    # index costs its share of every row (the OneID resolver, siyu bench identity). Identity keeps its (tenant) one:
    # on SQLite it is (tenant, rowid), which the leads matcher's keyset reads by id within a brand need.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    name_enc = models.TextField(blank=True, default="")
    name_index = models.TextField(blank=True, default="")
    phone_enc = models.TextField(blank=True, default="")
    # Looked up with the tenant always: the (tenant, phone_hash) index serves; a second one would only slow writes.
    phone_hash = models.CharField(max_length=64, blank=True, default="")
    address_enc = models.TextField(blank=True, default="")
    gender = models.IntegerField(choices=Gender.choices, default=Gender.UNKNOWN)
    city = models.CharField(max_length=50, blank=True, default="")
    lifecycle_stage = models.CharField(max_length=20, choices=LifecycleStage.choices, default=LifecycleStage.NEW)
    intent_level = models.PositiveSmallIntegerField(default=0)
    source = models.CharField(max_length=64, blank=True, default="")
    owner_guide = models.ForeignKey(Guide, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    match_name_city_phone = models.CharField(max_length=64, blank=True, default="")
    match_name_address = models.CharField(max_length=64, blank=True, default="")
    # Indexed only where set (see Meta): almost every customer has none, and an index of NULLs only slows inserts.
    merged_into = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    merged_at = models.DateTimeField(null=True, blank=True)
    # A stage set by hand holds until then: the automatic rules (siyu.customers.lifecycle) leave the customer alone.
    stage_held_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="customer_tenant_created"),
            models.Index(fields=["tenant", "phone_hash"], name="customer_tenant_phone"),
            models.Index(fields=["tenant", "lifecycle_stage"], name="customer_tenant_stage"),
            models.Index(
                fields=["tenant", "match_name_city_phone"],
                condition=~models.Q(match_name_city_phone=""),
                name="customer_match_city_phone",
            ),
            models.Index(
                fields=["tenant", "match_name_address"],
                condition=~models.Q(match_name_address=""),
                name="customer_match_address",
            ),
            models.Index(
                fields=["merged_into"], condition=models.Q(merged_into__isnull=False), name="customer_merged_into"
            ),
        ]


class Identity(TenantOwned):
    """One identifier of a customer (身份): kind + value, unique per brand.

    Phone identities hold the keyed phone hash, never the number. `verified` matters for phones only: a number the
    customer proved (bound as a member) is verified; one from a WeCom remark or a shop's order is not, and only
    verified phones make two customers one (siyu.customers.identity).
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
    verified = models.BooleanField(default=False)

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
        # The file is deleted: older than SIYU_EXPORT_RETENTION_DAYS, or withdrawn by an erasure request (`error`
        # says which).
        EXPIRED = "expired", _("Expired")

    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
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


class CustomerMerge(TenantOwned):
    """One customer merged into another (客户合并), with exactly what moved, so an unmerge restores both sides.

    `moved` maps each reference ("app.Model.field", see siyu.customers.references) to the ids of the rows moved from
    `merged` to `survivor`; `kept` to the ids left with `merged` because the survivor already had the same row (a
    unique key such as one follow relation per guide); `filled` holds the survivor's profile fields filled in from
    the merged customer, with their values before. `restored` is what the unmerge moved back (the moved rows still on
    the survivor, plus rows that arrived since and carry one of the merged customer's identities).
    """

    class Rule(models.TextChoices):
        UNIONID = "unionid", _("Same unionid")
        PHONE = "phone", _("Same verified phone")
        IDENTITY = "identity", _("Same account id")
        REVIEW = "review", _("Approved in the review queue")
        MANUAL = "manual", _("Merged by an operator")

    class Status(models.TextChoices):
        MERGED = "merged", _("Merged")
        UNMERGED = "unmerged", _("Unmerged")

    survivor = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    merged = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    rule = models.CharField(max_length=16, choices=Rule.choices)
    identity_kind = models.CharField(max_length=32, blank=True, default="")
    identity_value = models.CharField(max_length=128, blank=True, default="")
    moved = models.JSONField(default=dict, blank=True)
    kept = models.JSONField(default=dict, blank=True)
    filled = models.JSONField(default=dict, blank=True)
    restored = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.MERGED)
    merged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    merged_at = models.DateTimeField()
    unmerged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    unmerged_at = models.DateTimeField(null=True, blank=True)

    @property
    def moved_count(self) -> int:
        return sum(len(ids) for ids in self.moved.values())

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-merged_at", "-id"], name="customer_merge_recent"),
            models.Index(fields=["survivor", "status"], name="customer_merge_survivor"),
            models.Index(fields=["merged", "status"], name="customer_merge_merged"),
        ]


class MergeCandidate(TenantOwned):
    """Two customers who are probably one person (疑似重复), waiting for an operator (review queue).

    One row per pair, `customer_a` the lower id. Approving merges them (the older survives); rejecting, or unmerging
    a merge of the pair, keeps the pair apart for good: neither the rules nor the matcher propose it again.
    """

    class Reason(models.TextChoices):
        NAME_CITY_PHONE = "name_city_phone", _("Same name, city and phone ending")
        NAME_ADDRESS = "name_address", _("Same name and address")
        PHONE_UNVERIFIED = "phone_unverified", _("Same phone, not verified")
        UNMERGED = "unmerged", _("Separated by an unmerge")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    customer_a = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    customer_b = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=24, choices=Reason.choices)
    score = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    merge = models.ForeignKey(CustomerMerge, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer_a", "customer_b"], name="merge_candidate_pair"),
            models.CheckConstraint(
                condition=models.Q(customer_a__lt=models.F("customer_b")), name="merge_candidate_order"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "status", "-score", "-id"], name="merge_candidate_queue")]


class LifecycleConfig(TenantOwned):
    """A brand's lifecycle settings (生命周期配置): how each stage is shown, and the thresholds of the rules.

    `stages` lists every LifecycleStage in display order as {"stage", "name", "color", "enabled"}; a disabled stage
    has no kanban column and the rules move nobody into it. The rules (siyu.customers.lifecycle) run when
    `next_run_at` has passed (nightly) or on "run now".
    """

    stages = models.JSONField(default=list, blank=True)
    engaged_days = models.PositiveIntegerField(default=30)
    dormant_days = models.PositiveIntegerField(default=90)
    lost_days = models.PositiveIntegerField(default=180)
    hold_days = models.PositiveIntegerField(default=30)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_moved = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="lifecycle_config_tenant")]


class LossAlert(TenantOwned):
    """A lost friendship (流失提醒): the customer deleted the guide, or the guide deleted the customer.

    One row per ended follow relation and end time, so a retried callback never alerts twice. `last_interaction_*`
    is the customer's last interaction before the loss, from the timeline. `notified_at` is set once the guide and
    the store manager have been sent the WeCom app message.
    """

    class Kind(models.TextChoices):
        DELETED_BY_CUSTOMER = "deleted_by_customer", _("Customer deleted the guide")
        DELETED_BY_GUIDE = "deleted_by_guide", _("Guide deleted the customer")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    relation = models.ForeignKey(FollowRelation, on_delete=models.CASCADE, related_name="+")
    guide = models.ForeignKey(Guide, on_delete=models.PROTECT, related_name="+")
    store = models.ForeignKey("core.Store", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    occurred_at = models.DateTimeField()
    last_interaction_at = models.DateTimeField(null=True, blank=True)
    last_interaction_type = models.CharField(max_length=64, blank=True, default="")
    notified_at = models.DateTimeField(null=True, blank=True)
    notify_error = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["relation", "occurred_at"], name="loss_alert_once")]
        indexes = [
            models.Index(fields=["tenant", "-occurred_at", "-id"], name="loss_alert_recent"),
            models.Index(fields=["tenant", "guide", "-occurred_at"], name="loss_alert_guide"),
        ]
