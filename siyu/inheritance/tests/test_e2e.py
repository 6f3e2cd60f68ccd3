"""End to end in headless Chromium: an HQ admin hands two customers to another guide from the console, sees the
transfer waiting out WeCom's 24-hour window, refreshes after it, and finds it listed as done.

The brand is synced from the emulator served over HTTP; the console (pytest-django's live server) talks to it with
the real client. The emulator's clock is moved a day forward instead of waiting.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.core.cache import cache
from django.db import connections
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from siyu.core import services as core_services
from siyu.core.models import Role
from siyu.customers.models import Customer, FollowRelation
from siyu.e2e import SHOTS
from siyu.inheritance.models import Transfer
from siyu.inheritance.tests.conftest import DAY, Synced
from siyu.testing import PASSWORD
from siyu.wecom.tests.emulated import connect_brand, emulator_serving

pytestmark = pytest.mark.e2e


@dataclass
class Scene:
    synced: Synced
    handover: str
    takeover: str
    customers: list[Customer]


@pytest.fixture
def scene(transactional_db: None) -> Iterator[Scene]:
    cache.clear()
    with emulator_serving() as server:
        brand = connect_brand(server, slug="e2e-inherit")
        synced = Synced(brand)
        synced.sync("members", "contacts")
        user = core_services.user_create(username="hq-inherit", password=PASSWORD)
        core_services.membership_create(tenant=brand.tenant, user=user, role=Role.HQ_ADMIN)
        handover, takeover, externals = synced.pair(3)
        customers = [synced.customer(e) for e in externals[:2]]
        connections.close_all()  # Playwright's greenlet opens its own connection
        yield Scene(synced=synced, handover=handover, takeover=takeover, customers=customers)
    cache.clear()


def test_start_a_transfer_and_follow_it_to_the_end(live_server: LiveServer, scene: Scene, page: Page) -> None:
    synced = scene.synced
    handover, takeover = synced.guide(scene.handover), synced.guide(scene.takeover)
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("用户名").fill("hq-inherit")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()

    page.locator("nav.nav").get_by_role("link", name="客户继承").click()
    expect(page.locator(".topbar-title")).to_contain_text("客户继承")
    page.get_by_role("link", name="新建继承").first.click()

    # Choose the handover guide: its customers load into the form without a page load.
    page.locator("select[name=handover]").select_option(str(handover.id))
    picks = page.locator("#customer-picks tr[data-pick-customer]")
    expect(picks).to_have_count(
        FollowRelation.objects.filter(guide=handover, status="active").exclude(external_userid="").count()
    )
    page.get_by_label("只交接我勾选的客户").check()
    for customer in scene.customers:
        page.locator(f'#customer-picks input[value="{customer.id}"]').check()
    page.locator("select[name=takeover]").select_option(str(takeover.id))
    page.get_by_label("给客户的消息").fill("您好，我是您的新顾问")
    page.screenshot(path=str(SHOTS / "siyu-transfer-new.png"), full_page=True)
    page.get_by_role("button", name="开始转交").click()

    transfer = Transfer.objects.get()
    expect(page).to_have_url(f"{live_server.url}/settings/inheritance/{transfer.id}/")
    expect(page.locator("#transfer-status")).to_have_text("进行中")
    rows = page.locator("#transfer-items tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator('#transfer-items tr[data-item-status="waiting"]')).to_have_count(2)
    expect(rows.first).to_contain_text("等待接替（24 小时内）")
    page.screenshot(path=str(SHOTS / "siyu-transfer-waiting.png"), full_page=True)

    # A day later WeCom has taken them over; "refresh status" swaps the panel in place.
    synced.advance(DAY + 1)
    page.evaluate("window.__marker = 1")
    page.get_by_role("button", name="刷新状态").click()
    expect(page.locator("#refresh-notice")).to_be_visible()
    expect(page.locator('#transfer-items tr[data-item-status="succeeded"]')).to_have_count(2)
    expect(page.locator("#transfer-status")).to_have_text("已完成")
    assert page.evaluate("window.__marker") == 1
    for customer in scene.customers:
        relation = FollowRelation.objects.get(customer=customer, guide=takeover)
        assert (relation.status, relation.add_way) == ("active", 202)

    page.locator("nav.nav").get_by_role("link", name="客户继承").click()
    row = page.locator(f'#transfer-table tr[data-transfer-id="{transfer.id}"]')
    expect(row).to_have_attribute("data-status", "done")
    expect(row.locator('[data-count-status="succeeded"]')).to_have_text(re.compile(r"已接替\s*2"))
    page.screenshot(path=str(SHOTS / "siyu-transfer-list.png"), full_page=True)
