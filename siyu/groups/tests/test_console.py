"""The group code console pages as each persona reads them (HTML), and the public landing page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from siyu.console.tests.conftest import attr_values, login
from siyu.groups.models import GroupCode
from siyu.groups.tests.conftest import CODES_VISIBLE
from siyu.testing import World


@pytest.mark.parametrize("persona", sorted(CODES_VISIBLE))
def test_list_and_detail_pages_follow_the_scope(client: Client, codes: dict[str, GroupCode], persona: str) -> None:
    login(client, persona)
    response = client.get(reverse("console:group_codes"))
    assert response.status_code == 200
    by_id = {str(c.id): key for key, c in codes.items()}
    assert {by_id[i] for i in attr_values(response.content.decode(), "data-group-code-id")} == CODES_VISIBLE[persona]
    for key, code in codes.items():
        detail = client.get(reverse("console:group_code_detail", args=[code.id]))
        assert detail.status_code == (200 if key in CODES_VISIBLE[persona] else 404), key
        poster = client.get(reverse("console:group_code_poster", args=[code.id]))
        assert poster.status_code == detail.status_code


def test_detail_shows_where_joiners_go_full_state_and_the_chart_data(
    client: Client, codes: dict[str, GroupCode]
) -> None:
    code = codes["S1"]
    GroupCode.objects.filter(id=code.id).update(is_full=True)
    html = (
        client.get(reverse("console:group_code_detail", args=[code.id])).content.decode()
        if login(client, "store1")
        else ""
    )
    assert 'data-way-chat="wrS1"' in html
    assert 'id="code-full"' in html
    assert "已满" in html  # zh-Hans by default
    assert 'id="chart-daily"' in html
    assert "https://qr.example/s1.png" in html


def test_only_managers_see_the_form(client: Client, codes: dict[str, GroupCode]) -> None:
    login(client, "guide1")
    assert client.get(reverse("console:group_code_new")).status_code == 403
    assert (
        client.post(reverse("console:group_code_status", args=[codes["S1"].id]), {"status": "paused"}).status_code
        == 403
    )
    login(client, "store1")
    form = client.get(reverse("console:group_code_new"))
    assert form.status_code == 200
    # A store manager picks among its own store's groups only.
    assert attr_values(form.content.decode(), "data-chat-id") == ["wrS1"]


def test_a_bad_state_is_a_form_error_not_a_500(client: Client, world: World, codes: dict[str, GroupCode]) -> None:
    login(client, "hq")
    group_id = codes["S1"].slots.get().group_id
    response = client.post(
        reverse("console:group_code_new"),
        {
            "name": "活码",
            "state": "有 空格",
            "store": "",
            "switch_mode": "threshold",
            "default_threshold": 180,
            "room_base_id": 1,
            "groups": [str(group_id)],
        },
    )
    assert response.status_code == 422
    assert "state" in response.content.decode()
    assert GroupCode.objects.filter(tenant=world.tenant_a).count() == 3


def test_public_landing_page_shows_the_qr_unless_paused(client: Client, codes: dict[str, GroupCode]) -> None:
    code = codes["S1"]
    page = client.get(f"/g/{code.public_token}/")
    assert page.status_code == 200
    assert 'id="landing-qr"' in page.content.decode()
    GroupCode.objects.filter(id=code.id).update(status=GroupCode.Status.PAUSED)
    assert 'id="landing-closed"' in client.get(f"/g/{code.public_token}/").content.decode()
    assert client.get("/g/not-a-token/").status_code == 404


def test_the_list_filters_by_status_and_name_within_the_scope(client: Client, codes: dict[str, GroupCode]) -> None:
    GroupCode.objects.filter(id=codes["S2"].id).update(status=GroupCode.Status.PAUSED)
    login(client, "region1")
    url = reverse("console:group_codes")
    by_id = {str(c.id): key for key, c in codes.items()}

    def shown(**params: str) -> set[str]:
        html = client.get(url, params).content.decode()
        return {by_id[i] for i in attr_values(html, "data-group-code-id")}

    assert shown(status="paused") == {"S2"}
    assert shown(status="active") == {"S1"}
    assert shown(q="活码s1") == {"S1"}
    assert shown(q="brand") == set()  # HQ's brand-wide code matches, but is not region1's
    assert shown(status="no-such-status") == {"S1", "S2"}
