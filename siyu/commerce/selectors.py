"""Reads of the commerce context."""

from __future__ import annotations

from django.db.models import QuerySet

from siyu.commerce.models import Order
from siyu.core.scopes import Actor
from siyu.customers.selectors import access_customer, customer_scope


def orders_for_customer(*, actor: Actor, customer_id: int) -> QuerySet[Order]:
    customer = access_customer(actor=actor, customer_id=customer_id)
    return Order.objects.filter(tenant_id=actor.tenant_id, customer=customer).order_by("-paid_at")


def order_list(*, actor: Actor) -> QuerySet[Order]:
    """Orders the actor may see, newest first: HQ every order of the brand, others those of customers in scope."""
    qs = Order.objects.filter(tenant_id=actor.tenant_id)
    if not actor.is_brand_wide:
        qs = qs.filter(customer_id__in=customer_scope(actor=actor).values("id"))
    return qs.order_by("-paid_at", "-id")
