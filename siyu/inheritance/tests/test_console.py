"""The inheritance pages (Settings → Inheritance) for every persona of the fixed world: who sees which transfers,
who may start one, and how bad input is answered. Brand A has no WeCom connection here, so started transfers keep
their customers pending with the reason shown; the emulator-backed flow is in test_e2e.py and test_transfers.py."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse

from siyu.console.tests.conftest import attr_values, login
from siyu.core.models import Guide
from siyu.core.scopes import Actor
from siyu.inheritance.models import Transfer, TransferItem, UnassignedCustomer
from siyu.inheritance.services import transfer_start
from siyu.testing import VISIBLE, World

PERSONAS = sorted(VISIBLE)
# Whose transfers each persona sees (by handover guide): managers and franchisees their scope's, guides none.
SEES = {
    "hq": {"G1", "G2", "G3"},
    "region1": {"G1", "G2"},
    "store1": {"G1"},
    "guide1": set(),
    "franchisee1": {"G1", "G3"},
    "outsider": set(),
}
CUSTOMER_OF = {"G1": "c1", "G2": "c2", "G3": "c3"}


def transfers(world: World) -> dict[str, Transfer]:
    return {
        code: transfer_start(
            actor=Actor.system(world.tenant_a.id),
            kind="on_job",
            handover_guide_id=world.guides[code].id,
            takeover_guide_id=world.guides["IP"].id,
            customer_ids=[world.customers[CUSTOMER_OF[code]].id],
        )
        for code in ("G1", "G2", "G3")
    }


def depart(world: World, code: str) -> None:
    Guide.objects.filter(id=world.guides[code].id).update(status=Guide.Status.DEPARTED)


@pytest.mark.parametrize("persona", PERSONAS)
def test_transfer_list_and_details_follow_the_scope(client: Client, world: World, persona: str) -> None:
    made = transfers(world)
    login(client, persona)
    response = client.get(reverse("console:inheritance"))
    assert response.status_code == 200
    shown = {int(i) for i in attr_values(response.content.decode(), "data-transfer-id")}
    assert shown == {made[code].id for code in SEES[persona]}
    for code, transfer in made.items():
        detail = client.get(reverse("console:inheritance_detail", args=[transfer.id]))
        assert detail.status_code == (200 if code in SEES[persona] else 404), code


def test_the_list_shows_counts_per_status_and_the_wecom_error(client: Client, world: World) -> None:
    made = transfers(world)
    login(client, "hq")
    html = client.get(reverse("console:inheritance")).content.decode()
    assert 'data-count-status="pending">未发送 <b>1</b>' in html
    assert html.count("企业微信出错") == 3
    detail = client.get(reverse("console:inheritance_detail", args=[made["G1"].id])).content.decode()
    assert "WeCom is not connected for this brand" in detail
    assert f'data-item-customer="{world.customers["c1"].id}" data-item-status="pending"' in detail


@pytest.mark.parametrize(
    ("persona", "status"),
    [("hq", 200), ("region1", 200), ("store1", 200), ("guide1", 403), ("franchisee1", 403), ("outsider", 200)],
)
def test_only_managers_may_start_transfers(client: Client, world: World, persona: str, status: int) -> None:
    login(client, persona)
    assert client.get(reverse("console:inheritance_new")).status_code == status
    body = {"handover": world.guides["G1"].id, "scope": "all", "takeover": world.guides["IP"].id}
    response = client.post(reverse("console:inheritance_new"), body)
    if persona in {"guide1", "franchisee1"}:
        assert response.status_code == 403
    elif persona == "outsider":
        # Brand A's guides are not choices for brand B: a form error, nothing started.
        assert response.status_code == 422
        assert "handover" in response.context["form"].errors
    else:
        transfer = Transfer.objects.get()
        assert response.status_code == 302
        assert response["Location"] == reverse("console:inheritance_detail", args=[transfer.id])
        assert (transfer.handover_id, transfer.takeover_id, transfer.requested_by_id) == (
            world.guides["G1"].id,
            world.guides["IP"].id,
            world.users[persona].pk,
        )
        return
    assert not Transfer.objects.exists()


def test_the_guide_picker_lists_departed_guides_first_with_their_customers(client: Client, world: World) -> None:
    depart(world, "G3")
    login(client, "hq")
    response = client.get(reverse("console:inheritance_new"))
    labels = [label for value, label in response.context["form"].fields["handover"].choices if value]
    assert labels[0] == "导购3 (guide3) · 已离职 · 1 位客户"
    assert set(labels[1:]) == {
        "导购1 (guide1) · 1 位客户",
        "导购2 (guide2) · 1 位客户",
        "好物体验官 (brand_ip) · 1 位客户",
    }
    # The store manager picks among its own guides only, and may hand to the brand IP.
    client.logout()
    login(client, "store1")
    form = client.get(reverse("console:inheritance_new")).context["form"]
    assert [v for v, _ in form.fields["handover"].choices if v] == [world.guides["G1"].id]
    assert [v for v, _ in form.fields["takeover"].choices if v] == [world.guides["G1"].id, world.guides["IP"].id]


def test_a_store_manager_cannot_hand_over_another_stores_guide(client: Client, world: World) -> None:
    login(client, "store1")
    assert client.get(reverse("console:inheritance_customers"), {"handover": world.guides["G2"].id}).status_code == 404
    body = {"handover": world.guides["G2"].id, "scope": "all", "takeover": world.guides["IP"].id}
    response = client.post(reverse("console:inheritance_new"), body)
    assert response.status_code == 422
    assert "handover" in response.context["form"].errors
    depart(world, "G2")
    assert client.post(reverse("console:inheritance_brand_ip"), {"guide": world.guides["G2"].id}).status_code == 404
    assert not Transfer.objects.exists()


def test_bad_input_is_a_form_error_on_its_field(client: Client, world: World) -> None:
    login(client, "hq")
    url = reverse("console:inheritance_new")
    g1, g2 = world.guides["G1"].id, world.guides["G2"].id
    cases = [
        ({"handover": g1, "scope": "all", "takeover": g1}, "takeover", "必须与移交导购不同"),
        ({"handover": g1, "scope": "chosen", "takeover": g2}, "customers", "请至少选择一位客户。"),
        ({"handover": g1, "scope": "all", "takeover": g2, "message": "字" * 201}, "message", "200"),
        ({"handover": "x", "scope": "all", "takeover": g2}, "handover", ""),
    ]
    for body, field, text in cases:
        response = client.post(url, body)
        assert response.status_code == 422, body
        errors = response.context["form"].errors
        assert field in errors, (body, errors)
        assert text in " ".join(errors[field]), errors
    depart(world, "G1")
    response = client.post(url, {"handover": g1, "scope": "all", "takeover": g2, "message": "你好"})
    assert response.context["form"].errors["message"] == ["only on-job transfers carry a message to the customer"]
    assert not Transfer.objects.exists()


def test_chosen_customers_and_the_customer_picker(client: Client, world: World) -> None:
    login(client, "region1")
    picker = client.get(reverse("console:inheritance_customers"), {"handover": world.guides["G2"].id})
    assert attr_values(picker.content.decode(), "data-pick-customer") == [str(world.customers["c2"].id)]
    body = {
        "handover": world.guides["G2"].id,
        "scope": "chosen",
        "customers": [world.customers["c2"].id],
        "takeover": world.guides["G1"].id,
        "message": "您好",
    }
    response = client.post(reverse("console:inheritance_new"), body)
    assert response.status_code == 302
    item = TransferItem.objects.get()
    assert (item.customer_id, item.external_userid, item.status) == (world.customers["c2"].id, "wmc2", "pending")
    assert item.transfer.message == "您好"


def test_hand_a_departed_guide_to_the_brand_ip_in_one_click(client: Client, world: World) -> None:
    depart(world, "G3")
    login(client, "hq")
    html = client.get(reverse("console:inheritance")).content.decode()
    assert attr_values(html, "data-departed-guide") == ["guide3"]
    assert "全部交给好物体验官" in html
    response = client.post(reverse("console:inheritance_brand_ip"), {"guide": world.guides["G3"].id})
    transfer = Transfer.objects.get()
    assert response["Location"] == reverse("console:inheritance_detail", args=[transfer.id])
    assert (transfer.kind, transfer.takeover_id) == ("resigned", world.guides["IP"].id)
    # A second click finds every customer already on the way: nothing is sent twice.
    response = client.post(reverse("console:inheritance_brand_ip"), {"guide": world.guides["G3"].id}, follow=True)
    assert "导购3 has no customers to hand over (or all are being transferred already)" in response.content.decode()
    assert Transfer.objects.count() == 1
    # A guide still working cannot be handed over this way: the reason comes back as a message.
    response = client.post(reverse("console:inheritance_brand_ip"), {"guide": world.guides["G1"].id}, follow=True)
    assert "导购1 has not left: use an on-job transfer" in response.content.decode()
    assert Transfer.objects.count() == 1


def test_refresh_swaps_the_status_panel(client: Client, world: World) -> None:
    made = transfers(world)
    login(client, "store1")
    url = reverse("console:inheritance_refresh", args=[made["G1"].id])
    response = client.post(url, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="transfer"')
    assert 'data-status="submitting"' in html
    assert client.post(reverse("console:inheritance_refresh", args=[made["G2"].id])).status_code == 404
    client.logout()
    login(client, "franchisee1")  # sees the transfer, may not act on it
    assert client.post(url).status_code == 403


@pytest.mark.parametrize("persona", PERSONAS)
def test_unassigned_customers_follow_the_scope(client: Client, world: World, persona: str) -> None:
    for code in ("G1", "G3"):
        UnassignedCustomer.objects.create(
            tenant=world.tenant_a,
            handover=world.guides[code],
            handover_userid=world.guides[code].wecom_userid,
            external_userid=f"wm{CUSTOMER_OF[code]}",
            customer=world.customers[CUSTOMER_OF[code]],
            dimission_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        )
    login(client, persona)
    html = client.get(reverse("console:inheritance_unassigned")).content.decode()
    expected = {f"wm{CUSTOMER_OF[c]}" for c in SEES[persona] & {"G1", "G3"}}
    assert set(attr_values(html, "data-unassigned")) == expected
    response = client.post(reverse("console:inheritance_unassigned_refresh"), follow=True)
    if persona in {"guide1", "franchisee1"}:
        assert response.status_code == 403
    else:
        assert "无法从企业微信读取列表" in response.content.decode()


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("console:inheritance_new", []),
        ("console:inheritance_brand_ip", []),
        ("console:inheritance_refresh", [1]),
        ("console:inheritance_unassigned_refresh", []),
    ],
)
def test_anonymous_cannot_start_or_refresh(client: Client, world: World, name: str, args: list[int]) -> None:
    depart(world, "G3")
    response = client.post(reverse(name, args=args), {"guide": world.guides["G3"].id})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("console:login"))
    assert not Transfer.objects.exists()
