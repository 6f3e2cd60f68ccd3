"""End to end in headless Chromium: an HQ admin connects the brand to WeCom (the emulator, over real HTTP), tests the
connection, sees a wrong secret's errcode, watches a sync's progress, syncs, and reads the callback log.

Jobs run with the immediate backend, inside the request that enqueues them, so no worker process is needed; the
emulator delivers real signed callbacks to the live server's callback URL, the one the page shows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.core.cache import cache
from django.db import connections
from playwright.sync_api import Page, expect
from pytest_django.fixtures import Settings as SettingsWrapper
from pytest_django.live_server_helper import LiveServer

from siyu.e2e import SHOTS
from siyu.emulator.model import Corp
from siyu.emulator.server import RunningServer
from siyu.testing import IMMEDIATE_TASKS, PASSWORD, World, build_world
from siyu.wecom.models import RawCallback, SyncRun
from siyu.wecom.services import sync_run_finish, sync_run_open, sync_run_progress
from siyu.wecom.tests.emulated import emulator_serving

pytestmark = pytest.mark.e2e

IMMEDIATE = IMMEDIATE_TASKS


@pytest.fixture
def e2e_world(transactional_db: None) -> World:
    world = build_world()
    connections.close_all()  # see test_e2e.e2e_world: no connection left to block dropping the test database
    return world


@pytest.fixture
def emulator() -> Iterator[RunningServer]:
    cache.clear()  # access tokens of an earlier emulator on the same port must not answer for this one
    with emulator_serving() as server:
        yield server
    cache.clear()


def emulator_admin(server: RunningServer, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.request(
        "POST" if body is not None else "GET", f"{server.url}/emulator/{path}", json=body, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_delivery(server: RunningServer, delivery_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for delivery in emulator_admin(server, "callbacks")["deliveries"]:
            if delivery["id"] == delivery_id and delivery["acknowledged"] is not None:
                return delivery
        time.sleep(0.1)
    raise AssertionError(f"delivery {delivery_id} was never answered")


def save(page: Page) -> None:
    page.get_by_role("button", name="保存", exact=True).click()
    expect(page.locator(".messages .alert-success")).to_contain_text("企业微信连接已保存。")


def test_connect_test_sync_and_read_the_callback_log(
    live_server: LiveServer, e2e_world: World, emulator: RunningServer, page: Page, settings: SettingsWrapper
) -> None:
    settings.TASKS = IMMEDIATE
    corp: Corp = next(iter(emulator.emulator.corps.values()))
    secret = corp.apps[0].secret

    page.goto(f"{live_server.url}/settings/wecom/")
    page.get_by_label("用户名").fill("hq")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("heading", name="连接品牌的企业微信")).to_be_visible()
    expect(page.locator("#test-connection")).to_be_disabled()  # nothing saved yet

    # The connection, with a token and key generated on the page (they go into WeCom's admin console too).
    page.get_by_label("企业 ID").fill(corp.corp_id)
    page.get_by_label("AgentId").fill(str(corp.apps[0].agentid))
    page.get_by_label("客户联系 Secret").fill(secret)
    page.get_by_label("API 地址").fill(f"{emulator.url}/cgi-bin/")
    page.locator('[data-generate="callback_token"]').click()
    expect(page.locator("#id_callback_token")).to_have_value(re.compile(r"^[A-Za-z0-9]{32}$"))
    page.locator('[data-generate="encoding_aes_key"]').click()
    expect(page.locator("#id_encoding_aes_key")).to_have_value(re.compile(r"^[A-Za-z0-9]{43}$"))
    token = page.locator("#id_callback_token").input_value()
    aes_key = page.locator("#id_encoding_aes_key").input_value()
    save(page)

    expect(page.locator('[data-secret-hint="contact_secret"]')).to_contain_text(f"••••{secret[-4:]}")
    expect(page.locator("#id_contact_secret")).to_have_value("")
    html = page.content()
    for value in (secret, token, aes_key):
        assert value not in html
    callback_url = page.locator("#callback-url").inner_text()
    assert callback_url == f"{live_server.url}/wecom/callback/{corp.corp_id}/"
    # What the admin does in WeCom's admin console: the URL, token and key the page gave.
    pasted = {"corp_id": corp.corp_id, "url": callback_url, "token": token, "encoding_aes_key": aes_key}
    emulator_admin(emulator, "callback", pasted)

    page.get_by_role("button", name="测试连接").click()
    result = page.locator("#connection-test")
    expect(result).to_contain_text("连接正常。")
    expect(result.locator(".check-ok")).to_have_count(3)
    page.screenshot(path=str(SHOTS / "siyu-wecom-connection.png"), full_page=True)

    # A wrong secret: WeCom's errcode, the endpoint, and what to do, in plain words.
    page.get_by_label("客户联系 Secret").fill("not-the-secret-at-all")
    save(page)
    page.get_by_role("button", name="测试连接").click()
    failed = result.locator('.check-failed[data-endpoint="gettoken"]')
    expect(failed).to_contain_text("errcode 40001")
    expect(failed).to_contain_text("获取 access_token")
    expect(failed).to_contain_text("企业微信拒绝了该 Secret")
    page.get_by_label("客户联系 Secret").fill(secret)
    save(page)

    # A sync in progress refreshes itself every 2 seconds, without reloading the page.
    page.get_by_role("link", name="同步", exact=True).first.click()
    expect(page.get_by_text("还没有运行过同步。").first).to_be_visible()
    run, _ = sync_run_open(tenant_id=e2e_world.tenant_a.id, phases=["members", "tags"])
    page.reload()
    current = page.locator("#sync-current")
    expect(current).to_have_attribute("data-sync-state", "running")
    expect(page.locator("#sync-now")).to_be_disabled()
    page.evaluate("window.__marker = 1")
    run = sync_run_progress(run=run, phase="members", checkpoint={"done": True}, counts={"created": 5})
    expect(current.locator("[data-pages]")).to_have_text("1")
    expect(current.locator('tr[data-phase="members"] [data-count="created"]')).to_have_text("5")
    sync_run_finish(run=run)
    expect(page.locator("#sync-current")).to_have_attribute("data-sync-state", "succeeded")
    assert page.evaluate("window.__marker") == 1

    # Sync now: a full pull from the emulator, finished with its counts in the history.
    page.get_by_role("button", name="立即同步").click()
    history = page.locator("#sync-history tbody tr[data-status]")
    expect(history).to_have_count(2)
    latest = SyncRun.objects.filter(tenant=e2e_world.tenant_a).order_by("-id").first()
    assert latest is not None
    assert latest.status == SyncRun.Status.SUCCEEDED
    row = page.locator(f'#sync-history tr[data-run-id="{latest.id}"]')
    expect(row).to_have_attribute("data-status", "succeeded")
    expect(row.locator('tr[data-phase="groups"] [data-count="created"]')).to_have_text(str(len(corp.group_chats)))
    expect(row.locator('tr[data-phase="contacts"] [data-count="created"]')).to_have_text(
        str(latest.counts["contacts"]["created"])
    )
    page.screenshot(path=str(SHOTS / "siyu-wecom-sync.png"), full_page=True)

    # A customer adds a guide in WeCom: the emulator calls the URL the page showed, siyu stores and processes it.
    owner = next(m.userid for m in corp.members.values() if m.customer_contact and m.status == 1)
    added = emulator_admin(emulator, "simulate/add_contact", {"userid": owner, "name": "林小雨", "state": "e2e"})
    delivery = wait_for_delivery(emulator, added["deliveries"][0])
    assert delivery["acknowledged"] is True, delivery
    external_userid = added["external_userid"]
    assert RawCallback.objects.get(event__ExternalUserID=external_userid).status == RawCallback.Status.PROCESSED

    page.get_by_role("link", name="回调日志").first.click()
    rows = page.locator("#callback-table tbody tr[data-callback-id]")
    expect(rows.first).to_be_visible()
    page.evaluate("window.__marker = 2")
    filters = page.locator("#callback-filters")
    filters.locator("input[name=change]").fill("add_external_contact")
    filters.locator("input[name=q]").fill(external_userid)
    filters.locator("input[name=q]").press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-status", "processed")
    expect(rows.first).to_contain_text(owner)
    expect(page).to_have_url(re.compile(rf"/settings/wecom/callbacks/\?change=add_external_contact&q={external_userid}$"))
    assert page.evaluate("window.__marker") == 2
    filters.locator("select[name=status]").select_option("failed")
    expect(rows).to_have_count(0)
    filters.locator("select[name=status]").select_option("processed")
    expect(rows).to_have_count(1)

    rows.first.get_by_role("link", name="详情").click()
    expect(page.locator("#callback-xml")).to_contain_text(f"<ExternalUserID>{external_userid}</ExternalUserID>")
    expect(page.locator('#callback-fields tr[data-field="State"] td')).to_have_text("e2e")
    expect(page.locator("#callback-status")).to_have_attribute("data-status", "processed")
    expect(page.get_by_role("link", name="打开客户")).to_be_visible()
    page.screenshot(path=str(SHOTS / "siyu-wecom-callback.png"), full_page=True)
