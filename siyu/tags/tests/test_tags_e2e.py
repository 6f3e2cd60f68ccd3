"""End to end in headless Chromium: HQ creates a tag group and a tag on the tags page (in Chinese, through htmx)
and they appear. Screenshots go to SIYU_E2E_SCREENSHOTS."""

from __future__ import annotations

import pytest
from django.db import connections
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from siyu.e2e import SHOTS
from siyu.tags.models import Tag
from siyu.testing import PASSWORD, World, build_world

pytestmark = pytest.mark.e2e


@pytest.fixture
def e2e_world(transactional_db: None) -> World:
    world = build_world()
    connections.close_all()  # the live server's thread and Playwright's greenlet open their own
    return world


def test_hq_creates_a_tag_in_the_console(live_server: LiveServer, e2e_world: World, page: Page) -> None:
    page.goto(f"{live_server.url}/tags/")
    page.get_by_label("用户名").fill("hq")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator(".topbar-title")).to_have_text("标签")

    page.locator("#new-group-name").fill("肤质")
    page.locator("#new-group-tags").fill("干皮")
    page.locator("#create-group").click()
    group = page.locator("section[data-tag-group='肤质']")
    expect(group).to_be_visible()
    group.locator("input[data-new-tag='肤质']").fill("油皮")
    group.locator("button[data-add-tag='肤质']").click()
    expect(page.locator("section[data-tag-group='肤质'] tr[data-tag='油皮']")).to_be_visible()
    page.screenshot(path=str(SHOTS / "tags.png"), full_page=True)
    assert sorted(Tag.objects.filter(group__name="肤质").values_list("name", flat=True)) == ["干皮", "油皮"]
