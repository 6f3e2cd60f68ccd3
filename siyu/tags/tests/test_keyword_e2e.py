"""End to end in headless Chromium: HQ creates a keyword rule in the console (in Chinese), a bad one is sent back
with the field named, and the list shows the rule. Screenshots go to SIYU_E2E_SCREENSHOTS."""

from __future__ import annotations

import pytest
from django.db import connections
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from siyu.e2e import SHOTS
from siyu.tags.models import KeywordRule
from siyu.testing import PASSWORD, World, build_world

pytestmark = pytest.mark.e2e


@pytest.fixture
def e2e_world(transactional_db: None) -> World:
    world = build_world()
    connections.close_all()  # the live server's thread and Playwright's greenlet open their own
    return world


def test_hq_creates_a_keyword_rule_in_the_console(live_server: LiveServer, e2e_world: World, page: Page) -> None:
    page.goto(f"{live_server.url}/tags/keyword-rules/")
    page.get_by_label("用户名").fill("hq")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator(".topbar-title")).to_have_text("关键词打标")
    page.locator("#new-rule").click()

    page.locator("#id_name").fill("敏感肌")
    page.locator("#id_keywords").fill("敏感肌，过敏\n泛红")
    page.locator("#id_exclusions").fill("过敏")  # also a keyword: refused, naming the field
    page.get_by_label("兴趣 · 护肤").check()
    page.locator("#save-rule").click()
    expect(page.locator("[data-error-field=exclusions]")).to_contain_text("both a keyword and an exclusion")
    expect(page.locator("#id_keywords")).to_have_value("敏感肌\n过敏\n泛红")  # what was typed comes back
    page.screenshot(path=str(SHOTS / "keyword-rule-form.png"), full_page=True)

    page.locator("#id_exclusions").fill("不是敏感肌")
    page.locator("#id_mode").select_option("all")
    page.locator("#save-rule").click()
    row = page.locator("tr[data-rule='敏感肌']")
    expect(row).to_contain_text("包含全部关键词")
    expect(row).to_contain_text("护肤")
    expect(row.locator("[data-tagged]")).to_have_text("0")
    page.screenshot(path=str(SHOTS / "keyword-rules.png"), full_page=True)
    rule = KeywordRule.objects.get()
    assert (rule.keywords, rule.exclusions, rule.mode) == (["敏感肌", "过敏", "泛红"], ["不是敏感肌"], "all")
