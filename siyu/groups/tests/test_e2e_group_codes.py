"""End to end in headless Chromium: an HQ admin creates a group code over two groups of the brand's WeCom corp (the
emulator, over real HTTP); customers scan it; the emulator's signed callbacks reach the live server, which mirrors
the group and switches the code when the first group reaches its threshold; the page shows the switch and the
per-group counts.

Jobs run with the immediate backend inside the callback request, so no worker process is needed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.db import connections
from playwright.sync_api import Page, expect
from pytest_django.fixtures import Settings as SettingsWrapper
from pytest_django.live_server_helper import LiveServer

from siyu.e2e import SHOTS
from siyu.emulator.server import RunningServer
from siyu.groups.models import CustomerGroup, GroupCode
from siyu.testing import IMMEDIATE_TASKS, PASSWORD, World, build_world
from siyu.wecom.sync import SyncOptions, sync_run
from siyu.wecom.tests.emulated import Brand, connect_brand, emulator_serving
from siyu.wecom.tests.support import AES_KEY, TOKEN

pytestmark = pytest.mark.e2e


@pytest.fixture
def e2e_world(transactional_db: None) -> World:
    world = build_world()
    connections.close_all()  # see console test_e2e.e2e_world: no connection left to block dropping the database
    return world


@pytest.fixture
def emulator() -> Iterator[RunningServer]:
    cache.clear()
    with emulator_serving() as server:
        yield server
    cache.clear()


def delivered(brand: Brand, ids: list[int]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answered = {d["id"] for d in brand.admin("callbacks")["deliveries"] if d["acknowledged"] is not None}
        if set(ids) <= answered:
            return
        time.sleep(0.1)
    raise AssertionError(f"deliveries {ids} were never answered")


def test_create_a_group_code_see_it_switch_and_count_per_group(
    live_server: LiveServer, e2e_world: World, emulator: RunningServer, page: Page, settings: SettingsWrapper
) -> None:
    settings.TASKS = IMMEDIATE_TASKS
    brand = connect_brand(emulator, tenant=e2e_world.tenant_a)
    corp, tenant = brand.corp, brand.tenant
    sync_run(tenant_id=tenant.id, options=SyncOptions())
    url = f"{live_server.url}/wecom/callback/{corp.corp_id}/"
    brand.admin("callback", {"corp_id": corp.corp_id, "url": url, "token": TOKEN, "encoding_aes_key": AES_KEY})
    first, second = CustomerGroup.objects.filter(tenant=tenant).order_by("member_count", "chat_id")[:2]
    connections.close_all()

    page.goto(f"{live_server.url}/acquisition/group-codes/")
    page.get_by_label("用户名").fill("hq")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_text("还没有群活码。")).to_be_visible()
    page.get_by_role("link", name="新建群活码").click()
    page.locator("#id_name").fill("春季会员群")
    page.locator("#id_state").fill("spring-e2e")
    page.locator("#id_room_base_name").fill("春季群")
    for group, threshold in ((first, first.member_count + 2), (second, None)):
        row = page.locator(f'#group-choices tr[data-chat-id="{group.chat_id}"]')
        row.locator("input[name=groups]").check()
        if threshold:
            row.locator(f"input[name=threshold_{group.id}]").fill(str(threshold))
    page.locator("#save-group-code").click()

    expect(page.locator(".messages")).to_contain_text("群活码已保存。")
    way = page.locator("#way-groups [data-way-chat]")
    expect(way).to_have_count(2)
    expect(page.locator("#qr-image")).to_be_visible()
    code = GroupCode.objects.get(tenant=tenant, state="spring-e2e")
    qr = code.qr_code

    # Two customers scan: WeCom puts them in the first group, which then reaches its threshold.
    with emulator.emulator.lock:
        inside = {m.userid for chat in corp.group_chats.values() for m in chat.member_list}
        people = sorted(e for e, c in corp.contacts.items() if e not in inside and c.follows)[:3]
    deliveries: list[int] = []
    for person in people[:2]:
        joined = brand.admin("simulate/join_way", {"config_id": code.config_id, "external_userid": person})
        assert joined["chat_id"] == first.chat_id
        deliveries += joined["deliveries"]
    delivered(brand, deliveries)

    page.reload()
    expect(way).to_have_count(1)
    expect(way.first).to_have_attribute("data-way-chat", second.chat_id)
    first_row = page.locator(f'#group-stats tr[data-chat-id="{first.chat_id}"]')
    expect(first_row).to_have_attribute("data-full", "1")
    expect(first_row).to_have_attribute("data-in-way", "0")
    expect(first_row.locator("[data-joins]")).to_have_text("2")
    expect(first_row.locator("[data-members]")).to_have_text(str(first.member_count + 2))
    expect(page.locator(f'#group-stats tr[data-chat-id="{second.chat_id}"]')).to_have_attribute("data-in-way", "1")
    expect(page.locator('[data-gc-chart="daily"] canvas')).to_have_count(1)
    page.screenshot(path=str(SHOTS / "siyu-group-code.png"), full_page=True)

    # The same QR sends the next customer to the second group.
    third = brand.admin("simulate/join_way", {"config_id": code.config_id, "external_userid": people[2]})
    assert third["chat_id"] == second.chat_id
    code.refresh_from_db()
    assert code.qr_code == qr

    page.goto(f"{live_server.url}/acquisition/group-codes/")
    expect(page.locator(f'tr[data-group-code-id="{code.id}"]')).to_contain_text("春季会员群")
