"""Console test fixtures: the fixed world plus orders, and signing in as a persona."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils.translation.reloader import translation_file_changed

from siyu.analytics.services import event_record
from siyu.commerce.models import Order
from siyu.testing import PASSWORD, World

T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)

# (order no, customer key or None, status, amount in fen, store, guide)
ORDERS = [
    ("A-001", "c1", Order.Status.PAID, 10000, "S1", "G1"),
    ("A-002", "c2", Order.Status.COMPLETED, 5000, "S2", "G2"),
    ("A-003", "c3", Order.Status.REFUNDED, 3000, "S3", "G3"),
    ("A-004", "c4", Order.Status.PAID, 2000, None, "IP"),
    ("A-005", None, Order.Status.PAID, 1000, None, None),
]
ORDERS_VISIBLE = {
    "hq": {"A-001", "A-002", "A-003", "A-004", "A-005"},
    "region1": {"A-001", "A-002"},
    "store1": {"A-001"},
    "guide1": {"A-001"},
    "franchisee1": {"A-001", "A-003"},
    "outsider": {"B-001"},
}


@pytest.fixture(scope="session", autouse=True)
def _compiled_locale() -> None:
    """Compile the catalogues first, so the suite passes on a checkout where `make setup` has not run."""
    call_command("compile_locale", verbosity=0)
    # Django caches catalogues per process; this is what its autoreloader calls when a .mo changes.
    translation_file_changed(sender=None, file_path=Path("django.mo"))


@dataclass
class Shop:
    world: World
    orders: dict[str, Order]


def _order(world: World, no: str, key: str | None, status: str, cents: int, store: str | None, guide: str | None,
           *, tenant_id: int, days: int) -> Order:
    customer = world.customers[key] if key else None
    paid_at = T0 + dt.timedelta(days=days)
    order = Order.objects.create(
        tenant_id=tenant_id,
        customer=customer,
        shop="tmall",
        order_no=no,
        status=status,
        amount_cents=cents,
        paid_at=paid_at,
        store=world.stores[store] if store else None,
        guide=world.guides[guide] if guide else None,
    )
    if customer is not None:
        event_record(
            tenant_id=tenant_id,
            type="order.paid",
            customer_id=customer.id,
            occurred_at=paid_at,
            properties={"order_no": no, "amount_cents": cents, "shop": "tmall"},
        )
    return order


@pytest.fixture
def shop(world: World) -> Shop:
    """The world with orders: one per customer of brand A, one unmatched, and one in brand B."""
    orders = {
        no: _order(world, no, key, status, cents, store, guide, tenant_id=world.tenant_a.id, days=i * 7 + 1)
        for i, (no, key, status, cents, store, guide) in enumerate(ORDERS)
    }
    orders["B-001"] = _order(
        world, "B-001", "b1", Order.Status.PAID, 9900, "B1", "GB", tenant_id=world.tenant_b.id, days=3
    )
    return Shop(world=world, orders=orders)


def login(client: Client, persona: str) -> Client:
    assert client.login(username=persona, password=PASSWORD)
    return client


def attr_values(html: str, attribute: str) -> list[str]:
    """Values of `attribute` in the page, in document order (e.g. every data-customer-id)."""
    return re.findall(rf'{attribute}="([^"]*)"', html)
