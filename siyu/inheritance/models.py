"""Customer and group inheritance (客户继承): on-job transfers (在职继承) and resigned inheritance (离职继承).

A `Transfer` is one request to hand a guide's customers (and optionally group chats) to another guide; it has one
`TransferItem` per customer and one `TransferGroupItem` per group chat, each following WeCom's answer. The rows
are the state: submitting, polling and resuming after a crash all start from them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Guide, TenantOwned
from siyu.customers.models import Customer
from siyu.groups.models import CustomerGroup


class Transfer(TenantOwned):
    """One inheritance request (继承任务): customers of the handover guide go to the takeover guide.

    On-job (在职继承): both guides work for the brand; each customer has 24 hours to refuse, and may be moved at
    most twice in 90 days. Resigned (离职继承): the handover guide has left; the customers are taken over after
    24 hours without a say.
    """

    class Kind(models.TextChoices):
        ON_JOB = "on_job", _("On-job transfer")
        RESIGNED = "resigned", _("Resigned inheritance")

    class Status(models.TextChoices):
        SUBMITTING = "submitting", _("Submitting to WeCom")  # some items not yet sent
        IN_PROGRESS = "in_progress", _("In progress")  # everything sent, some still in the 24-hour window
        DONE = "done", _("Done")  # every item has its final outcome

    kind = models.CharField(max_length=16, choices=Kind.choices)
    handover = models.ForeignKey(Guide, on_delete=models.PROTECT, related_name="+")
    takeover = models.ForeignKey(Guide, on_delete=models.PROTECT, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # transfer_success_msg: what the customer reads about the new guide (on-job only; WeCom's default when empty).
    message = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUBMITTING)
    # The last failure talking to WeCom (not connected, network, an errcode for the whole request); cleared on success.
    last_error = models.TextField(blank=True, default="")
    last_polled_at = models.DateTimeField(null=True, blank=True)
    # Set while one process submits the items, so two never send the same customers at once; a stale claim
    # (a crashed process) is taken over after a few minutes.
    submitting_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="transfer_tenant_created"),
            models.Index(fields=["tenant", "status"], name="transfer_tenant_status"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.handover_id}→{self.takeover_id}"


class TransferItem(TenantOwned):
    """One customer of a transfer, with WeCom's per-customer answer (errcode at the start, then transfer_result)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Not yet sent")
        WAITING = "waiting", _("Waiting (24-hour window)")
        SUCCEEDED = "succeeded", _("Taken over")
        REFUSED = "refused", _("Refused by the customer")
        LIMIT_EXCEEDED = "limit_exceeded", _("Takeover guide at customer limit")
        NO_RECORD = "no_record", _("No longer a customer")
        FAILED = "failed", _("Failed")

    transfer = models.ForeignKey(Transfer, on_delete=models.CASCADE, related_name="items")
    customer = models.ForeignKey(Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    external_userid = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    errcode = models.IntegerField(default=0)
    errmsg = models.CharField(max_length=200, blank=True, default="")
    due_at = models.DateTimeField(null=True, blank=True)  # end of the 24-hour window, while waiting
    takeover_at = models.DateTimeField(null=True, blank=True)  # WeCom's takeover_time once settled
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["transfer", "external_userid"], name="transfer_item_unique"),
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="transfer_item_status")]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.external_userid}: {self.status}"


class TransferGroupItem(TenantOwned):
    """One customer group chat of a transfer: WeCom changes its owner (群主) to the takeover guide."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Not yet sent")
        WAITING = "waiting", _("In progress")
        SUCCEEDED = "succeeded", _("Taken over")
        FAILED = "failed", _("Failed")

    transfer = models.ForeignKey(Transfer, on_delete=models.CASCADE, related_name="group_items")
    group = models.ForeignKey(CustomerGroup, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    chat_id = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    errcode = models.IntegerField(default=0)
    errmsg = models.CharField(max_length=200, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["transfer", "chat_id"], name="transfer_group_item_unique")]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.chat_id}: {self.status}"


class UnassignedCustomer(TenantOwned):
    """A customer of a departed guide that WeCom lists as not yet handed to anyone (待分配离职成员的客户),
    as of the brand's last fetch of get_unassigned_list."""

    handover_userid = models.CharField(max_length=64)
    external_userid = models.CharField(max_length=64)
    dimission_time = models.DateTimeField()
    handover = models.ForeignKey(Guide, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "handover_userid", "external_userid"], name="unassigned_customer_unique"
            )
        ]
        ordering = ["dimission_time", "handover_userid", "id"]

    def __str__(self) -> str:
        return f"{self.handover_userid}/{self.external_userid}"


class UnassignedFetch(TenantOwned):
    """When the brand's unassigned list was last fetched from WeCom, and how that went (one row per brand)."""

    fetched_at = models.DateTimeField(null=True, blank=True)
    attempted_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="unassigned_fetch_unique")]

    def __str__(self) -> str:
        return f"unassigned fetch {self.tenant_id}"
