"""End to end in headless Chromium: sign in, find a customer by phone, open the 360 page, reveal, switch language.

Runs against pytest-django's live server with Debian's Chromium (Playwright cannot download browsers here).
Screenshots of the customer list and the 360 page go to /tmp for a human look.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connections
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from siyu.commerce.models import Order
from siyu.console.tests.conftest import _order
from siyu.core.models import AuditLog
from siyu.customers.services import customer_create, follow_relation_add
from siyu.e2e import SHOTS
from siyu.tags.services import customer_tag_add
from siyu.testing import PASSWORD, World, build_world

pytestmark = pytest.mark.e2e

NAMES = [
    "陈静", "刘洋", "杨帆", "黄磊", "周婷", "吴昊", "徐丽", "孙强", "胡敏", "朱琳",
    "高翔", "林雪", "何欢", "郭勇", "马超", "罗娜", "梁宇", "宋佳", "郑凯", "谢芳",
]


@pytest.fixture
def e2e_world(transactional_db: None) -> World:
    """The fixed world, committed so the live server's thread sees it, plus enough rows to page and chart."""
    world = build_world()
    hq = world.actor("hq")
    t0 = dt.datetime(2026, 9, 1, 9, 0, tzinfo=dt.UTC)
    stages = ["new", "engaged", "first_purchase", "repeat", "dormant"]
    guides = ["G1", "G2", "G3"]
    for i, name in enumerate(NAMES):
        customer = customer_create(
            actor=hq,
            name=name,
            phone=f"1370000{i:04d}",
            city="杭州",
            source="门店活码",
            lifecycle_stage=stages[i % len(stages)],
            owner_guide_id=world.guides[guides[i % 3]].id,
            created_at=t0 + dt.timedelta(days=3 * i),
        )
        follow_relation_add(
            actor=hq,
            customer_id=customer.id,
            guide_id=world.guides[guides[i % 3]].id,
            external_userid=f"wm-e2e-{i}",
            added_at=t0 + dt.timedelta(days=3 * i, minutes=2),
            add_way=1,
            state=f"store-S{i % 3 + 1}",
        )
        customer_tag_add(actor=hq, customer_id=customer.id, tag_id=world.tags["护肤" if i % 2 else "彩妆"].id)
    _order(world, "A-9001", "c3", Order.Status.PAID, 26800, "S3", "G3", tenant_id=world.tenant_a.id, days=200)
    _order(world, "A-9002", "c3", Order.Status.COMPLETED, 9900, "S3", "G3", tenant_id=world.tenant_a.id, days=230)
    # Playwright runs the test body in a greenlet with its own context, where Django opens another
    # connection; closing this one now leaves none behind to block dropping the test database.
    connections.close_all()
    return world


def test_find_open_reveal_and_switch_language(live_server: LiveServer, e2e_world: World, page: Page) -> None:
    world = e2e_world
    page.goto(f"{live_server.url}/customers/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/customers/$"))
    page.get_by_label("用户名").fill("hq")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()

    expect(page.locator(".topbar-title")).to_have_text("客户")
    rows = page.locator("#customer-table tbody tr[data-customer-id]")
    expect(rows).to_have_count(25)
    page.screenshot(path=str(SHOTS / "siyu-customer-list.png"), full_page=True)

    # Find c3 by phone: the table is swapped in place and the address bar carries the search.
    search = page.get_by_placeholder("手机号、姓名或会员号")
    search.fill("138 0000 0003")
    search.press("Enter")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/customers/\?q=138\+0000\+0003$"))
    expect(rows.first).to_contain_text("张*")
    expect(rows.first).to_contain_text("138****0003")

    rows.first.get_by_role("link").click()
    c3 = world.customers["c3"]
    expect(page).to_have_url(f"{live_server.url}/customers/{c3.id}/")
    timeline = page.locator("#timeline .tl-item")
    expect(timeline.first).to_be_visible()
    expect(page.locator('#timeline [data-event-type="order.paid"]')).to_have_count(2)
    expect(page.locator('#timeline [data-event-type="customer.created"]')).to_contain_text("创建客户")

    # The timeline filter swaps only the timeline.
    page.locator("#timeline select[name=type]").select_option("order.paid")
    expect(timeline).to_have_count(2)

    phone = page.locator('[data-pii="phone"]')
    expect(phone).to_have_text("138****0003")
    page.get_by_role("button", name="查看完整信息").click()
    expect(phone).to_have_text("13800000003")
    expect(page.locator('[data-pii="name"]')).to_have_text("张伟")
    assert AuditLog.objects.filter(action="pii.reveal", target_id=str(c3.id), actor=world.users["hq"]).count() == 1
    page.screenshot(path=str(SHOTS / "siyu-customer-360.png"), full_page=True)

    page.get_by_role("button", name="English").click()
    nav = page.get_by_role("navigation", name="Main navigation")
    expect(nav.get_by_role("link", name="Overview")).to_be_visible()
    expect(nav.get_by_role("link", name="Customers", exact=True)).to_be_visible()
    expect(nav).to_contain_text("Acquisition")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#timeline h2")).to_have_text("Timeline")


def test_pages_and_filters_swap_without_reload(live_server: LiveServer, e2e_world: World, page: Page) -> None:
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("用户名").fill("region1")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator(".kpi[data-kpi=customers] .kpi-value")).to_have_text("16")  # c1, c2 and 14 of the 20
    expect(page.locator(".chart canvas").first).to_be_attached()  # ECharts drew the weekly chart
    weekly = page.evaluate("JSON.parse(document.getElementById('chart-weekly').textContent)")
    assert sum(weekly["customers"]) == 16
    page.wait_for_timeout(1500)  # let the line animation finish before the screenshot
    page.screenshot(path=str(SHOTS / "siyu-overview.png"), full_page=True)

    page.get_by_role("link", name="客户", exact=True).click()
    page.evaluate("window.__marker = 1")  # survives only if the page is not reloaded
    page.locator("#customer-filters select[name=stage]").select_option("engaged")
    rows = page.locator("#customer-table tbody tr[data-customer-id]")
    expect(rows).to_have_count(3)
    expect(page).to_have_url(re.compile(r"/customers/\?stage=engaged$"))
    assert page.evaluate("window.__marker") == 1
    expect(page.locator(".total")).to_contain_text("共 3 位客户")
