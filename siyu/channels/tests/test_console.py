"""The live code and welcome message console pages as each persona reads them (HTML): a code shared by two stores
shows each reader only its own guides; one code's sends outside the scope are not found; and mini-program
attachments are set on the welcome form, refused for the same reasons as through the API (one validator); what the
API sets (a link's description and picture, an image by URL, the attachments' order) survives a console save."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image

from siyu.api.tests.conftest import ApiClient
from siyu.channels import services
from siyu.channels.models import LiveCode, WelcomeAsset, WelcomeMessage
from siyu.channels.tests.conftest import Emulated
from siyu.channels.tests.support import form_fields
from siyu.console.tests.conftest import (
    _compiled_locale,  # noqa: F401 - autouse: pages are read in Chinese
    attr_values,
    login,
)
from siyu.testing import World
from siyu.wecom.models import WeComConnection

# Who sees the code over G1 (store S1) and G2 (store S2), and which of its guides.
SHARED_MEMBERS = {
    "hq": ["guide1", "guide2"],
    "region1": ["guide1", "guide2"],
    "store1": ["guide1"],
    "guide1": ["guide1"],
    "franchisee1": ["guide1"],
}
PERSONAS = [*sorted(SHARED_MEMBERS), "outsider"]


@pytest.fixture
def shared(world: World, connected: WeComConnection, emulated: Emulated) -> LiveCode:
    """HQ's live code over G1 and G2, a real contact way in the emulator corp."""
    return services.live_code_create(
        actor=world.actor("hq"),
        name="双店共享码",
        guide_ids=[world.guides["G1"].id, world.guides["G2"].id],
        state="shared_s1_s2",
    )


@pytest.mark.parametrize("persona", PERSONAS)
def test_detail_names_only_the_guides_in_scope(client: Client, shared: LiveCode, persona: str) -> None:
    login(client, persona)
    response = client.get(reverse("console:channel_code_detail", args=[shared.id]))
    if persona == "outsider":
        assert response.status_code == 404
        return
    html = response.content.decode()
    assert response.status_code == 200
    assert attr_values(html, "data-member") == SHARED_MEMBERS[persona]
    users = html.split('id="code-users">', 1)[1].split("<", 1)[0]
    assert users == ", ".join(u for u in shared.wecom_users if u in SHARED_MEMBERS[persona])
    if "guide2" not in SHARED_MEMBERS[persona]:
        assert "导购2" not in html


@pytest.mark.parametrize("persona", PERSONAS)
def test_one_codes_sends_outside_the_scope_are_not_found(client: Client, shared: LiveCode, persona: str) -> None:
    login(client, persona)
    url = reverse("console:channel_welcome_sends")
    response = client.get(url, {"live_code_id": shared.id, "status": "all"})
    assert response.status_code == (404 if persona == "outsider" else 200)
    if persona != "outsider":
        assert 'id="send-code"' in response.content.decode()
    # No code of that id, or no id at all: not found either, never an empty page.
    assert client.get(url, {"live_code_id": 2**62}).status_code == 404
    assert client.get(url, {"live_code_id": "abc"}).status_code == 404


# -- mini-program attachments ----------------------------------------------------------------------------------------


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def cover(world: World) -> WelcomeAsset:
    return services.welcome_asset_upload(
        actor=world.actor("hq"), kind="image", name="会员中心.png", content=_png(), content_type="image/png"
    )


MINIPROGRAM = {"title": "会员中心", "appid": "wx1234567890abcdef", "page": "pages/member/index"}


def _console_post(client: Client, miniprograms: list[dict[str, Any]], links: str = "") -> Any:
    data: dict[str, Any] = {"form": "welcome", "scope": "default", "text": "欢迎光临", "links": links}
    for name in ("title", "appid", "page", "cover"):
        data[f"mp_{name}"] = [str(m.get(name, "")) for m in miniprograms]
    return client.post(reverse("console:channel_welcome"), data)


def _api_put(api: ApiClient, miniprograms: list[dict[str, Any]], links: int = 0) -> Any:
    attachments: list[dict[str, Any]] = [
        {"msgtype": "link", "title": f"链接{i}", "url": f"https://brand.example.com/{i}"} for i in range(links)
    ]
    for m in miniprograms:
        item = {"msgtype": "miniprogram", **{k: m[k] for k in ("title", "appid", "page") if k in m}}
        if "cover" in m:
            item["asset_id"] = m["cover"]
        attachments.append(item)
    body = {"scope": "default", "text": "欢迎光临", "attachments": attachments}
    return api.call("PUT", "/welcome-messages", body=body)


