"""Signing in and out, brand membership and switching, the language, navigation and not-yet-built sections."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from siyu.console.middleware import SESSION_TENANT
from siyu.console.navigation import UPCOMING
from siyu.console.tests.conftest import attr_values, login
from siyu.core.models import Role
from siyu.core.services import membership_create, user_create
from siyu.testing import PASSWORD, World


def test_login_page_then_sign_in_lands_on_overview(client: Client, world: World) -> None:
    page = client.get(reverse("console:login"))
    assert page.status_code == 200
    assert "登录" in page.content.decode()
    response = client.post(reverse("console:login"), {"username": "hq", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("console:home")
    home = client.get(reverse("console:home")).content.decode()
    assert "澄光" in home
    assert "总部管理员" in home
    assert "hq" in home


def test_wrong_password_says_so_without_failing(client: Client, world: World) -> None:
    response = client.post(reverse("console:login"), {"username": "hq", "password": "nope"})
    assert response.status_code == 200
    assert "请输入一个正确的" in response.content.decode()  # Django's own zh-Hans message


def test_login_returns_to_the_page_asked_for(client: Client, world: World) -> None:
    response = client.post(
        reverse("console:login") + "?next=/orders/", {"username": "store1", "password": PASSWORD, "next": "/orders/"}
    )
    assert response["Location"] == "/orders/"


def test_logout_is_a_post_and_ends_the_session(client: Client, world: World) -> None:
    login(client, "hq")
    response = client.post(reverse("console:logout"))
    assert response["Location"] == reverse("console:login")
    assert client.get(reverse("console:home")).status_code == 302


def test_user_without_membership_gets_an_explanation_not_data(client: Client, world: World) -> None:
    user_create(username="newcomer", password=PASSWORD)
    login(client, "newcomer")
    for name in ("console:home", "console:customer_list", "console:order_list"):
        response = client.get(reverse(name))
        assert response.status_code == 403
        assert "还不属于任何品牌" in response.content.decode()


def test_user_with_two_brands_switches_and_sees_the_other_brand(client: Client, world: World) -> None:
    membership_create(tenant=world.tenant_b, user=world.users["store1"], role=Role.HQ_ADMIN)
    login(client, "store1")
    first = client.get(reverse("console:customer_list")).content.decode()
    assert 'action="/brand/"' in first  # the switcher appears only for users with several brands
    assert {int(i) for i in attr_values(first, "data-customer-id")} == {world.customers["c1"].id}

    response = client.post(reverse("console:brand_switch"), {"tenant": world.tenant_b.id})
    assert response["Location"] == reverse("console:home")
    assert client.session[SESSION_TENANT] == world.tenant_b.id
    after = client.get(reverse("console:customer_list")).content.decode()
    assert {int(i) for i in attr_values(after, "data-customer-id")} == {world.customers["b1"].id}
    assert "远山" in after
    # The old brand's customer is now out of reach.
    assert client.get(reverse("console:customer_detail", args=[world.customers["c1"].id])).status_code == 404


def test_switching_to_a_brand_you_do_not_belong_to_is_refused(client: Client, world: World) -> None:
    login(client, "store1")
    client.post(reverse("console:brand_switch"), {"tenant": world.tenant_b.id})
    assert SESSION_TENANT not in client.session
    page = client.get(reverse("console:home")).content.decode()
    assert "你不是该品牌的成员" in page
    assert client.post(reverse("console:brand_switch"), {"tenant": "abc"}).status_code == 302


def test_single_brand_users_see_no_switcher(client: Client, world: World) -> None:
    login(client, "hq")
    assert 'action="/brand/"' not in client.get(reverse("console:home")).content.decode()


def test_chinese_by_default_even_for_an_english_browser(client: Client, world: World) -> None:
    login(client, "hq")
    html = client.get(reverse("console:home"), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert '<html lang="zh-hans">' in html
    assert ">概览<" in html
    assert ">客户<" in html
    assert ">引流获客<" in html


def test_language_switch_turns_the_console_english_and_back(client: Client, world: World) -> None:
    login(client, "hq")
    response = client.post(reverse("set_language"), {"language": "en", "next": "/customers/"})
    assert response["Location"] == "/customers/"
    html = client.get("/customers/").content.decode()
    assert '<html lang="en">' in html
    assert ">Overview<" in html
    assert ">Customers<" in html
    assert ">Acquisition" in html
    assert "HQ admin" in html  # role label
    assert ">New<" in html  # lifecycle stage label
    client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    assert ">概览<" in client.get("/").content.decode()


def test_an_unknown_language_cookie_falls_back_to_chinese(client: Client, world: World) -> None:
    login(client, "hq")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "klingon"
    assert '<html lang="zh-hans">' in client.get("/").content.decode()


def test_navigation_lists_every_context_and_marks_the_current_page(client: Client, world: World) -> None:
    login(client, "guide1")
    html = client.get(reverse("console:customer_detail", args=[world.customers["c1"].id])).content.decode()
    for label in (
        "概览", "客户", "标签", "引流获客", "渠道活码", "群活码", "门店活码", "裂变", "客户群", "内容", "触达", "群发",
        "朋友圈", "SOP", "营销日历", "活动", "会员", "订单", "导购与组织", "数据", "企业微信设置", "审计日志",
    ):
        assert f">{label}<" in html or f">{label}<span" in html, label
    assert 'class="nav-item is-active" href="/customers/" aria-current="page"' in html


@pytest.mark.parametrize("key", sorted(UPCOMING))
def test_unbuilt_sections_say_so_honestly(client: Client, world: World, key: str) -> None:
    login(client, "hq")
    response = client.get(reverse(f"console:{key}"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "当前版本暂未提供" in html
    assert "本页没有任何示例数据" in html
    assert "<table" not in html  # no fake rows


def test_unknown_url_is_a_404_page(client: Client, world: World) -> None:
    login(client, "hq")
    response = client.get("/customers/999999/")
    assert response.status_code == 404
    assert "页面不存在" in response.content.decode()


def test_static_assets_are_served_locally(client: Client, world: World) -> None:
    login(client, "hq")
    html = client.get(reverse("console:home")).content.decode()
    assert "/static/vendor/htmx.min.js" in html
    assert "/static/vendor/echarts.min.js" in html
    assert "http://" not in html.split("<body")[0]
    assert "https://" not in html.split("<body")[0]
