"""The public landing page /s/<token>/: the store a position leads to, its codes, the fallback, bad input."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.utils import timezone

from siyu.analytics.models import Event
from siyu.channels.models import LiveCode
from siyu.channels.selectors import live_code_qr_url
from siyu.core.models import Region, Tenant
from siyu.storecodes.models import StoreCodeSettings
from siyu.storecodes.services import store_code_settings_ensure
from siyu.storecodes.tests.conftest import AddStore, GiveCodes, brand_ip_code


@pytest.fixture
def page(brand: tuple[Tenant, Region], add_store: AddStore, give_codes: GiveCodes) -> StoreCodeSettings:
    """Two stores in Hangzhou (LAKE has both codes, WULIN none), one in Shanghai; the brand IP as fallback."""
    tenant, _ = brand
    lake = add_store(30.2590, 120.1300, code="LAKE", hours=("00:00", "00:00"))
    add_store(30.2741, 120.1551, code="WULIN", hours=("00:00", "00:00"))
    add_store(31.2304, 121.4737, code="BUND", city="上海", hours=("00:00", "00:00"))
    give_codes(lake)
    row = store_code_settings_ensure(tenant_id=tenant.id)
    row.fallback_live_code_id = brand_ip_code(tenant)
    row.save()
    return row


def guide_qr(store_code: str) -> str:
    code = LiveCode.objects.get(store__code=store_code)
    return live_code_qr_url(code)


def brand_qr(row: StoreCodeSettings) -> str:
    return live_code_qr_url(LiveCode.objects.get(id=row.fallback_live_code_id))


def url(row: StoreCodeSettings, query: str = "") -> str:
    return f"/s/{row.public_token}/{query}"


def test_coordinates_show_the_nearest_store_with_both_codes(client: Client, page: StoreCodeSettings) -> None:
    response = client.get(url(page, "?lat=30.2600&lng=120.1352"))
    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="zh-hans">' in html
    assert re.search(r'id="store" data-store-id="\d+"', html)
    assert "门店LAKE" in html
    assert "距离 512 米" in html
    assert f'src="{guide_qr("LAKE")}"' in html
    assert "https://wework.example/join/" in html  # the group code's QR
    assert brand_qr(page) not in html  # the store has codes: no fallback
    assert "24 小时营业" in html


def test_a_store_without_codes_shows_its_info_and_the_brand_code(client: Client, page: StoreCodeSettings) -> None:
    html = client.get(url(page, "?lat=30.2745&lng=120.1555")).content.decode()
    assert "门店WULIN" in html
    assert "此门店暂未配置二维码" in html
    assert brand_qr(page) in html


def test_no_store_near_falls_back_to_the_brand_code(client: Client, page: StoreCodeSettings) -> None:
    response = client.get(url(page, "?lat=39.9042&lng=116.4074"))  # Beijing: no store
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="fallback"' in html
    assert "5 公里内暂无营业中的门店" in html
    assert brand_qr(page) in html
    assert 'id="store"' not in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?lat=abc&lng=120.1", "纬度须为 -90 到 90 之间的数字。"),
        ("?lat=91&lng=120.1", "纬度须为 -90 到 90 之间的数字。"),
        ("?lat=NaN&lng=120.1", "纬度须为 -90 到 90 之间的数字。"),
        ("?lat=30&lng=180.5", "经度须为 -180 到 180 之间的数字。"),
        ("?lat=30&lng=-inf", "经度须为 -180 到 180 之间的数字。"),
        ("?lat=30", "经度须为 -180 到 180 之间的数字。"),
        ("?lat=&lng=", "纬度须为 -90 到 90 之间的数字。"),
        ("?lat=1e999&lng=1", "纬度须为 -90 到 90 之间的数字。"),
    ],
)
def test_invalid_coordinates_say_so_with_a_400(
    client: Client, page: StoreCodeSettings, query: str, message: str
) -> None:
    response = client.get(url(page, query))
    html = response.content.decode()
    assert response.status_code == 400
    assert message in html
    assert brand_qr(page) in html  # still a way to add the brand
    assert Event.objects.filter(type="storecode.visited").count() == 0


def test_without_a_position_the_page_asks_the_browser(client: Client, page: StoreCodeSettings) -> None:
    html = client.get(url(page)).content.decode()
    assert 'data-state="locate"' in html
    assert "navigator.geolocation.getCurrentPosition" in html
    assert "正在查找最近的门店" in html


def test_the_picker_lists_cities_then_stores_and_shows_the_chosen_one(client: Client, page: StoreCodeSettings) -> None:
    html = client.get(url(page, "?city=杭州")).content.decode()
    assert ">杭州<" in html
    assert ">上海<" in html
    assert re.findall(r'data-store="(\w+)"', html) == ["LAKE", "WULIN"]
    store_id = re.search(r'href="\?store=(\d+)" data-store="LAKE"', html).group(1)  # type: ignore[union-attr]
    chosen = client.get(url(page, f"?store={store_id}")).content.decode()
    assert "门店LAKE" in chosen
    assert guide_qr("LAKE") in chosen
    event = Event.objects.get(type="storecode.visited")
    assert (event.properties["source"], event.properties["store_id"], event.properties["fallback"]) == (
        "picker",
        int(store_id),
        False,
    )


def test_each_visit_records_the_store_and_distance_with_a_rounded_area(client: Client, page: StoreCodeSettings) -> None:
    client.get(url(page, "?lat=30.2600&lng=120.1352&src=geo"))
    client.get(url(page, "?lat=39.9042&lng=116.4074"))
    client.get(url(page, "?lat=30.2600&lng=120.1352&preview=1"))  # console preview: not a visit
    found, fallback = Event.objects.filter(type="storecode.visited").order_by("id")
    assert found.tenant_id == page.tenant_id
    assert found.properties == {
        "source": "geo",
        "fallback": False,
        "store_id": found.properties["store_id"],
        "distance_m": 512,
        "radius_m": 5000,
        "area": [30.26, 120.14],
    }
    assert fallback.properties["fallback"] is True
    assert fallback.properties["store_id"] is None
    assert fallback.properties["area"] == [39.9, 116.41]
    assert "39.9042" not in str(fallback.properties)


def test_unknown_tokens_and_other_brands_stores_are_not_found(
    client: Client, page: StoreCodeSettings, brand: tuple[Tenant, Region], add_store: AddStore
) -> None:
    from siyu.core import services as core_services

    assert client.get("/s/not-a-token/").status_code == 404
    other = core_services.tenant_create(name="别家", slug="other")
    theirs = add_store(
        30.26,
        120.135,
        code="THEIRS",
        tenant_region=(other, core_services.region_create(tenant=other, name="全国", code="R")),
    )
    response = client.get(url(page, f"?store={theirs.id}"))
    assert response.status_code == 404
    assert "门店THEIRS" not in response.content.decode()
    # Their store next door is not ours either: LAKE is still the answer.
    assert "门店LAKE" in client.get(url(page, "?lat=30.2600&lng=120.1352")).content.decode()


def test_a_store_closed_right_now_is_labelled(client: Client, page: StoreCodeSettings, add_store: AddStore) -> None:
    now = timezone.localtime(timezone.now())
    opens = (now + dt.timedelta(hours=2)).time().replace(second=0, microsecond=0)
    closes = (now + dt.timedelta(hours=4)).time().replace(second=0, microsecond=0)
    store = add_store(30.0, 120.0, code="LATER", hours=(opens.isoformat(), closes.isoformat()))
    html = client.get(url(page, f"?store={store.id}")).content.decode()
    assert "门店LATER" in html
    assert "当前休息中" in html


def test_a_temporarily_closed_store_says_so_and_is_not_located(
    client: Client, page: StoreCodeSettings, add_store: AddStore
) -> None:
    shut = add_store(30.2600, 120.1352, code="SHUT", hours=("00:00", "00:00"), closed=True)  # right at the point
    html = client.get(url(page, "?lat=30.2600&lng=120.1352")).content.decode()
    assert "门店LAKE" in html  # 512 m away, but open
    html = client.get(url(page, f"?store={shut.id}")).content.decode()
    assert 'id="temporarily-closed"' in html
    assert re.search(r'<span id="hours">暂停营业</span>', html)
    assert "本周营业时间" not in html


def test_the_card_shows_todays_hours_and_the_week_in_the_brands_time_zone(
    client: Client, page: StoreCodeSettings, add_store: AddStore
) -> None:
    store = add_store(30.0, 120.0, code="WEEK", hours="mon-fri 10:00-22:00; sat 09:00-14:00, 17:00-02:00; sun closed")
    html = client.get(url(page, f"?store={store.id}")).content.decode()
    today = timezone.localtime(timezone.now(), dt.timezone(dt.timedelta(hours=8))).weekday()  # Asia/Shanghai
    expected = ["10:00–22:00"] * 5 + ["09:00–14:00, 17:00–次日 02:00", "休息"]
    shown = re.search(r'<span id="hours">([^<]*)</span>', html).group(1)  # type: ignore[union-attr]
    assert shown == ("今日休息" if today == 6 else expected[today])
    week = re.findall(r"<tr(?: class=\"today\")?><th>([^<]*)</th><td>([^<]*)</td></tr>", html)
    assert week == list(zip(["周一", "周二", "周三", "周四", "周五", "周六", "周日"], expected, strict=True))
    assert re.findall(r'<tr class="today"><th>([^<]*)</th>', html) == [week[today][0]]


def test_every_message_of_the_landing_page_has_a_chinese_translation() -> None:
    from pathlib import Path

    import polib
    from django.conf import settings

    from siyu.console.tests.catalogue import _python_msgids, _template_msgids

    app = Path(__file__).resolve().parent.parent
    msgids = set(_template_msgids(app / "templates" / "storecodes" / "landing.html"))
    msgids |= set(_python_msgids(app / "views.py")) | set(_python_msgids(app / "display.py"))
    catalogue = polib.pofile(str(Path(settings.LOCALE_PATHS[0]) / "zh_Hans" / "LC_MESSAGES" / "django.po"))
    translated = {e.msgid for e in catalogue.translated_entries()}
    assert len(msgids) > 25
    assert sorted(msgids - translated) == []