def test_the_welcome_form_sets_a_miniprogram_as_the_api_does(
    client: Client, world: World, cover: WelcomeAsset, tokens: dict[str, str]
) -> None:
    login(client, "hq")
    page = client.get(reverse("console:channel_welcome")).content.decode()
    assert attr_values(page, "data-miniprogram") == ["1"]  # one empty row to fill
    response = _console_post(client, [{**MINIPROGRAM, "cover": cover.id}])
    assert response.status_code == 302
    saved = WelcomeMessage.objects.get(tenant=world.tenant_a, scope="default")
    expected = [{"msgtype": "miniprogram", **MINIPROGRAM, "asset_id": cover.id}]
    assert (saved.text, saved.attachments) == ("欢迎光临", expected)
    # The list names it, and its edit form shows it filled in, with another empty row.
    listed = client.get(reverse("console:channel_welcome")).content.decode()
    assert attr_values(listed, "data-msgtype") == ["miniprogram"]
    edit = client.get(reverse("console:channel_welcome"), {"edit": saved.id}).content.decode()
    assert attr_values(edit, "data-miniprogram") == ["1", "2"]
    assert f'value="{MINIPROGRAM["appid"]}"' in edit
    assert f'<option value="{cover.id}" selected>' in edit
    # Through the API the same mini-program is stored the same way.
    WelcomeMessage.objects.all().delete()
    answer = _api_put(ApiClient(tokens["hq"]), [{**MINIPROGRAM, "cover": cover.id}])
    assert (answer.status, answer.body["attachments"]) == (200, expected)


@pytest.mark.parametrize(
    ("change", "attribute"),
    [
        ({"title": ""}, "title"),
        ({"title": "长" * 65}, "title"),
        ({"appid": ""}, "appid"),
        ({"appid": "w" * 65}, "appid"),
        ({"page": ""}, "page"),
        ({"cover": None}, "asset_id"),
        ({"cover": "other brand"}, "asset_id"),
    ],
)
def test_a_bad_miniprogram_is_refused_by_the_form_and_the_api_alike(
    client: Client, world: World, cover: WelcomeAsset, tokens: dict[str, str], change: dict[str, Any], attribute: str
) -> None:
    other = services.welcome_asset_upload(
        actor=world.actor("outsider"), kind="image", name="b.png", content=_png(), content_type="image/png"
    )
    miniprogram: dict[str, Any] = {**MINIPROGRAM, "cover": cover.id, **change}
    if miniprogram["cover"] is None:
        del miniprogram["cover"]
    elif miniprogram["cover"] == "other brand":
        miniprogram["cover"] = other.id
    login(client, "hq")
    response = _console_post(client, [miniprogram])
    assert response.status_code == 422
    error = response.content.decode().split('id="attachments-error">', 1)[1].split("</div>", 1)[0]
    assert error.startswith("小程序 1: ")
    assert f".{attribute}" in error
    answer = _api_put(ApiClient(tokens["hq"]), [miniprogram])
    assert answer.status in (404, 422), answer.body
    fields = {e["field"] for e in answer.body["errors"]} if answer.status == 422 else {answer.body["field"]}
    assert any(f.endswith(attribute) for f in fields), answer.body
    assert not WelcomeMessage.objects.exists()


def test_nine_attachments_at_most_the_form_says_so_clearly(
    client: Client, world: World, cover: WelcomeAsset, tokens: dict[str, str]
) -> None:
    login(client, "hq")
    links = "\n".join(f"链接{i} | https://brand.example.com/{i}" for i in range(8))
    two = [{**MINIPROGRAM, "cover": cover.id}, {**MINIPROGRAM, "title": "积分商城", "cover": cover.id}]
    response = _console_post(client, two, links=links)
    assert response.status_code == 422
    html = response.content.decode()
    assert "最多 9 个附件（链接、图片、文件和小程序合计），这条欢迎语有 10 个。" in html
    assert 'value="积分商城"' in html  # what was typed is kept
    assert not WelcomeMessage.objects.exists()
    assert _api_put(ApiClient(tokens["hq"]), two, links=8).status == 422
    assert not WelcomeMessage.objects.exists()
    # Nine go through, and the form offers no empty row for a tenth.
    assert _console_post(client, two[:1], links=links).status_code == 302
    saved = WelcomeMessage.objects.get(tenant=world.tenant_a, scope="default")
    assert [a["msgtype"] for a in saved.attachments] == ["link"] * 8 + ["miniprogram"]
    edit = client.get(reverse("console:channel_welcome"), {"edit": saved.id}).content.decode()
    assert attr_values(edit, "data-miniprogram") == ["1"]


