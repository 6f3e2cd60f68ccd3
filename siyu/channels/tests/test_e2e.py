"""End to end in headless Chromium: an HQ admin creates a live code, downloads its QR (PNG and SVG), a customer scans
it in the emulator (which calls siyu's callback URL over HTTP), and the add shows in the code's stats with the tag
applied and the welcome message sent.

Jobs run with the immediate backend inside the callback request, so no worker process is needed.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.db import connections
from PIL import Image
from playwright.sync_api import Page, expect
from pytest_django.fixtures import Settings as SettingsWrapper
from pytest_django.live_server_helper import LiveServer

from siyu.channels.models import LiveCode, WelcomeAsset, WelcomeMessage, WelcomeSend
from siyu.channels.tests.conftest import SPEC
from siyu.e2e import SHOTS
from siyu.tags.models import CustomerTag
from siyu.testing import IMMEDIATE_TASKS, PASSWORD, World, build_world
from siyu.wecom.tests.emulated import WORLD_MEMBERS, Brand, add_members, connect_brand, emulator_serving
from siyu.wecom.tests.support import AES_KEY, TOKEN

pytestmark = pytest.mark.e2e


@pytest.fixture
def e2e_world(transactional_db: None) -> World:
    world = build_world()
    connections.close_all()  # no connection left to block dropping the test database
    return world


@pytest.fixture
def emulated_brand(e2e_world: World, live_server: LiveServer) -> Iterator[Brand]:
    """Brand A on an emulator corp of the world's guides, which delivers its callbacks to the live server."""
    cache.clear()
    with emulator_serving(SPEC) as server:
        corp = next(iter(server.emulator.corps.values()))
        with server.emulator.lock:
            add_members(corp, WORLD_MEMBERS["a"])
        brand = connect_brand(server, tenant=e2e_world.tenant_a)
        url = f"{live_server.url}/wecom/callback/{corp.corp_id}/"
        brand.admin("callback", {"url": url, "token": TOKEN, "encoding_aes_key": AES_KEY})
        yield brand
    cache.clear()


def test_create_a_code_download_its_qr_and_see_a_scan_in_its_stats(
    live_server: LiveServer, e2e_world: World, emulated_brand: Brand, page: Page, settings: SettingsWrapper
) -> None:
    settings.TASKS = IMMEDIATE_TASKS
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
    added = emulated_brand.admin("simulate/add_contact", {"config_id": code.config_id, "name": "林小雨"})
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
    delivered = emulated_brand.admin("welcome_messages")["welcome_messages"]
    assert [m["text"] for m in delivered] == ["林小雨您好，我是导购1"]


def test_a_miniprogram_on_the_welcome_form_and_the_nine_attachment_limit(
    live_server: LiveServer, e2e_world: World, page: Page
) -> None:
    """HQ uploads a cover, adds a mini-program card to the brand's default welcome, then tries ten attachments."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "teal").save(buffer, format="PNG")
    page.goto(f"{live_server.url}/acquisition/channel-codes/welcome/")
    page.get_by_label("用户名").fill("hq")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()

    page.locator("#assets input[type=file]").set_input_files(
        files=[{"name": "会员中心.png", "mimeType": "image/png", "buffer": buffer.getvalue()}]
    )
    page.locator("#assets").get_by_role("button", name="上传").click()
    expect(page.locator("#assets")).to_contain_text("会员中心.png")

    form = page.locator("#welcome-form")
    form.locator("#id_scope").select_option("default")
    form.locator("#id_text").fill("{客户昵称}你好，会员权益在这里")
    row = form.locator('#miniprograms tr[data-miniprogram="1"]')
    row.get_by_label("小程序标题").fill("会员中心")
    row.get_by_label("AppID").fill("wx1234567890abcdef")
    row.get_by_label("页面路径").fill("pages/member/index")
    row.get_by_label("封面图").select_option(label="会员中心.png")
    form.locator("#save-welcome").click()

    expect(page.locator(".messages")).to_contain_text("已保存")
    saved = WelcomeMessage.objects.get(tenant=e2e_world.tenant_a, scope="default")
    cover = WelcomeAsset.objects.get(tenant=e2e_world.tenant_a)
    assert saved.attachments == [
        {"msgtype": "miniprogram", "title": "会员中心", "appid": "wx1234567890abcdef", "page": "pages/member/index",
         "asset_id": cover.id}
    ]  # fmt: skip
    listed = page.locator(f'#welcome-list tr[data-welcome-id="{saved.id}"]')
    expect(listed.locator('[data-msgtype="miniprogram"]')).to_have_text("小程序 · 会员中心")

    # Nine links on top of the mini-program: ten attachments, refused with the limit spelt out; nothing changes.
    listed.get_by_role("link", name="编辑").click()
    expect(form.locator('#miniprograms tr[data-miniprogram="1"] input[name=mp_title]')).to_have_value("会员中心")
    form.locator("#id_links").fill("\n".join(f"第{i}篇 | https://brand.example.com/{i}" for i in range(9)))
    form.locator("#save-welcome").click()
    expect(page.locator("#attachments-error")).to_have_text(
        "最多 9 个附件（链接、图片、文件和小程序合计），这条欢迎语有 10 个。"
    )
    expect(form.locator('#miniprograms tr[data-miniprogram="1"] input[name=mp_title]')).to_have_value("会员中心")
    page.screenshot(path=str(SHOTS / "siyu-welcome-miniprogram.png"), full_page=True)
    saved.refresh_from_db()
    assert [a["msgtype"] for a in saved.attachments] == ["miniprogram"]
