"""The console's store-code pages: scoped lists and chart, editing, CSV import, settings, landing preview."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from siyu.console.tests.conftest import attr_values, login
from siyu.core.models import AuditLog, Store
from siyu.storecodes.models import StoreCodeSettings
from siyu.storecodes.tests.conftest import brand_ip_code
from siyu.testing import World

LIST = "/acquisition/store-codes/"


@pytest.fixture
def located(world: World) -> World:
    Store.objects.filter(id=world.stores["S1"].id).update(
        latitude=Decimal("30.259"), longitude=Decimal("120.13"), opens_at="10:00", closes_at="22:00"
    )
    Store.objects.filter(id=world.stores["S3"].id).update(
        latitude=Decimal("22.543"), longitude=Decimal("114.057"), opens_at="18:00", closes_at="02:00"
    )
    Store.objects.filter(id=world.stores["S2"].id).update(latitude=None, longitude=None)
    return world


@pytest.mark.parametrize(
    ("persona", "stores", "points"),
    [
        ("hq", ["S1", "S2", "S3"], ["S1", "S3"]),
        ("region1", ["S1", "S2"], ["S1"]),
        ("store1", ["S1"], ["S1"]),
        ("franchisee1", ["S1", "S3"], ["S1", "S3"]),
        ("outsider", [], []),
    ],
)
def test_list_and_chart_show_exactly_the_scope(
    client: Client, located: World, persona: str, stores: list[str], points: list[str]
) -> None:
    login(client, persona)
    response = client.get(LIST)
    html = response.content.decode()
    assert response.status_code == 200
    shown = attr_values(html, "data-store")
    # Brand B's store has the same code "S1"; the outsider must see it without coordinates, not brand A's.
    assert shown == (["S1"] if persona == "outsider" else stores)
    chart = (
        json.loads(re.search(r'<script id="store-points" type="application/json">(.*?)</script>', html, re.S).group(1))
        if points
        else []
    )  # type: ignore[union-attr]
    assert [p[2] for p in chart] == points
    if persona == "outsider":
        assert "门店S1" not in html
        assert "门店B1" in html


def test_list_shows_hours_codes_and_a_preview_link(client: Client, located: World) -> None:
    login(client, "hq")
    html = client.get(LIST).content.decode()
    row_s1 = re.search(r'<tr data-store="S1">(.*?)</tr>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "30.259000, 120.130000" in row_s1
    assert "10:00–22:00" in row_s1
    assert "未配置" not in row_s1
    token = StoreCodeSettings.objects.get(tenant=located.tenant_a).public_token
    assert f'href="/s/{token}/?lat=30.259000&amp;lng=120.130000&amp;preview=1"' in row_s1
    row_s2 = re.search(r'<tr data-store="S2">(.*?)</tr>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "未定位" in row_s2
    row_s3 = re.search(r'<tr data-store="S3">(.*?)</tr>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "18:00–+1 02:00" in row_s3 or "18:00–次日" in row_s3


def test_filters_combine(client: Client, located: World) -> None:
    login(client, "hq")
    assert attr_values(client.get(LIST + "?located=no").content.decode(), "data-store") == ["S2"]
    assert attr_values(client.get(LIST + "?located=yes&q=S3").content.decode(), "data-store") == ["S3"]
    region = located.regions["R1"].id
    assert attr_values(client.get(LIST + f"?region={region}").content.decode(), "data-store") == ["S1", "S2"]
    # A stale filter value is ignored, not an error page.
    assert client.get(LIST + "?region=abc&located=maybe").status_code == 200


def test_guides_have_no_store_code_pages(client: Client, located: World) -> None:
    login(client, "guide1")
    assert client.get(LIST).status_code == 403
    assert client.get(reverse("console:store_code_edit", args=[located.stores["S1"].id])).status_code == 403


def test_a_store_manager_edits_their_store(client: Client, located: World) -> None:
    login(client, "store1")
    url = reverse("console:store_code_edit", args=[located.stores["S1"].id])
    response = client.post(
        url, {"latitude": "30.2601", "longitude": "120.1402", "opens_at": "09:00", "closes_at": "21:00"}
    )
    assert response.status_code == 302
    s1 = Store.objects.get(id=located.stores["S1"].id)
    assert (s1.latitude, s1.longitude, str(s1.opens_at), str(s1.closes_at)) == (
        Decimal("30.2601"),
        Decimal("120.1402"),
        "09:00:00",
        "21:00:00",
    )
    assert AuditLog.objects.get(action="store.geo_update").actor_id == located.users["store1"].id
    # Another store of the brand is not found; a franchisee may look but not edit.
    assert client.get(reverse("console:store_code_edit", args=[located.stores["S2"].id])).status_code == 404
    login(client, "franchisee1")
    assert client.post(url, {"latitude": "1", "longitude": "1"}).status_code == 403


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"latitude": "30.1", "longitude": ""}, "longitude", "give both latitude and longitude, or neither"),
        ({"latitude": "95", "longitude": "120"}, "latitude", "latitude must be between -90 and 90 degrees"),
        ({"latitude": "abc", "longitude": "120"}, "latitude", "输入一个数字。"),
        ({"opens_at": "10:00"}, "closes_at", "give both opening and closing times, or neither"),
    ],
)
def test_bad_input_is_a_form_error_and_saves_nothing(
    client: Client, located: World, data: dict[str, str], field: str, message: str
) -> None:
    login(client, "hq")
    store = located.stores["S2"]
    response = client.post(reverse("console:store_code_edit", args=[store.id]), data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert field in response.context["form"].errors
    assert Store.objects.get(id=store.id).latitude is None


def _csv(text: str, encoding: str = "utf-8") -> SimpleUploadedFile:
    return SimpleUploadedFile("stores.csv", text.encode(encoding), content_type="text/csv")


def test_import_lists_errors_by_line_and_saves_nothing(client: Client, located: World) -> None:
    login(client, "hq")
    text = (
        "code,latitude,longitude,opens_at,closes_at\n"
        "S1,31.2304,121.4737,10:00,22:00\n"
        "S2,abc,121.47,,\n"
        "\n"
        "S9,31,121,,\n"
        "S3,22.5,114.0,10:00,\n"
    )
    response = client.post(reverse("console:store_code_import"), {"file": _csv(text)})
    html = response.content.decode()
    assert response.status_code == 422
    assert attr_values(html, "data-line") == ["3", "5", "6"]
    assert "latitude must be a number of degrees" in html
    assert "unknown store code &#x27;S9&#x27;" in html
    assert "3 个错误，未导入任何数据。" in html
    assert Store.objects.get(id=located.stores["S1"].id).latitude == Decimal("30.259")


def test_import_saves_every_row_of_a_good_file_even_in_gbk(client: Client, located: World) -> None:
    login(client, "region1")
    text = (
        "门店,code,latitude,longitude,opens_at,closes_at\n"
        "西湖,S1,31.2304,121.4737,10:00,22:00\n"
        "武林,S2,31.1,121.3,22:00,06:00\n"
    )
    response = client.post(reverse("console:store_code_import"), {"file": _csv(text, "gbk")})
    assert response.status_code == 200
    assert "已导入 2 行：更新 2 家门店，1 家未变。" not in response.content.decode()  # both changed
    assert "已导入 2 行：更新 2 家门店，0 家未变。" in response.content.decode()
    s2 = Store.objects.get(id=located.stores["S2"].id)
    assert (s2.latitude, str(s2.opens_at), str(s2.closes_at)) == (Decimal("31.1"), "22:00:00", "06:00:00")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("code,lat,lng\nS1,1,2\n", "缺少：latitude, longitude, opens_at, closes_at"),
        ("code,latitude,longitude,opens_at,closes_at\n", "文件表头下没有数据行。"),
    ],
)
def test_a_malformed_file_is_refused_as_a_whole(client: Client, located: World, text: str, message: str) -> None:
    login(client, "hq")
    response = client.post(reverse("console:store_code_import"), {"file": _csv(text)})
    assert response.status_code == 422
    assert message in response.content.decode()


def test_settings_are_hq_only_and_saved_with_a_fallback_code(client: Client, located: World) -> None:
    code_id = brand_ip_code(located.tenant_a)
    login(client, "region1")
    assert client.get(reverse("console:store_code_settings")).status_code == 403
    login(client, "hq")
    url = reverse("console:store_code_settings")
    page = client.get(url).content.decode()
    assert "好物体验官" in page
    bad = client.post(url, {"radius_m": "3000", "time_zone": "Mars/Olympus", "fallback_live_code_id": ""})
    assert bad.status_code == 422
    assert "unknown time zone" in bad.content.decode()
    ok = client.post(url, {"radius_m": "3000", "time_zone": "", "fallback_live_code_id": str(code_id)})
    assert ok.status_code == 302
    row = StoreCodeSettings.objects.get(tenant=located.tenant_a)
    assert (row.radius_m, row.fallback_live_code_id) == (3000, code_id)


def test_a_new_link_retires_the_old_one(client: Client, located: World) -> None:
    login(client, "hq")
    page = client.get(reverse("console:store_code_settings")).content.decode()
    old = re.search(r'id="landing-url">http://testserver/s/([\w-]+)/<', page).group(1)  # type: ignore[union-attr]
    assert client.get(f"/s/{old}/").status_code == 200
    client.post(reverse("console:store_code_token_rotate"))
    assert client.get(f"/s/{old}/").status_code == 404
    new = StoreCodeSettings.objects.get(tenant=located.tenant_a).public_token
    assert new != old
    assert client.get(f"/s/{new}/").status_code == 200
    assert AuditLog.objects.filter(action="storecode.token_rotate").count() == 1
