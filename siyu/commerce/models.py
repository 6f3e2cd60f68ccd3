"""Orders from every channel (Tmall, JD, Youzan, 小鹅通, stores, the member mall)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import Guide, Store, TenantOwned
from siyu.customers.models import Customer


class Shop(models.TextChoices):
    TMALL = "tmall", _("Tmall")
    JD = "jd", _("JD")
    YOUZAN = "youzan", _("Youzan")
    XIAOE = "xiaoe", _("Xiaoe")
    STORE = "store", _("Offline store")
    MALL = "mall", _("Member mall")


class Order(TenantOwned):
    """One order (订单), attributed to a customer and, through the follow relation, a guide and store.

    Money is stored in fen (integer cents) so sums never drift.
    """

    class Status(models.TextChoices):
        PAID = "paid", _("Paid")
        COMPLETED = "completed", _("Completed")
        REFUNDED = "refunded", _("Refunded")
        CLOSED = "closed", _("Closed")

    customer = models.ForeignKey(Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="orders")
    shop = models.CharField(max_length=16, choices=Shop.choices)
    order_no = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PAID)
    amount_cents = models.BigIntegerField()
    item_count = models.PositiveIntegerField(default=1)
    product_series = models.CharField(max_length=64, blank=True, default="")
    paid_at = models.DateTimeField()
    guide = models.ForeignKey(Guide, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    store = models.ForeignKey(Store, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "shop", "order_no"], name="order_unique")]
        indexes = [
            # A customer's orders newest first, and also every column a segment's order condition reads (status,
            # shop, amount, series): the live count groups a brand's paid orders by customer from this index
            # alone, in customer order, without reading the table (siyu.analytics.query.COVERED).
            models.Index(
                fields=["tenant", "customer", "-paid_at", "status", "shop", "amount_cents", "product_series"],
                name="order_customer_cover",
            ),
            models.Index(fields=["tenant", "paid_at"], name="order_tenant_time"),
        ]
