"""The console's store-code pages: scoped lists and chart, editing, CSV import, settings, landing preview."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.console.tests.conftest import attr_values, login
from siyu.core.hours import daily_hours, format_hours, parse_hours
from siyu.core.models import AuditLog, Store
from siyu.core.services import store_create
from siyu.storecodes.models import StoreCodeSettings, StoreImport
from siyu.storecodes.services import store_import_execute
from siyu.storecodes.tests.conftest import GiveCodes, brand_ip_code
from siyu.testing import IMMEDIATE_TASKS, World

LIST = "/acquisition/store-codes/"


@pytest.fixture
def located(world: World) -> World:
    Store.objects.filter(id=world.stores["S1"].id).update(
        latitude=Decimal("30.259"), longitude=Decimal("120.13"), hours=daily_hours("10:00", "22:00")
    )
    Store.objects.filter(id=world.stores["S3"].id).update(
        latitude=Decimal("22.543"),
        longitude=Decimal("114.057"),
        hours=parse_hours("mon-thu 18:00-02:00; fri-sat 18:00-04:00; sun closed"),
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
    assert "每天 10:00–22:00" in row_s1
    assert "暂停营业" not in row_s1
    token = StoreCodeSettings.objects.get(tenant=located.tenant_a).public_token
    assert f'href="/s/{token}/?lat=30.259000&amp;lng=120.130000&amp;preview=1"' in row_s1
    row_s2 = re.search(r'<tr data-store="S2">(.*?)</tr>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "未定位" in row_s2
    assert "未设置营业时间" in row_s2
    row_s3 = re.search(r'<tr data-store="S3">(.*?)</tr>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "周一至周四 18:00–次日 02:00；周五至周六 18:00–次日 04:00；周日 休息" in row_s3
    Store.objects.filter(id=located.stores["S3"].id).update(temporarily_closed=True)
    html = client.get(LIST).content.decode()
    row_s3 = re.search(r'<tr data-store="S3">(.*?)</tr>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "暂停营业" in row_s3


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
    # The form shows the current hours as the text people type.
    assert 'value="daily 10:00-22:00"' in client.get(url).content.decode()
    response = client.post(
        url,
        {
            "latitude": "30.2601",
            "longitude": "120.1402",
            "hours": "周一至周五 09:00-21:00；周六 10:00-14:00, 17:00-23:30",
            "temporarily_closed": "on",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("console:store_code_detail", args=[located.stores["S1"].id])
    s1 = Store.objects.get(id=located.stores["S1"].id)
    assert (s1.latitude, s1.longitude, s1.temporarily_closed) == (Decimal("30.2601"), Decimal("120.1402"), True)
    assert format_hours(s1.hours) == "mon-fri 09:00-21:00; sat 10:00-14:00, 17:00-23:30; sun closed"
    audit = AuditLog.objects.get(action="store.geo_update")
    assert audit.actor_id == located.users["store1"].id
    assert audit.detail["temporarily_closed"] == [False, True]
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
        ({"hours": "mon-fri 10:00-22:00; fri 09:00-12:00"}, "hours", "hours: fri is given twice"),
        ({"hours": "mon-fri 25:00-22:00"}, "hours", "&#x27;25:00&#x27; is not a time (00:00 to 23:59)"),
        ({"hours": "weekdays 10:00-22:00"}, "hours", "unknown day &#x27;weekdays&#x27;"),
        ({"hours": "daily 18:00-02:00, 01:00-03:00"}, "hours", "hours: mon 18:00-02:00 overlaps tue 01:00-03:00"),
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
    assert (Store.objects.get(id=store.id).latitude, Store.objects.get(id=store.id).hours) == (None, {})


def _csv(text: str, encoding: str = "utf-8") -> SimpleUploadedFile:
    return SimpleUploadedFile("stores.csv", text.encode(encoding), content_type="text/csv")


@pytest.fixture
def jobs(settings: SettingsWrapper) -> None:
    settings.TASKS = IMMEDIATE_TASKS


def _import(client: Client, text: str, capture: Any, encoding: str = "utf-8") -> StoreImport:
    """Upload through htmx as the page does; the job runs after the request's commit (immediate backend)."""
    with capture(execute=True):
        response = client.post(
            reverse("console:store_code_import"), {"file": _csv(text, encoding)}, HTTP_HX_REQUEST="true"
        )
        assert response.status_code == 200
        # Answered before the job ran: the partial polls the job's status.
        assert 'hx-trigger="every 1s"' in response.content.decode()
        assert 'data-import-status="pending"' in response.content.decode()
    return StoreImport.objects.order_by("-id")[0]


