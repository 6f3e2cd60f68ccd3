"""End to end in headless Chromium: an HQ admin creates a live code, downloads its QR (PNG and SVG), a customer scans
it in the emulator (which calls siyu's callback URL over HTTP), and the add shows in the code's stats with the tag
applied and the welcome message sent.

Jobs run with the immediate backend inside the callback request, so no worker process is needed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import connections
from playwright.sync_api import Page, expect
from pytest_django.fixtures import Settings as SettingsWrapper
from pytest_django.live_server_helper import LiveServer

from siyu.channels.models import LiveCode, WelcomeSend
from siyu.channels.tests.conftest import SPEC, WORLD_MEMBERS
from siyu.core.scopes import Actor
from siyu.e2e import SHOTS
from siyu.emulator.model import Member
from siyu.tags.models import CustomerTag
from siyu.testing import IMMEDIATE_TASKS, PASSWORD, World, build_world
from siyu.wecom.services import connection_create
from siyu.wecom.tests.emulated import emulator_serving
from siyu.wecom.tests.support import AES_KEY, TOKEN

pytestmark = pytest.mark.e2e


@pytest.fixture
def e2e_world(transactional_db: None) -> World:
    world = build_world()
    connections.close_all()  # no connection left to block dropping the test database
    return world


@pytest.fixture
def emulated_brand(e2e_world: World, live_server: LiveServer) -> Iterator[object]:
    from django.core.cache import cache

    cache.clear()
    with emulator_serving(SPEC) as server:
        corp = next(iter(server.emulator.corps.values()))
        with server.emulator.lock:
            root = min(corp.departments)
            for userid, name in WORLD_MEMBERS.items():
                corp.members[userid] = Member(userid=userid, name=name, department=[root], main_department=root)
        connection_create(
            actor=Actor.system(e2e_world.tenant_a.id),
            corp_id=corp.corp_id,
            agent_id=str(corp.apps[0].agentid),
            contact_secret=corp.apps[0].secret,
            callback_token=TOKEN,
            encoding_aes_key=AES_KEY,
            api_base_url=f"{server.url}/cgi-bin/",
        )
        import httpx

        httpx.post(
            f"{server.url}/emulator/callback",
            json={
                "url": f"{live_server.url}/wecom/callback/{corp.corp_id}/",
                "token": TOKEN,
                "encoding_aes_key": AES_KEY,
            },
            timeout=10,
        ).raise_for_status()
        yield server
    cache.clear()


def test_create_a_code_download_its_qr_and_see_a_scan_in_its_stats(
    live_server: LiveServer, e2e_world: World, emulated_brand: object, page: Page, settings: SettingsWrapper
) -> None:
    import httpx

    settings.TASKS = IMMEDIATE_TASKS
    server = emulated_brand
    page.goto(f"{live_server.url}/acquisition/channel-codes/")
    page.get_by_label("用户名").fill("hq")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#code-table")).to_contain_text("还没有活码。")

    page.locator("#new-code").click()
    page.locator("#id_name").fill("门店桌牌")
    page.locator("#id_state").fill("x" * 31)  # too long: the form says so and keeps what was typed
    page.locator('#guide-table tr[data-guide="guide1"] input[type=checkbox]').check()
    page.locator("#tag-checks").get_by_label("兴趣 · 护肤").check()
    page.locator("#id_welcome_text").fill("{客户昵称}您好，我是{导购}")
    page.locator("#save-code").click()
    expect(page.locator('#form-errors [data-error-field="state"]')).to_contain_text("30")
    assert not LiveCode.objects.exists()
    page.locator("#id_state").fill("table-card")
    page.locator("#save-code").click()

    expect(page.locator("#code-state")).to_have_text("table-card")
    expect(page.locator("#code-users")).to_have_text("guide1")
    code = LiveCode.objects.get()
    with page.expect_download() as png:
        page.locator("#download-png").click()
    assert png.value.suggested_filename == f"live-code-{code.id}.png"
    assert open(png.value.path(), "rb").read(4) == b"\x89PNG"  # noqa: SIM115 - a quick peek at a temp file
    with page.expect_download() as svg:
        page.locator("#download-svg").click()
    assert b"<svg" in open(svg.value.path(), "rb").read()  # noqa: SIM115
    page.screenshot(path=str(SHOTS / "siyu-channel-code.png"), full_page=True)

    # A customer scans the printed code: WeCom (the emulator) calls siyu's callback URL.
    added = httpx.post(
        f"{server.url}/emulator/simulate/add_contact", json={"config_id": code.config_id, "name": "林小雨"}, timeout=30
    ).json()
    deadline = time.monotonic() + 20
    while not WelcomeSend.objects.filter(status=WelcomeSend.Status.SENT).exists():
        assert time.monotonic() < deadline, "the welcome message was never sent"
        time.sleep(0.1)

    page.reload()
    expect(page.locator('#code-kpis [data-kpi="adds"]')).to_have_text("1")
    expect(page.locator('#code-kpis [data-kpi="net"]')).to_have_text("1")
    expect(page.locator("#by-guide tr[data-guide-id]")).to_contain_text("导购1")
    # The log shows the message as written; the text sent (with the customer's name) is stored encrypted.
    expect(page.locator('#welcome-sends tr[data-send-status="sent"]')).to_contain_text("{客户昵称}您好，我是{导购}")
    page.screenshot(path=str(SHOTS / "siyu-channel-code-stats.png"), full_page=True)
    tags = CustomerTag.objects.filter(customer__identities__value=added["external_userid"])
    assert list(tags.values_list("tag__name", flat=True)) == ["护肤"]
    delivered = httpx.get(f"{server.url}/emulator/welcome_messages", timeout=10).json()["welcome_messages"]
    assert [m["text"] for m in delivered] == ["林小雨您好，我是导购1"]
