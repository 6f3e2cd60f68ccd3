"""End to end in headless Chromium: HQ builds a segment in the console; the live count follows each condition added,
and the saved segment shows in the list with the same count. Screenshots go to SIYU_E2E_SCREENSHOTS."""

from __future__ import annotations

import pytest
from django.db import connections
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from siyu.analytics.models import Segment
from siyu.e2e import SHOTS
from siyu.testing import PASSWORD, World, build_world

pytestmark = pytest.mark.e2e


@pytest.fixture
def e2e_world(transactional_db: None) -> World:
    world = build_world()
    connections.close_all()  # the live server's thread and Playwright's greenlet open their own
    return world


def test_build_a_segment_with_a_live_count(live_server: LiveServer, e2e_world: World, page: Page) -> None:
    page.goto(f"{live_server.url}/customers/segments/new/")
    page.get_by_label("用户名").fill("hq")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    count = page.locator("#live-count [data-count]")
    expect(count).to_have_attribute("data-count", "")
    skin, makeup = e2e_world.tags["护肤"].id, e2e_world.tags["彩妆"].id
    # One condition: has the tag 护肤 (c1, c3).
    page.locator("[data-action=add-condition]").first.click()
    page.locator("select[data-field=tag_id]").nth(0).select_option(str(skin))
    expect(count).to_have_attribute("data-count", "2")
    # A second condition, 彩妆 (c2): with "all of" nobody has both; with "any of" three customers.
    page.locator("[data-action=add-condition]").first.click()
    page.locator("select[data-field=tag_id]").nth(1).select_option(str(makeup))
    expect(count).to_have_attribute("data-count", "0")
    page.locator("select[data-field=group-op]").first.select_option("or")
    expect(count).to_have_attribute("data-count", "3")
    page.screenshot(path=str(SHOTS / "segment-builder.png"), full_page=True)
    page.locator("#id_name").fill("护肤或彩妆")
    page.locator("#save-segment").click()
    row = page.locator("#segment-table tr[data-segment='护肤或彩妆']")
    expect(row.locator("[data-count]")).to_have_text("3")
    segment = Segment.objects.get(name="护肤或彩妆")
    assert segment.rule == {
        "op": "or",
        "rules": [{"op": "has_tag", "tag_id": skin}, {"op": "has_tag", "tag_id": makeup}],
    }
    assert segment.cached_count == 3