def _report(client: Client, job: StoreImport) -> str:
    return client.get(reverse("console:store_code_import_status", args=[job.id])).content.decode()


HEADER = "code,latitude,longitude,hours,temporarily_closed\n"


def test_import_saves_good_rows_and_reports_skipped_ones_by_line(
    client: Client, located: World, jobs: None, django_capture_on_commit_callbacks: Any
) -> None:
    login(client, "hq")
    for code in ("S4", "S5"):
        store_create(tenant=located.tenant_a, region=located.regions["R2"], name=f"门店{code}", code=code)
    text = (
        HEADER
        + "S1,31.2304,121.4737,mon-fri 10:00-22:00; sat-sun 09:00-23:00,\n"
        + "S4,abc,121.47,,\n"
        + "\n"
        + "S9,31,121,,\n"
        + "S5,22.5,114.0,fri 18:00-02:00; sat 01:00-09:00,no\n"
        + "S1,30,120,,\n"
        + "S2,,,周一 休息；周二至周日 10:00-22:00,是\n"
    )
    job = _import(client, text, django_capture_on_commit_callbacks)
    html = _report(client, job)
    assert 'data-import-status="done"' in html
    assert "every 1s" not in html  # polling stops
    assert attr_values(html, "data-line") == ["3", "5", "6", "7"]
    assert "latitude must be a number of degrees" in html
    assert "unknown store code &#x27;S9&#x27;" in html
    assert "hours: fri 18:00-02:00 overlaps sat 01:00-09:00" in html
    assert "store S1 already on line 2" in html
    assert "6 行：导入 2 行（更新 2 家门店，0 家未变），跳过 4 行。" in html
    s1 = Store.objects.get(id=located.stores["S1"].id)
    assert (s1.latitude, format_hours(s1.hours)) == (Decimal("31.2304"), "mon-fri 10:00-22:00; sat-sun 09:00-23:00")
    s2 = Store.objects.get(id=located.stores["S2"].id)
    assert (s2.latitude, s2.temporarily_closed, format_hours(s2.hours)) == (
        None,
        True,
        "mon closed; tue-sun 10:00-22:00",
    )
    assert Store.objects.get(code="S5", tenant=located.tenant_a).hours == {}  # skipped: unchanged
    assert (job.total, job.rows) == (6, [])  # the rows are not kept once applied
    audit = AuditLog.objects.get(action="store.geo_import")
    assert (audit.actor_id, audit.target_id, audit.detail["updated"], audit.detail["codes"]) == (
        located.users["hq"].id,
        str(job.id),
        2,
        ["S1", "S2"],
    )


def test_importing_the_same_file_again_changes_nothing(
    client: Client, located: World, jobs: None, django_capture_on_commit_callbacks: Any
) -> None:
    login(client, "region1")
    text = (
        "门店,code,latitude,longitude,hours\n"
        "西湖,S1,31.2304,121.4737,daily 10:00-22:00\n"
        "武林,S2,31.1,121.3,fri-sat 22:00-06:00; sun-thu 22:00-02:00\n"
    )
    first = _import(client, text, django_capture_on_commit_callbacks, encoding="gbk")
    assert "2 行：导入 2 行（更新 2 家门店，0 家未变），跳过 0 行。" in _report(client, first)
    saved = list(Store.objects.order_by("id").values_list("latitude", "longitude", "hours", "temporarily_closed"))
    audits = AuditLog.objects.filter(action="store.geo_import").count()
    second = _import(client, text, django_capture_on_commit_callbacks, encoding="gbk")
    assert "2 行：导入 2 行（更新 0 家门店，2 家未变），跳过 0 行。" in _report(client, second)
    assert (
        list(Store.objects.order_by("id").values_list("latitude", "longitude", "hours", "temporarily_closed")) == saved
    )
    assert AuditLog.objects.filter(action="store.geo_import").count() == audits
    assert Store.objects.get(id=located.stores["S1"].id).hours == daily_hours("10:00", "22:00")


def test_the_import_page_shows_the_latest_import_and_others_do_not_see_it(
    client: Client, located: World, jobs: None, django_capture_on_commit_callbacks: Any
) -> None:
    login(client, "store1")
    job = _import(client, HEADER + "S1,,,daily 24h,\nS2,,,,\n", django_capture_on_commit_callbacks)
    page = client.get(reverse("console:store_code_import")).content.decode()
    assert 'data-import-status="done"' in page
    assert "unknown store code &#x27;S2&#x27;" in page  # S2 is outside a store manager's scope
    login(client, "region1")
    assert client.get(reverse("console:store_code_import_status", args=[job.id])).status_code == 404
    assert 'id="import-result"' in (page := client.get(reverse("console:store_code_import")).content.decode())
    assert "data-import-status" not in page
    login(client, "outsider")
    assert client.get(reverse("console:store_code_import_status", args=[job.id])).status_code == 404
    login(client, "franchisee1")
    assert client.get(reverse("console:store_code_import_status", args=[job.id])).status_code == 403


