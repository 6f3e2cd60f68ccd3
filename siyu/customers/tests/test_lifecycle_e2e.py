"""End to end in headless Chromium: a store manager drags a customer card from one kanban column to another; the
counts change and the customer's stage is saved. Screenshots go to SIYU_E2E_SCREENSHOTS."""

from __future__ import annotations

import pytest
from django.db import connections
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from siyu.core.models import AuditLog
from siyu.customers.models import Customer
from siyu.e2e import SHOTS
from siyu.testing import PASSWORD, World, build_world

pytestmark = pytest.mark.e2e


@pytest.fixture
def e2e_world(transactional_db: None) -> World:
    world = build_world()
    connections.close_all()  # the live server's thread and Playwright's greenlet open their own
    return world


def test_drag_a_card_to_another_stage(live_server: LiveServer, e2e_world: World, page: Page) -> None:
    page.goto(f"{live_server.url}/customers/lifecycle/")
    page.get_by_label("用户名").fill("region1")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    new = page.locator(".kanban-col[data-stage=new]")
    engaged = page.locator(".kanban-col[data-stage=engaged]")
    # The region manager's scope: c1 and c2.
    expect(new.locator("[data-count]")).to_have_text("2")
    expect(engaged.locator("[data-count]")).to_have_text("0")
    c1 = e2e_world.customers["c1"]
    card = page.locator(f".kanban-card[data-customer-id='{c1.id}']")
    expect(card).to_contain_text("王**")
    card.drag_to(engaged)
    expect(page.locator(".kanban-col[data-stage=engaged] [data-count]")).to_have_text("1")
    expect(page.locator(".kanban-col[data-stage=new] [data-count]")).to_have_text("1")
    expect(page.locator(f".kanban-col[data-stage=engaged] .kanban-card[data-customer-id='{c1.id}']")).to_be_visible()
    page.screenshot(path=str(SHOTS / "lifecycle-kanban.png"), full_page=True)
    customer = Customer.objects.get(id=c1.id)
    assert customer.lifecycle_stage == "engaged"
    assert customer.stage_held_until is not None
    assert AuditLog.objects.filter(action="customer.stage_move", target_id=str(c1.id)).count() == 1