def test_editing_a_code_in_the_console_keeps_its_miniprogram(
    client: Client, world: World, shared: LiveCode, cover: WelcomeAsset
) -> None:
    """A cover image is not an attachment of its own: saving the form as shown changes nothing."""
    attachments = [{"msgtype": "miniprogram", **MINIPROGRAM, "asset_id": cover.id}]
    code = services.live_code_create(
        actor=world.actor("hq"),
        name="小程序码",
        guide_ids=[world.guides["G1"].id],
        state="with_miniprogram",
        welcome_text="你好",
        welcome_attachments=attachments,
    )
    login(client, "hq")
    form = client.get(reverse("console:channel_code_edit", args=[code.id])).content.decode()
    assert f'name="assets" value="{cover.id}" checked' not in form
    assert f'value="{MINIPROGRAM["page"]}"' in form
    posted = {
        "name": "小程序码",
        "state": "with_miniprogram",
        "guides": [str(world.guides["G1"].id)],
        "strategy": "round_robin",
        "welcome_text": "你好",
        "links": "",
        "mp_title": [MINIPROGRAM["title"], ""],
        "mp_appid": [MINIPROGRAM["appid"], ""],
        "mp_page": [MINIPROGRAM["page"], ""],
        "mp_cover": [str(cover.id), ""],
    }
    response = client.post(reverse("console:channel_code_edit", args=[code.id]), posted)
    assert response.status_code == 302, response.content.decode()[:2000]
    saved = WelcomeMessage.objects.get(live_code=code)
    assert saved.attachments == attachments


# -- attachments the API sets, kept by a console save ------------------------------------------------------------------

LINK_CARD = {
    "msgtype": "link",
    "title": "春季新品",
    "url": "https://brand.example.com/spring?from=welcome",
    "desc": "第一行：新品上市\n第二行：到店有礼 & 专属折扣",
    "picurl": "https://cdn.brand.example.com/spring.jpg",
}
IMAGE_BY_URL = {"msgtype": "image", "pic_url": "https://cdn.brand.example.com/poster.png?v=2&size=large"}


def _file(world: World) -> WelcomeAsset:
    return services.welcome_asset_upload(
        actor=world.actor("hq"),
        kind="file",
        name="会员手册.pdf",
        content=b"%PDF-1.4 manual",
        content_type="application/pdf",
    )