def test_a_queued_import_shows_its_progress(client: Client, located: World) -> None:
    # The default (database) backend: no worker runs in this test, so the job stays queued, then is run by hand.
    login(client, "hq")
    client.post(reverse("console:store_code_import"), {"file": _csv(HEADER + "S1,,,daily 24h,\n")})
    job = StoreImport.objects.get()
    html = _report(client, job)
    assert 'data-import-status="pending"' in html
    assert "已排队，等待后台任务开始导入…" in html
    assert 'hx-trigger="every 1s"' in html
    StoreImport.objects.filter(id=job.id).update(status=StoreImport.Status.RUNNING, processed=0)
    assert re.search(r'<progress max="1" value="0"', _report(client, job))
    StoreImport.objects.filter(id=job.id).update(status=StoreImport.Status.PENDING)
    store_import_execute(import_id=job.id)
    assert 'data-import-status="done"' in _report(client, job)
    assert store_import_execute(import_id=job.id) is None  # a second delivery does nothing


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "code,lat,lng\nS1,1,2\n",
            "第一行须包含 code 列，以及 latitude, longitude, hours, temporarily_closed 中的至少一列。",
        ),
        ("code,latitude,hours\nS1,1,daily 24h\n", "latitude 与 longitude 两列须同时出现：文件只有其中一列。"),
        (HEADER, "文件表头下没有数据行。"),
    ],
)
def test_a_malformed_file_is_refused_as_a_whole(client: Client, located: World, text: str, message: str) -> None:
    login(client, "hq")
    response = client.post(reverse("console:store_code_import"), {"file": _csv(text)})
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not StoreImport.objects.exists()


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


# --- query counts ---------------------------------------------------------------------------------------------


def _list_queries(client: Client) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(LIST).status_code == 200
    return [q["sql"] for q in queries.captured_queries]


