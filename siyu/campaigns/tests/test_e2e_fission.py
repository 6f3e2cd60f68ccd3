"""End to end in headless Chromium: an HQ operator creates a fission campaign in the console; a participant's friends
add the guide through their code (the channels hook records the invites); the participant's own page shows the
progress, the hold ends, and the operator sees the invites, the leaderboard and the reward on the campaign page.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connections
from django.urls import reverse
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from siyu.campaigns import services
from siyu.campaigns.models import Campaign, Participant
from siyu.campaigns.tests.test_fission import Adds, join, seed
from siyu.e2e import SHOTS
from siyu.testing import PASSWORD, World, build_world

pytestmark = pytest.mark.e2e


@pytest.fixture
def e2e_world(transactional_db: None) -> World:
    world = build_world()
    connections.close_all()  # see console test_e2e: no connection left to block dropping the test database
    return world


def test_create_a_campaign_and_watch_invites_and_the_leaderboard(
    live_server: LiveServer, e2e_world: World, page: Page
) -> None:
    world = e2e_world
    page.goto(f"{live_server.url}/acquisition/fission/")
    page.get_by_label("用户名").fill("hq")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#campaign-table")).to_contain_text("暂无活动。")

    page.get_by_role("link", name="新建活动").click()
    page.get_by_label("活动名称").fill("春季邀友")
    page.get_by_label("开始时间").fill("2026-03-01T00:00")
    page.get_by_label("结束时间").fill("2026-03-31T00:00")
    page.get_by_label("承接导购").select_option(str(world.guides["G1"].id))
    page.get_by_label("海报文案").fill("邀请好友，一起领好礼")
    page.locator("#id_tier1_threshold").fill("2")
    page.locator("#id_tier1_name").fill("满100减20券")
    page.get_by_role("button", name="保存").click()
    expect(page.locator(".messages")).to_contain_text("活动已创建")
    expect(page.locator('[data-stat="participants"]')).to_have_text("0")

    # Activation needs WeCom (the channels tests cover it): the campaign is switched on here directly.
    campaign = Campaign.objects.get()
    Campaign.objects.filter(id=campaign.id).update(status=Campaign.Status.ACTIVE, entry_live_code_id=9_001)
    campaign.refresh_from_db()
    adds = Adds(world)
    t = campaign.starts_at + dt.timedelta(hours=1)
    inviter = seed(world, campaign, adds, at=t, code=9_050)
    for k in range(3):
        join(world, adds.new(at=t + dt.timedelta(hours=k + 1)), 9_050)

    page.reload()
    expect(page.locator('[data-stat="participants"]')).to_have_text("4")
    expect(page.locator('[data-stat="pending"]')).to_have_text("3")
    expect(page.locator("#leaderboard")).to_contain_text("暂无计入的邀请。")

    # The participant's own page (what the guide sends them): 0 counted, 3 waiting.
    participant = page.context.new_page()
    participant.goto(f"{live_server.url}{reverse('campaigns:participant', args=[inviter.token])}")
    expect(participant.locator("#progress")).to_have_attribute("data-pending", "3")
    expect(participant.locator("#messages")).to_contain_text("小时后计入")

    services.fission_invites_settle(tenant_id=world.tenant_a.id, now=t + dt.timedelta(days=2))
    page.reload()
    expect(page.locator('[data-stat="counted"]')).to_have_text("3")
    expect(page.locator('[data-stat="grants"]')).to_have_text("1")
    board = page.locator(f'#leaderboard tr[data-participant-id="{inviter.id}"]')
    expect(board).to_contain_text("客*")
    expect(board.locator("td.num").first).to_have_text("3")
    expect(page.locator("#rewards")).to_contain_text("满100减20券")
    page.screenshot(path=str(SHOTS / "siyu-fission-campaign.png"), full_page=True)

    participant.reload()
    expect(participant.locator("#progress")).to_have_attribute("data-counted", "3")
    expect(participant.locator("#messages")).to_contain_text("恭喜！你邀请满 2 人，获得满100减20券！")
    assert Participant.objects.filter(campaign=campaign).count() == 4
