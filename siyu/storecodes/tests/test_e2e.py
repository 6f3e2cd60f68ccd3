"""End to end in headless Chromium: the landing page by coordinates, by granted geolocation, the fallback, and
the console's store-code pages (chart, CSV import as a job with its report, a store's week). Screenshots go to
SIYU_E2E_SCREENSHOTS."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.db import connections
from playwright.sync_api import Browser, Page, expect
from pytest_django.fixtures import Settings as SettingsWrapper
from pytest_django.live_server_helper import LiveServer

from siyu.core.models import Store
from siyu.e2e import SHOTS
from siyu.storecodes.models import StoreCodeSettings
from siyu.storecodes.services import store_code_settings_ensure
from siyu.storecodes.tests.conftest import brand_ip_code
from siyu.testing import IMMEDIATE_TASKS, PASSWORD, World, build_world

pytestmark = pytest.mark.e2e

PLACES = {"S1": ("30.259000", "120.130000"), "S2": ("30.274100", "120.155100"), "S3": ("22.543000", "114.057000")}


@pytest.fixture
def e2e_world(transactional_db: None, give_codes: object) -> tuple[World, StoreCodeSettings]:
    world = build_world()
    for key, (lat, lng) in PLACES.items():
        Store.objects.filter(id=world.stores[key].id).update(latitude=Decimal(lat), longitude=Decimal(lng))
    give_codes(world.stores["S1"])  # type: ignore[operator]
    row = store_code_settings_ensure(tenant_id=world.tenant_a.id)
    row.fallback_live_code_id = brand_ip_code(world.tenant_a)
    row.save()
    connections.close_all()  # the live server's thread and Playwright's greenlet open their own
    return world, row


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A phone-sized Chinese browser that grants geolocation and stands next to S2 (武林广场)."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        locale="zh-CN",
        geolocation={"latitude": 30.27452, "longitude": 120.15561},
        permissions=["geolocation"],
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_coordinates_in_the_link_show_the_expected_store(
    live_server: LiveServer, e2e_world: tuple[World, StoreCodeSettings], phone: Page
) -> None:
    world, row = e2e_world
    phone.goto(f"{live_server.url}/s/{row.public_token}/?lat=30.2600&lng=120.1352")
    card = phone.locator("#store")
    expect(card).to_have_attribute("data-store-id", str(world.stores["S1"].id))
    expect(card.locator("h2")).to_contain_text("门店S1")
    expect(phone.locator("#distance")).to_have_text("距离 512 米")
    guide_qr = phone.locator("#guide-code img")
    expect(guide_qr).to_be_visible()
    # The guide code's QR is a real PNG served by the channels context.
    assert phone.evaluate("document.querySelector('#guide-code img').naturalWidth") > 50
    expect(phone.locator("#group-code")).to_be_visible()
    phone.screenshot(path=str(SHOTS / "storecode-landing-store.png"), full_page=True)


def test_granted_geolocation_leads_to_the_nearest_store(
    live_server: LiveServer, e2e_world: tuple[World, StoreCodeSettings], phone: Page
) -> None:
    world, row = e2e_world
    phone.goto(f"{live_server.url}/s/{row.public_token}/")
    expect(phone.locator("#store")).to_have_attribute("data-store-id", str(world.stores["S2"].id))
    assert "src=geo" in phone.url
    assert "lat=30.2745&lng=120.1556" in phone.url  # rounded to 4 decimals before leaving the phone
    expect(phone.locator("#store h2")).to_contain_text("门店S2")
    expect(phone.locator("#brand-code")).to_be_visible()  # S2 has no codes of its own
    phone.screenshot(path=str(SHOTS / "storecode-landing-geo.png"), full_page=True)


def test_no_store_near_shows_the_brand_code_and_the_picker(
    live_server: LiveServer, e2e_world: tuple[World, StoreCodeSettings], phone: Page
) -> None:
    _world, row = e2e_world
    phone.goto(f"{live_server.url}/s/{row.public_token}/?lat=39.9042&lng=116.4074")
    expect(phone.locator("#fallback h2")).to_have_text("5 公里内暂无营业中的门店")
    expect(phone.locator("#brand-code img")).to_be_visible()
    assert phone.evaluate("document.querySelector('#brand-code img').naturalWidth") > 50
    phone.get_by_role("link", name="杭州").click()
    expect(phone.locator("#picker ol a")).to_have_count(3)  # every store of the fixed world is in 杭州
    phone.locator("#picker ol a", has_text="门店S2").click()
    expect(phone.locator("#store h2")).to_contain_text("门店S2")
    phone.screenshot(path=str(SHOTS / "storecode-landing-fallback.png"), full_page=True)


def test_invalid_coordinates_say_so_on_the_page(
    live_server: LiveServer, e2e_world: tuple[World, StoreCodeSettings], phone: Page
) -> None:
    _world, row = e2e_world
    response = phone.goto(f"{live_server.url}/s/{row.public_token}/?lat=91&lng=120")
    assert response is not None
    assert response.status == 400
    expect(phone.locator("#error")).to_contain_text("纬度须为 -90 到 90 之间的数字。")


def test_console_page_charts_stores_and_imports_a_csv_with_line_errors(
    live_server: LiveServer,
    e2e_world: tuple[World, StoreCodeSettings],
    page: Page,
    tmp_path: object,
    settings: SettingsWrapper,
) -> None:
    # Jobs run in the request that queues them, after commit: the page still polls the job for its report.
    settings.TASKS = IMMEDIATE_TASKS
    world, _row = e2e_world
    page.goto(f"{live_server.url}/acquisition/store-codes/")
    page.get_by_label("用户名").fill("hq")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator(".topbar-title")).to_have_text("门店活码")
    expect(page.locator("#store-map")).to_have_attribute("data-drawn", "3")
    expect(page.locator("#store-map canvas")).to_have_count(1)
    expect(page.locator("tr[data-store]")).to_have_count(3)
    page.screenshot(path=str(SHOTS / "storecode-console.png"), full_page=True)

    page.get_by_role("link", name="导入 CSV").click()
    csv_file = tmp_path / "stores.csv"  # type: ignore[operator]
    csv_file.write_text(
        "code,latitude,longitude,hours\n"
        "S1,31.2,121.4,mon-fri 10:00-22:00; sat-sun 09:00-23:00\n"
        "S2,95,121,\n"
        "S3,,,周五至周六 18:00-02:00；周日 休息\n"
    )
    page.locator("#import-file").set_input_files(str(csv_file))
    page.get_by_role("button", name="导入", exact=True).click()
    expect(page.locator("#import-result")).to_have_attribute("data-import-status", "done")
    expect(page.locator("#import-done")).to_have_text("3 行：导入 2 行（更新 2 家门店，0 家未变），跳过 1 行。")
    expect(page.locator("#import-errors tr[data-line]")).to_have_count(1)
    expect(page.locator("#import-errors tr[data-line='3']")).to_contain_text("latitude")
    page.screenshot(path=str(SHOTS / "storecode-import-report.png"), full_page=True)
    # The same file again: nothing changes.
    page.locator("#import-file").set_input_files(str(csv_file))
    page.get_by_role("button", name="导入", exact=True).click()
    expect(page.locator("#import-done")).to_have_text("3 行：导入 2 行（更新 0 家门店，2 家未变），跳过 1 行。")

    # The store's own page shows the week as imported.
    page.goto(f"{live_server.url}/acquisition/store-codes/{world.stores['S3'].id}/")
    expect(page.locator("#week-hours tr")).to_have_count(7)
    expect(page.locator("#week-hours tr").nth(4)).to_have_text("周五18:00–次日 02:00")
    expect(page.locator("#week-hours tr").nth(6)).to_have_text("周日休息")