@pytest.mark.parametrize("persona", ["hq", "region1"])
def test_the_list_page_reads_the_same_queries_for_one_store_or_many(
    client: Client, located: World, give_codes: GiveCodes, persona: str
) -> None:
    login(client, persona)
    give_codes(located.stores["S1"])
    _list_queries(client)  # the first visit creates the brand's store-code settings
    few = _list_queries(client)
    for i in range(12):
        store = store_create(tenant=located.tenant_a, region=located.regions["R1"], name=f"门店X{i}", code=f"X{i:02d}")
        give_codes(store)
    many = _list_queries(client)
    assert len(many) == len(few)
    # One read each of the guide codes and the group codes of the page, whatever its size.
    assert sum("channels_livecode" in q for q in many) == 1
    assert sum('FROM "groups_groupcode"' in q for q in many) == 1
    html = client.get(LIST).content.decode()
    row = re.search(r'<tr data-store="X11">(.*?)</tr>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "门店X11导购码" in row
    assert "门店X11福利群" in row


def test_the_list_page_query_count_is_pinned(client: Client, located: World, django_assert_num_queries: Any) -> None:
    login(client, "hq")
    client.get(LIST)  # the first visit creates the brand's store-code settings
    # session, user, membership (the console's gate); regions; cities; count; page; guide codes; group codes;
    # the landing token; chart points; the brand (the layout's header)
    with django_assert_num_queries(12):
        assert client.get(LIST).status_code == 200


# --- a store's page: its codes and who answers them, cut to the viewer's scope --------------------------------


@pytest.fixture
def crowded_codes(located: World) -> World:
    """S1's guide code lists G1 (S1), G2 (S2) and the brand IP; its group code fills groups owned by the same
    three. Brand B's store B1 has a code of its own whose guide is GB."""
    from django.utils import timezone

    from siyu.channels.models import LiveCode, LiveCodeGuide
    from siyu.groups.models import CustomerGroup, GroupCode, GroupCodeSlot

    now = timezone.now()
    w = located
    for store, guides in ((w.stores["S1"], ("G1", "G2", "IP")), (w.stores["B1"], ("GB",))):
        live = LiveCode.objects.create(
            tenant_id=store.tenant_id,
            name=f"{store.name}导购码",
            purpose=LiveCode.Purpose.STORE,
            store=store,
            state=f"st{store.id}",
            config_id=f"cfg-{store.id}",
            qr_code=f"https://wework.example/qr/{store.id}",
            qr_token=f"tok{store.id}-0123456789abcdefghij",
        )
        code = GroupCode.objects.create(
            tenant_id=store.tenant_id,
            name=f"{store.name}福利群码",
            store=store,
            state=f"gc{store.id}",
            qr_code=f"https://wework.example/join/{store.id}",
            public_token=f"gp{store.id}",
            created_at=now,
            updated_at=now,
        )
        for position, key in enumerate(guides):
            guide = w.guides[key]
            LiveCodeGuide.objects.create(tenant_id=store.tenant_id, live_code=live, guide=guide, position=position)
            group = CustomerGroup.objects.create(
                tenant_id=store.tenant_id,
                chat_id=f"chat-{key}",
                name=f"{guide.name}的群",
                owner=guide,
                created_at=now,
                updated_at=now,
            )
            GroupCodeSlot.objects.create(
                tenant_id=store.tenant_id, code=code, group=group, position=position, added_at=now
            )
    return w


@pytest.mark.parametrize(
    ("persona", "guides", "groups"),
    [
        ("hq", ["导购1", "导购2", "好物体验官"], ["导购1的群", "导购2的群", "好物体验官的群"]),
        ("region1", ["导购1", "导购2"], ["导购1的群", "导购2的群"]),
        ("store1", ["导购1"], ["导购1的群"]),
        ("franchisee1", ["导购1"], ["导购1的群"]),  # F1 owns S1 and S3: G3 is theirs, G2 is not
    ],
)
def test_a_store_page_names_only_the_guides_and_groups_in_scope(
    client: Client, crowded_codes: World, persona: str, guides: list[str], groups: list[str]
) -> None:
    login(client, persona)
    response = client.get(reverse("console:store_code_detail", args=[crowded_codes.stores["S1"].id]))
    html = response.content.decode()
    assert response.status_code == 200
    section = re.search(r'id="code-guides">(.*?)</ul>', html, re.S).group(1)  # type: ignore[union-attr]
    assert re.findall(r"<li class=\"chip\" data-guide>([^<]*)</li>", section) == guides
    assert re.findall(r"<tr data-group><td>([^<]*)</td>", html) == groups
    assert "门店S1导购码" in html
    assert "门店S1福利群码" in html
    hidden = {"导购1", "导购2", "好物体验官"} - set(guides)
    assert not [name for name in hidden if name in html]
    assert "导购B" not in html  # brand B's guide, on brand B's code


def test_a_store_page_of_another_brand_or_outside_the_scope_is_not_found(client: Client, crowded_codes: World) -> None:
    w = crowded_codes
    login(client, "outsider")
    assert client.get(reverse("console:store_code_detail", args=[w.stores["S1"].id])).status_code == 404
    own = client.get(reverse("console:store_code_detail", args=[w.stores["B1"].id])).content.decode()
    assert re.findall(r"<li class=\"chip\" data-guide>([^<]*)</li>", own) == ["导购B"]
    assert "导购1" not in own
    login(client, "store1")
    assert client.get(reverse("console:store_code_detail", args=[w.stores["S2"].id])).status_code == 404
    login(client, "guide1")
    assert client.get(reverse("console:store_code_detail", args=[w.stores["S1"].id])).status_code == 403


def test_a_store_page_shows_the_week_and_the_closure(client: Client, located: World) -> None:
    Store.objects.filter(id=located.stores["S3"].id).update(temporarily_closed=True)
    login(client, "franchisee1")
    html = client.get(reverse("console:store_code_detail", args=[located.stores["S3"].id])).content.decode()
    rows = re.findall(r"<tr><th>([^<]*)</th><td>([^<]*)</td></tr>", html)
    assert rows == [
        ("周一", "18:00–次日 02:00"),
        ("周二", "18:00–次日 02:00"),
        ("周三", "18:00–次日 02:00"),
        ("周四", "18:00–次日 02:00"),
        ("周五", "18:00–次日 04:00"),
        ("周六", "18:00–次日 04:00"),
        ("周日", "休息"),
    ]
    assert 'id="temporarily-closed"' in html
    assert 'id="edit-store"' not in html  # franchisees look, they do not edit
    login(client, "hq")
    html = client.get(reverse("console:store_code_detail", args=[located.stores["S2"].id])).content.decode()
    assert "未设置营业时间：门店定位视其任何时间都在营业。" in html
    assert "此门店还没有导购活码。" in html
