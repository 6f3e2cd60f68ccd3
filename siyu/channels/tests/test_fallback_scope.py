"""A live code's fallback guide (who takes the scans when every guide is at their cap or out of hours) is held to
the same scope as its guides: a manager cannot name a guide outside their scope, through the API or the console,
on a new code or an existing one; the refusal has the shape of an out-of-scope guide's. A fallback set above the
manager is neither shown to them nor dropped when they save the console form."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from siyu.api.tests.conftest import ApiClient
from siyu.channels import services
from siyu.channels.models import LiveCode
from siyu.channels.tests.conftest import Emulated
from siyu.channels.tests.support import form_fields
from siyu.console.tests.conftest import (
    _compiled_locale,  # noqa: F401 - autouse: pages are read in Chinese
    attr_values,
    login,
)
from siyu.core.models import AuditLog
from siyu.testing import GUIDES_IN_SCOPE, World
from siyu.wecom.models import WeComConnection

# A guide each manager may put on a code, and one outside their scope (brand B's for HQ, the next store's below).
OWN_GUIDE = {"hq": "G1", "region1": "G1", "store1": "G1"}
OUTSIDE_GUIDE = {"hq": "GB", "region1": "G3", "store1": "G2"}
MANAGERS = sorted(OWN_GUIDE)


def test_the_outside_guides_are_outside_the_scope() -> None:
    for persona in MANAGERS:
        assert OWN_GUIDE[persona] in GUIDES_IN_SCOPE[persona]
        assert OUTSIDE_GUIDE[persona] not in GUIDES_IN_SCOPE[persona]


def _written(emulated: Emulated) -> tuple[Any, ...]:
    """What a live code write changes: the codes, the audit log and the contact ways in WeCom."""
    codes = list(LiveCode.objects.order_by("id").values_list("id", "name", "fallback_guide_id", "status"))
    return codes, AuditLog.objects.count(), sorted(emulated.corp.contact_ways)


@pytest.fixture
def hq_code(world: World, connected: WeComConnection) -> LiveCode:
    """HQ's code over G1 (every manager of A may edit it), without a fallback guide."""
    return services.live_code_create(
        actor=world.actor("hq"), name="门店引流", guide_ids=[world.guides["G1"].id], state="store_traffic"
    )


# -- API ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", MANAGERS)
def test_the_api_refuses_a_new_codes_fallback_outside_the_scope(
    world: World, connected: WeComConnection, emulated: Emulated, tokens: dict[str, str], persona: str
) -> None:
    api = ApiClient(tokens[persona])
    own, outside = world.guides[OWN_GUIDE[persona]], world.guides[OUTSIDE_GUIDE[persona]]
    body = {"name": "新渠道码", "guide_ids": [own.id], "state": f"fb_{persona}"}
    before = _written(emulated)
    # The same answer as a guide outside the scope on the code itself: not found, naming the field.
    as_guide = api.post("/live-codes", {**body, "guide_ids": [outside.id]})
    assert (as_guide.status, as_guide.body) == (404, {"detail": f"unknown guide {outside.id}", "field": "guide_ids"})
    as_fallback = api.post("/live-codes", {**body, "fallback_guide_id": outside.id})
    assert (as_fallback.status, as_fallback.body) == (
        404,
        {"detail": f"unknown fallback guide {outside.id}", "field": "fallback_guide_id"},
    )
    assert _written(emulated) == before
    # A guide in the scope is a fallback like any other.
    created = api.post("/live-codes", {**body, "fallback_guide_id": own.id})
    assert (created.status, created.body["fallback_guide_id"]) == (201, own.id)


@pytest.mark.parametrize("persona", MANAGERS)
def test_the_api_refuses_a_fallback_outside_the_scope_on_an_existing_code(
    world: World, emulated: Emulated, hq_code: LiveCode, tokens: dict[str, str], persona: str
) -> None:
    api = ApiClient(tokens[persona])
    own, outside = world.guides[OWN_GUIDE[persona]], world.guides[OUTSIDE_GUIDE[persona]]
    url = f"/live-codes/{hq_code.id}"
    before = _written(emulated)
    as_guide = api.patch(url, {"guide_ids": [own.id, outside.id]})
    assert (as_guide.status, as_guide.body) == (404, {"detail": f"unknown guide {outside.id}", "field": "guide_ids"})
    # Alone or beside a change the persona may make: nothing of the request is saved.
    for body in ({"fallback_guide_id": outside.id}, {"name": "改名", "fallback_guide_id": outside.id}):
        answer = api.patch(url, body)
        assert (answer.status, answer.body) == (
            404,
            {"detail": f"unknown fallback guide {outside.id}", "field": "fallback_guide_id"},
        )
    assert _written(emulated) == before
    assert api.get(url).body["fallback_guide_id"] is None
    changed = api.patch(url, {"fallback_guide_id": own.id})
    assert (changed.status, changed.body["fallback_guide_id"]) == (200, own.id)


