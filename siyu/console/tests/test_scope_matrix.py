"""Data scopes on every console page: each persona sees exactly its customers, orders, stores and numbers.

Pages are read as a user reads them (the HTML), through the data-* attributes that mark each row.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from siyu.console.tests.conftest import ORDERS_VISIBLE, Shop, attr_values, login
from siyu.core.models import AuditLog
from siyu.core.services import audit_record
from siyu.testing import VISIBLE, World
from siyu.wecom.models import RawCallback, SyncRun, WeComConnection
from siyu.wecom.services import connection_create
from siyu.wecom.tests.support import AES_KEY, TOKEN, contact_xml, signed_post

PERSONAS = sorted(VISIBLE)


def visible_customer_ids(world: World, persona: str) -> set[int]:
    keys = {"b1"} if persona == "outsider" else VISIBLE[persona]
    return {world.customers[k].id for k in keys}


@pytest.mark.parametrize("persona", PERSONAS)
def test_customer_list_shows_exactly_the_scope(client: Client, world: World, persona: str) -> None:
    login(client, persona)
    response = client.get(reverse("console:customer_list"))
    assert response.status_code == 200
    shown = [int(i) for i in attr_values(response.content.decode(), "data-customer-id")]
    assert sorted(shown) == sorted(visible_customer_ids(world, persona))


@pytest.mark.parametrize("persona", PERSONAS)
def test_customer_360_opens_in_scope_and_404s_outside(client: Client, world: World, persona: str) -> None:
    login(client, persona)
    visible = visible_customer_ids(world, persona)
    for key, customer in world.customers.items():
        response = client.get(reverse("console:customer_detail", args=[customer.id]))
        expected = 200 if customer.id in visible else 404
        assert response.status_code == expected, (persona, key)


@pytest.mark.parametrize("persona", PERSONAS)
def test_timeline_and_reveal_404_outside_scope(client: Client, world: World, persona: str) -> None:
    login(client, persona)
    visible = visible_customer_ids(world, persona)
    hidden = [c for c in world.customers.values() if c.id not in visible]
    for customer in hidden:
        assert client.get(reverse("console:customer_timeline", args=[customer.id])).status_code == 404
        assert client.post(reverse("console:customer_reveal", args=[customer.id])).status_code == 404


@pytest.mark.parametrize("persona", PERSONAS)
def test_orders_page_shows_orders_of_customers_in_scope(client: Client, shop: Shop, persona: str) -> None:
    login(client, persona)
    response = client.get(reverse("console:order_list"))
    assert response.status_code == 200
    assert set(attr_values(response.content.decode(), "data-order-no")) == ORDERS_VISIBLE[persona]


@pytest.mark.parametrize(
    ("persona", "stores", "guides"),
    [
        ("hq", {"S1", "S2", "S3"}, {"guide1", "guide2", "guide3", "brand_ip"}),
        ("region1", {"S1", "S2"}, {"guide1", "guide2"}),
        ("store1", {"S1"}, {"guide1"}),
        ("guide1", set(), {"guide1"}),
        ("franchisee1", {"S1", "S3"}, {"guide1", "guide3"}),
        ("outsider", {"S1"}, {"guide1"}),  # brand B's own store S1 and guide "guide1", not brand A's
    ],
)
def test_org_tree_shows_the_scope(
    client: Client, world: World, persona: str, stores: set[str], guides: set[str]
) -> None:
    login(client, persona)
    response = client.get(reverse("console:org"))
    html = response.content.decode()
    assert response.status_code == 200
    assert set(attr_values(html, "data-store")) == stores
    assert set(attr_values(html, "data-guide")) == guides
    if persona == "outsider":
        assert "门店B1" in html
        assert "门店S1" not in html


@pytest.mark.parametrize(
    ("persona", "counts"),
    [
        ("hq", {"护肤": "2", "彩妆": "1"}),
        ("region1", {"护肤": "1", "彩妆": "1"}),
        ("store1", {"护肤": "1", "彩妆": "0"}),
        ("guide1", {"护肤": "1", "彩妆": "0"}),
        ("franchisee1", {"护肤": "2", "彩妆": "0"}),
        ("outsider", {}),
    ],
)
def test_tags_page_counts_customers_in_scope(
    client: Client, world: World, persona: str, counts: dict[str, str]
) -> None:
    login(client, persona)
    html = client.get(reverse("console:tag_list")).content.decode()
    rows = dict(re.findall(r'data-tag="([^"]+)">.*?data-count>(\d+)<', html, flags=re.S))
    assert rows == counts


@pytest.mark.parametrize(
    ("persona", "numbers"),
    [
        ("hq", {"customers": "5", "relations": "4", "orders": "5", "gmv": "¥180.00"}),
        ("region1", {"customers": "2", "relations": "2", "orders": "2", "gmv": "¥150.00"}),
        ("store1", {"customers": "1", "relations": "1", "orders": "1", "gmv": "¥100.00"}),
        ("guide1", {"customers": "1", "relations": "1", "orders": "1", "gmv": "¥100.00"}),
        # A-003 (c3) is refunded: it counts as an order, not as GMV.
        ("franchisee1", {"customers": "2", "relations": "2", "orders": "2", "gmv": "¥100.00"}),
        ("outsider", {"customers": "1", "relations": "1", "orders": "1", "gmv": "¥99.00"}),
    ],
)
def test_overview_numbers_follow_the_scope(
    client: Client, shop: Shop, persona: str, numbers: dict[str, str]
) -> None:
    login(client, persona)
    response = client.get(reverse("console:home"))
    html = response.content.decode()
    shown = dict(re.findall(r'data-kpi="(\w+)">.*?class="kpi-value">([^<]+)<', html, flags=re.S))
    assert shown == numbers
    series = response.context["chart"]
    assert sum(series["customers"]) == int(numbers["customers"])
    assert sum(series["orders"]) == int(numbers["orders"])


def test_overview_chart_puts_each_order_in_its_week(client: Client, shop: Shop) -> None:
    login(client, "hq")
    chart = client.get(reverse("console:home")).context["chart"]
    by_week = {week: n for week, n in zip(chart["weeks"], chart["orders"], strict=True) if n}
    # Orders were paid on Tuesday 2026-01-06 and every 7 days after: one per Monday-based week.
    assert by_week == {"2026-01-05": 1, "2026-01-12": 1, "2026-01-19": 1, "2026-01-26": 1, "2026-02-02": 1}


@pytest.mark.parametrize("persona", PERSONAS)
def test_audit_log_hq_sees_all_others_their_own(client: Client, world: World, persona: str) -> None:
    for name in PERSONAS:
        audit_record(actor=world.actor(name), action="test.marker", target_type="customer", target_id=name)
    login(client, persona)
    html = client.get(reverse("console:audit_list") + "?action=test.marker").content.decode()
    users = set(attr_values(html, "data-user"))
    if persona == "hq":
        assert users == {"hq", "region1", "store1", "guide1", "franchisee1"}  # brand A, never the outsider
    else:
        assert users == {persona}


CONSOLE_PAGES = [
    ("console:home", []),
    ("console:customer_list", []),
    ("console:customer_total", []),
    ("console:customer_detail", [1]),
    ("console:customer_timeline", [1]),
    ("console:tag_list", []),
    ("console:order_list", []),
    ("console:org", []),
    ("console:analytics", []),
    ("console:audit_list", []),
    ("console:channel_codes", []),
    ("console:channel_code_new", []),
    ("console:channel_code_detail", [1]),
    ("console:channel_code_edit", [1]),
    ("console:channel_code_poster", [1]),
    ("console:channel_welcome", []),
    ("console:channel_welcome_sends", []),
    ("console:wecom", []),
    ("console:wecom_sync", []),
    ("console:wecom_sync_status", []),
    ("console:wecom_callbacks", []),
    ("console:wecom_callback_detail", [1]),
    ("console:inheritance", []),
    ("console:inheritance_new", []),
    ("console:inheritance_customers", []),
    ("console:inheritance_detail", [1]),
    ("console:inheritance_unassigned", []),
]


@pytest.mark.parametrize(("name", "args"), CONSOLE_PAGES)
def test_anonymous_is_sent_to_login(client: Client, db: None, name: str, args: list[int]) -> None:
    url = reverse(name, args=args)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('console:login')}?next={url}"


@pytest.mark.parametrize(
    "name", ["console:customer_reveal", "console:customer_export", "console:brand_switch"]
)
def test_anonymous_cannot_post(client: Client, world: World, name: str) -> None:
    args = [world.customers["c1"].id] if name == "console:customer_reveal" else []
    response = client.post(reverse(name, args=args))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:login"))


def test_anonymous_htmx_request_gets_a_full_page_redirect(client: Client, db: None) -> None:
    response = client.get(
        reverse("console:customer_list"), HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver/customers/?q=x"
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/login/?next=%2Fcustomers%2F%3Fq%3Dx"


# -- WeCom settings: brand-level, HQ admins only (the callback log names customers and members of every store) ------

WECOM_FORBIDDEN = {"region1", "store1", "guide1", "franchisee1"}


@pytest.fixture
def wecom_log(world: World) -> RawCallback:
    """Brand A connected (to a WeCom nobody serves) with one failed callback in its log."""
    connection_create(
        actor=world.actor("hq"),
        corp_id="wwA",
        contact_secret="contact-secret-of-brand-a-000000",
        callback_token=TOKEN,
        encoding_aes_key=AES_KEY,
        api_base_url="http://127.0.0.1:9/cgi-bin/",
    )
    assert signed_post(contact_xml("add_external_contact", "guide1", "wmSCOPE")).send().status_code == 200
    RawCallback.objects.update(status=RawCallback.Status.FAILED, error="BadEvent: test")
    return RawCallback.objects.get()


@pytest.mark.parametrize("persona", PERSONAS)
def test_wecom_settings_are_hq_only_and_never_cross_brands(
    client: Client, world: World, wecom_log: RawCallback, persona: str
) -> None:
    login(client, persona)
    before = (AuditLog.objects.count(), WeComConnection.objects.get().updated_at)
    detail = reverse("console:wecom_callback_detail", args=[wecom_log.id])
    requests = [
        client.get(reverse("console:wecom")),
        client.post(reverse("console:wecom"), {"corp_id": "wwTAKEN", "agent_id": "1"}),
        client.get(reverse("console:wecom_generate", args=["callback_token"])),
        client.get(reverse("console:wecom_sync")),
        client.get(reverse("console:wecom_sync_status")),
        client.post(reverse("console:wecom_sync_start")),
        client.get(reverse("console:wecom_callbacks")),
        client.get(detail),
        client.post(reverse("console:wecom_callback_retry", args=[wecom_log.id])),
        client.post(reverse("console:wecom_test")),
    ]
    codes = [r.status_code for r in requests]
    if persona in WECOM_FORBIDDEN:
        assert codes == [403] * len(requests)
        assert "只有总部管理员可以查看和修改品牌的企业微信设置。" in requests[0].content.decode()
        assert (AuditLog.objects.count(), WeComConnection.objects.get().updated_at) == before
        assert RawCallback.objects.get().status == RawCallback.Status.FAILED
        assert not SyncRun.objects.exists()
        return
    pages = "".join(r.content.decode() for r in requests if r.status_code == 200)
    if persona == "hq":
        assert codes == [200, 422, 200, 200, 200, 302, 200, 200, 302, 200]
        assert str(wecom_log.id) in attr_values(requests[6].content.decode(), "data-callback-id")
    else:  # brand B's admin: its own (empty) settings, never brand A's connection or callbacks
        assert codes == [200, 422, 200, 200, 200, 302, 200, 404, 404, 200]
        assert "wwA" not in pages
        assert "wmSCOPE" not in pages
        assert attr_values(requests[6].content.decode(), "data-callback-id") == []
        assert RawCallback.objects.get().status == RawCallback.Status.FAILED
        assert not WeComConnection.objects.filter(tenant=world.tenant_b).exists()


@pytest.mark.parametrize(
    "name", ["console:wecom", "console:wecom_test", "console:wecom_sync_start", "console:wecom_callback_retry"]
)
def test_anonymous_cannot_change_wecom_settings(client: Client, world: World, name: str) -> None:
    args = [1] if name == "console:wecom_callback_retry" else []
    response = client.post(reverse(name, args=args))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:login"))
    assert not AuditLog.objects.filter(action__startswith="wecom").exists()