def test_a_console_edit_keeps_every_attachment_field_the_api_set(
    client: Client, world: World, connected: WeComConnection, cover: WelcomeAsset, tokens: dict[str, str]
) -> None:
    """A link's description and picture and an image by URL are not what the console adds, but an operator who
    renames the code and saves the form as shown keeps them all, in their order."""
    api = ApiClient(tokens["hq"])
    manual = _file(world)
    created = api.post(
        "/live-codes",
        {
            "name": "春季投放",
            "guide_ids": [world.guides["G1"].id],
            "state": "spring_api",
            "welcome_text": "{客户昵称}你好",
            "welcome_attachments": [
                {"msgtype": "miniprogram", **MINIPROGRAM, "asset_id": cover.id},
                LINK_CARD,
                IMAGE_BY_URL,
                {"msgtype": "image", "asset_id": cover.id},
                {"msgtype": "link", "title": "门店地址", "url": "https://brand.example.com/stores"},
                {"msgtype": "file", "asset_id": manual.id},
            ],
        },
    )
    assert created.status == 201, created.body
    code_id = created.body["id"]
    # An image is an upload or a URL (WeCom's pic_url), never both or neither.
    for bad in ({"msgtype": "image"}, {**IMAGE_BY_URL, "asset_id": cover.id}, {"msgtype": "image", "pic_url": "x"}):
        refused = api.patch(f"/live-codes/{code_id}", {"welcome_attachments": [bad]})
        assert refused.status == 422, refused.body
        assert "welcome_attachments" in str(refused.body)
    before = api.get(f"/live-codes/{code_id}").body["welcome"]
    assert before["attachments"][1] == LINK_CARD
    assert before["attachments"][2] == IMAGE_BY_URL

    login(client, "hq")
    url = reverse("console:channel_code_edit", args=[code_id])
    page = client.get(url).content.decode()
    # The link card and the image by URL are on the form, to see and change.
    assert attr_values(page, "data-link") == ["1", "2"]
    assert f'value="{LINK_CARD["picurl"]}"' in page
    assert "第二行：到店有礼 &amp; 专属折扣</textarea>" in page
    assert attr_values(page, 'name="image_urls" value') == [IMAGE_BY_URL["pic_url"].replace("&", "&amp;")]
    posted = form_fields(page, "code-form")
    assert posted["name"] == ["春季投放"]
    posted["name"] = ["春季投放（改名）"]
    response = client.post(url, posted)
    assert response.status_code == 302, response.content.decode()[:3000]

    after = api.get(f"/live-codes/{code_id}").body
    assert after["name"] == "春季投放（改名）"
    assert after["welcome"] == before


def test_the_console_changes_a_link_cards_description_and_removes_an_image_by_url(
    client: Client, world: World, connected: WeComConnection, tokens: dict[str, str]
) -> None:
    api = ApiClient(tokens["hq"])
    code = services.live_code_create(
        actor=world.actor("hq"),
        name="链接卡片",
        guide_ids=[world.guides["G1"].id],
        state="link_card",
        welcome_attachments=[IMAGE_BY_URL, LINK_CARD],
    )
    login(client, "hq")
    url = reverse("console:channel_code_edit", args=[code.id])
    posted = form_fields(client.get(url).content.decode(), "code-form")
    posted["link_desc"] = ["到店有礼"]
    del posted["image_urls"]  # the box unticked
    posted["links"] = ["门店地址 | https://brand.example.com/stores"]  # and a new link, after the card
    assert client.post(url, posted).status_code == 302
    assert api.get(f"/live-codes/{code.id}").body["welcome"]["attachments"] == [
        {**LINK_CARD, "desc": "到店有礼"},
        {"msgtype": "link", "title": "门店地址", "url": "https://brand.example.com/stores", "desc": ""},
    ]
    # A bad picture URL is refused under the attachments, naming the link, and what was typed is kept.
    posted = form_fields(client.get(url).content.decode(), "code-form")
    posted["link_picurl"] = ["ftp://cdn.brand.example.com/spring.jpg", ""]
    response = client.post(url, posted)
    assert response.status_code == 422
    html = response.content.decode()
    error = html.split('id="attachments-error">', 1)[1].split("</div>", 1)[0]
    assert error == "链接 1: welcome_attachments.0.picurl must be an http(s) URL"
    assert 'value="ftp://cdn.brand.example.com/spring.jpg"' in html
    assert WelcomeMessage.objects.get(live_code=code).attachments[0]["picurl"] == LINK_CARD["picurl"]


def test_the_welcome_page_keeps_a_link_cards_fields_too(
    client: Client, world: World, cover: WelcomeAsset, tokens: dict[str, str]
) -> None:
    api = ApiClient(tokens["hq"])
    body = {
        "scope": "default",
        "text": "欢迎光临",
        "attachments": [{"msgtype": "image", "asset_id": cover.id}, LINK_CARD],
    }
    saved = api.call("PUT", "/welcome-messages", body=body)
    assert saved.status == 200, saved.body
    login(client, "hq")
    page = client.get(reverse("console:channel_welcome"), {"edit": saved.body["id"]}).content.decode()
    response = client.post(reverse("console:channel_welcome"), form_fields(page, "welcome-form"))
    assert response.status_code == 302, response.content.decode()[:3000]
    message = WelcomeMessage.objects.get(tenant=world.tenant_a, scope="default")
    assert (message.text, message.attachments) == ("欢迎光临", saved.body["attachments"])
    assert message.attachments == [{"msgtype": "image", "asset_id": cover.id}, LINK_CARD]