# -- console -------------------------------------------------------------------------------------------------------


def _fallback_options(html: str) -> list[str]:
    select = html.split('<select name="fallback"', 1)[1].split("</select>", 1)[0]
    return attr_values(select, "option value")


@pytest.mark.parametrize("persona", MANAGERS)
def test_the_console_refuses_a_new_codes_fallback_outside_the_scope(
    client: Client, world: World, connected: WeComConnection, emulated: Emulated, persona: str
) -> None:
    login(client, persona)
    own, outside = world.guides[OWN_GUIDE[persona]], world.guides[OUTSIDE_GUIDE[persona]]
    url = reverse("console:channel_code_new")
    page = client.get(url).content.decode()
    offered = _fallback_options(page)
    assert str(own.id) in offered
    assert str(outside.id) not in offered
    posted = form_fields(page, "code-form")
    posted.update(name=["新渠道码"], state=[f"fb_{persona}"], guides=[str(own.id)], fallback=[str(outside.id)])
    before = _written(emulated)
    response = client.post(url, posted)  # a hand-made request: the form does not offer that guide
    assert response.status_code == 422
    html = response.content.decode()
    assert attr_values(html, "data-error-field") == ["fallback_guide_id"]
    assert f"unknown fallback guide {outside.id}" in html
    assert _written(emulated) == before
    posted["fallback"] = [str(own.id)]
    assert client.post(url, posted).status_code == 302
    assert LiveCode.objects.get(state=f"fb_{persona}").fallback_guide_id == own.id


@pytest.mark.parametrize("persona", MANAGERS)
def test_the_console_refuses_a_fallback_outside_the_scope_on_an_existing_code(
    client: Client, world: World, emulated: Emulated, hq_code: LiveCode, persona: str
) -> None:
    login(client, persona)
    outside = world.guides[OUTSIDE_GUIDE[persona]]
    url = reverse("console:channel_code_edit", args=[hq_code.id])
    page = client.get(url).content.decode()
    assert str(outside.id) not in _fallback_options(page)
    posted = form_fields(page, "code-form")
    posted.update(name=["改名"], fallback=[str(outside.id)])
    before = _written(emulated)
    response = client.post(url, posted)
    assert response.status_code == 422
    assert attr_values(response.content.decode(), "data-error-field") == ["fallback_guide_id"]
    assert _written(emulated) == before


@pytest.mark.parametrize("persona", ["region1", "store1"])
def test_a_fallback_set_above_the_manager_is_kept_by_their_console_save(
    client: Client, world: World, hq_code: LiveCode, persona: str
) -> None:
    """HQ made G3 (store S3's guide) the fallback of a code over G1: a store or region manager editing the code
    sees neither G3 nor their name, and saving the form as shown keeps G3."""
    g3 = world.guides["G3"]
    services.live_code_update(actor=world.actor("hq"), live_code_id=hq_code.id, fallback_guide_id=g3.id)
    login(client, persona)
    url = reverse("console:channel_code_edit", args=[hq_code.id])
    page = client.get(url).content.decode()
    assert _fallback_options(page)[:2] == ["keep", ""]
    assert '<option value="keep" selected>' in page
    assert str(g3.id) not in _fallback_options(page)
    assert g3.name not in page
    posted = form_fields(page, "code-form")
    assert posted["fallback"] == ["keep"]
    posted["name"] = ["门店引流（改）"]
    assert client.post(url, posted).status_code == 302
    hq_code.refresh_from_db()
    assert (hq_code.name, hq_code.fallback_guide_id) == ("门店引流（改）", g3.id)
    # Choosing a guide of their own replaces it.
    own = world.guides["G1"]
    posted["fallback"] = [str(own.id)]
    assert client.post(url, posted).status_code == 302
    hq_code.refresh_from_db()
    assert hq_code.fallback_guide_id == own.id
    assert "keep" not in _fallback_options(client.get(url).content.decode())
