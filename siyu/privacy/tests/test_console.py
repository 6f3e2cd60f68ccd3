"""The console's privacy pages: the customer panel (consents, export, erase link), the typed-confirmation erase page
and the request log, in Chinese, with the roles each allows; plus the erase flow in headless Chromium."""

from __future__ import annotations

import json

import pytest
from django.db import connections
from django.test import Client
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from siyu.core.models import AuditLog
from siyu.customers.models import Customer
from siyu.e2e import SHOTS
from siyu.privacy.models import Consent, ErasedCustomer, PrivacyRequest
from siyu.privacy.services import privacy_export
from siyu.testing import PASSWORD, World, build_world


def _login(persona: str) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert client.login(username=persona, password=PASSWORD)
    return client


def test_panel_shows_consent_state_and_records_a_decision(world: World) -> None:
    c1 = world.customers["c1"].id
    guide = _login("guide1")
    page = guide.get(f"/customers/{c1}/privacy/").content.decode()
    assert "隐私与授权" in page
    assert "未征询" in page
    assert 'id="privacy-export-form"' not in page  # exports are HQ's

    form = {"purpose": "marketing", "granted": "yes", "channel": "store", "text_version": "v3"}
    answer = guide.post(f"/customers/{c1}/privacy/consents/", form)
    assert answer.status_code == 200
    assert "已同意" in answer.content.decode()
    consent = Consent.objects.get()
    assert (consent.customer_id, consent.purpose, consent.granted, consent.text_version) == (c1, "marketing", True,
                                                                                             "v3")  # fmt: skip
    refused = guide.post(f"/customers/{c1}/privacy/consents/", {**form, "granted": "no", "text_version": ""})
    assert 'id="consent-error"' in refused.content.decode()
    assert Consent.objects.count() == 1
    # Another guide's customer is not found.
    assert guide.get(f"/customers/{world.customers['c2'].id}/privacy/").status_code == 404

    hq_page = _login("hq").get(f"/customers/{c1}/privacy/").content.decode()
    assert 'id="privacy-export-form"' in hq_page
    assert 'id="privacy-erase-link"' in hq_page


def test_export_downloads_json_with_a_reason_and_is_audited(world: World) -> None:
    c1 = world.customers["c1"].id
    hq = _login("hq")
    answer = hq.post(f"/customers/{c1}/privacy/export/", {"reason": "客户申请 #7"})
    assert answer.status_code == 200
    assert answer["Content-Disposition"] == f'attachment; filename="customer-{c1}-export.json"'
    document = json.loads(answer.content)
    assert (document["profile"]["name"], document["profile"]["phone"]) == ("王小明", "13800000001")
    assert AuditLog.objects.get(action="privacy.export").detail["reason"] == "客户申请 #7"

    no_reason = hq.post(f"/customers/{c1}/privacy/export/", {"reason": ""})
    assert no_reason.status_code == 302
    assert PrivacyRequest.objects.count() == 1
    store = _login("store1").post(f"/customers/{c1}/privacy/export/", {"reason": "x"})
    assert store.status_code == 403
    assert PrivacyRequest.objects.count() == 1


def test_erase_needs_the_typed_id_then_erases_once(world: World) -> None:
    c1 = world.customers["c1"].id
    hq = _login("hq")
    page = hq.get(f"/customers/{c1}/privacy/erase/").content.decode()
    assert f"请输入客户编号 {c1} 以确认" in page

    wrong = hq.post(f"/customers/{c1}/privacy/erase/", {"reason": "客户要求", "confirm": "1234567"})
    assert wrong.status_code == 422
    assert "请准确输入客户编号以确认" in wrong.content.decode()
    assert ErasedCustomer.objects.count() == 0

    done = hq.post(f"/customers/{c1}/privacy/erase/", {"reason": "客户要求", "confirm": str(c1)})
    assert (done.status_code, done["Location"]) == (302, "/privacy/")
    assert Customer.objects.get(id=c1).phone_hash == ""
    again = hq.get(f"/customers/{c1}/privacy/erase/").content.decode()
    assert 'id="already-erased"' in again
    hq.post(f"/customers/{c1}/privacy/erase/", {"reason": "again", "confirm": str(c1)})
    assert ErasedCustomer.objects.count() == 1

    assert _login("store1").get(f"/customers/{c1}/privacy/erase/").status_code == 403


def test_request_log_is_hq_only_and_lists_the_brands_requests(world: World) -> None:
    mine, _ = privacy_export(actor=world.actor("hq"), customer_id=world.customers["c2"].id, reason="申请 A")
    privacy_export(actor=world.actor("outsider"), customer_id=world.customers["b1"].id, reason="申请 B")
    page = _login("hq").get("/privacy/").content.decode()
    assert f'data-request-id="{mine.id}"' in page
    assert "申请 A" in page
    assert "申请 B" not in page
    assert "个人信息请求" in page
    assert _login("region1").get("/privacy/").status_code == 403


@pytest.fixture
def e2e_world(transactional_db: None) -> World:
    world = build_world()
    connections.close_all()  # the live server's thread and Playwright's greenlet open their own
    return world


@pytest.mark.e2e
def test_hq_erases_a_customer_in_the_console(live_server: LiveServer, e2e_world: World, page: Page) -> None:
    c1 = e2e_world.customers["c1"].id
    page.goto(f"{live_server.url}/customers/{c1}/privacy/erase/")
    page.get_by_label("用户名").fill("hq")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.locator("#id_reason").fill("客户来电要求删除")
    page.locator("#id_confirm").fill("999")
    page.locator("#erase-submit").click()
    expect(page.locator("[data-error-field=confirm]")).to_have_text("请准确输入客户编号以确认。")
    assert not ErasedCustomer.objects.exists()
    page.screenshot(path=str(SHOTS / "privacy-erase.png"), full_page=True)

    page.locator("#id_confirm").fill(str(c1))
    page.locator("#erase-submit").click()
    expect(page.locator(".topbar-title")).to_have_text("个人信息请求")
    row = page.locator("tr[data-kind=erasure]")
    expect(row).to_contain_text("客户来电要求删除")
    expect(row).to_contain_text("hq")
    page.screenshot(path=str(SHOTS / "privacy-requests.png"), full_page=True)
    assert ErasedCustomer.objects.get().customer_id == c1


def test_the_customer_page_include_loads_the_panel(world: World) -> None:
    """The one line customers/detail.html includes: a placeholder that fetches the panel over HTMX."""
    from django.template.loader import render_to_string

    c1 = world.customers["c1"]
    html = render_to_string("console/privacy/_customer_panel.html", {"customer": c1})
    assert f'hx-get="/customers/{c1.id}/privacy/"' in html
    assert 'hx-trigger="load"' in html
