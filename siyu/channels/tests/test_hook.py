"""A customer scans a live code: WeCom's add callback reaches siyu's endpoint, the add is attributed to the code,
its tags applied and the welcome message sent with the callback's welcome code (read back from the emulator)."""

from __future__ import annotations

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.analytics.models import Event
from siyu.channels.models import LiveCode, WelcomeMessage, WelcomeSend
from siyu.channels.services import (
    WELCOME_TEXT_FIELD,
    live_code_contact_added,
    live_code_create,
    live_code_pause,
    welcome_message_save,
)
from siyu.channels.tests.conftest import Emulated
from siyu.channels.tests.support import CaptureOnCommit, scan
from siyu.core import pii
from siyu.core.scopes import Actor
from siyu.tags.models import CustomerTag, TagSource
from siyu.testing import IMMEDIATE_TASKS, World
from siyu.wecom.models import WeComConnection


@pytest.fixture(autouse=True)
def immediate(settings: SettingsWrapper) -> None:
    settings.TASKS = IMMEDIATE_TASKS


def _code(world: World, **kwargs: object) -> LiveCode:
    defaults: dict[str, object] = {
        "name": "门店海报",
        "guide_ids": [world.guides["G1"].id],
        "state": "poster1",
        "tag_ids": [world.tags["护肤"].id],
        "welcome_text": "{客户昵称}您好，我是{门店}的{导购}，{{有事随时找我}}",
    }
    return live_code_create(actor=world.actor("hq"), **{**defaults, **kwargs})  # type: ignore[arg-type]


def test_a_scan_is_attributed_tagged_and_welcomed(
    world: World,
    connected: WeComConnection,
    emulated: Emulated,
    django_capture_on_commit_callbacks: CaptureOnCommit,
) -> None:
    code = _code(world)
    added = scan(emulated, django_capture_on_commit_callbacks, code, name="林小雨")

    relation = added.relation
    assert (relation.state, relation.guide_id) == ("poster1", world.guides["G1"].id)
    tag = CustomerTag.objects.get(customer_id=relation.customer_id)
    assert (tag.tag_id, tag.source, tag.rule) == (world.tags["护肤"].id, TagSource.CHANNEL, f"live_code:{code.id}")
    send = added.send
    assert (send.status, send.errcode, send.live_code_id, send.guide_id) == (
        WelcomeSend.Status.SENT,
        0,
        code.id,
        world.guides["G1"].id,
    )
    assert send.latency_ms is not None
    assert send.latency_ms < 2000
    [delivered] = emulated.welcome_messages()
    assert delivered["welcome_code"] == added.welcome_code
    assert delivered["external_userid"] == added.external_userid
    assert delivered["text"] == "林小雨您好，我是门店S1的导购1，{有事随时找我}"
    # Stored encrypted (the nickname is personal data), decrypted only to send it.
    assert "林小雨" not in send.text
    assert pii.decrypt(send.text, field=WELCOME_TEXT_FIELD) == delivered["text"]
    # The customer's timeline says the welcome went out, from which guide.
    event = Event.objects.get(type="welcome.sent", customer_id=relation.customer_id)
    assert (event.guide_id, event.properties["welcome_send_id"], event.properties["live_code_id"]) == (
        world.guides["G1"].id,
        send.id,
        code.id,
    )


def test_the_hook_run_again_for_the_same_welcome_code_sends_nothing_more(
    world: World,
    connected: WeComConnection,
    emulated: Emulated,
    django_capture_on_commit_callbacks: CaptureOnCommit,
) -> None:
    code = _code(world)
    added = scan(emulated, django_capture_on_commit_callbacks, code)
    # What a second processing of the same add would do (the connector's exactly-once guard aside).
    with django_capture_on_commit_callbacks(execute=True):
        again = live_code_contact_added(
            actor=Actor.system(world.tenant_a.id),
            follow_relation_id=added.relation.id,
            state=code.state,
            welcome_code=added.welcome_code,
            userid=added.userid,
            external_userid=added.external_userid,
        )
    assert again is None
    assert WelcomeSend.objects.count() == 1
    assert len(emulated.welcome_messages()) == 1


def test_an_expired_welcome_code_is_a_recorded_failure(
    world: World,
    connected: WeComConnection,
    emulated: Emulated,
    django_capture_on_commit_callbacks: CaptureOnCommit,
) -> None:
    code = _code(world)
    # WeCom's clock moves 25 s on before siyu hears of the add: the 20-second code is gone.
    added = scan(emulated, django_capture_on_commit_callbacks, code, wait_seconds=25)
    send = added.send
    assert (send.status, send.errcode, send.sent_at) == (WelcomeSend.Status.FAILED, 41050, None)
    assert emulated.welcome_messages() == []
    # Visible on the customer's timeline too, with WeCom's reason; nothing claims it was sent.
    failed = Event.objects.get(type="welcome.failed", customer_id=added.relation.customer_id)
    assert (failed.properties["errcode"], failed.properties["welcome_send_id"]) == (41050, send.id)
    assert failed.properties["error"] == send.error != ""
    assert not Event.objects.filter(type="welcome.sent").exists()
    # The add itself is still attributed and tagged.
    assert CustomerTag.objects.filter(customer_id=added.relation.customer_id).count() == 1


def test_most_specific_welcome_wins_and_unknown_states_get_the_default(
    world: World,
    connected: WeComConnection,
    emulated: Emulated,
    django_capture_on_commit_callbacks: CaptureOnCommit,
) -> None:
    hq = world.actor("hq")
    welcome_message_save(actor=hq, scope=WelcomeMessage.Scope.DEFAULT, text="欢迎来到澄光，{客户昵称}")
    welcome_message_save(actor=hq, scope=WelcomeMessage.Scope.GUIDE, guide_id=world.guides["G2"].id, text="我是{guide}")
    coded = _code(world, welcome_text="活码欢迎语")
    plain = _code(world, name="无欢迎语", state="plain", guide_ids=[world.guides["G2"].id], welcome_text="")

    scan(emulated, django_capture_on_commit_callbacks, coded, name="甲")
    scan(emulated, django_capture_on_commit_callbacks, plain, name="乙")
    # A state no code owns, and a guide without a welcome of their own: the brand default.
    stray = scan(emulated, django_capture_on_commit_callbacks, userid="guide3", state="unknown-ad", name="丙")

    texts = [m["text"] for m in emulated.welcome_messages()]
    assert texts == ["活码欢迎语", "我是导购2", "欢迎来到澄光，丙"]
    assert stray.send.live_code_id is None


def test_an_add_without_welcome_code_is_recorded_as_skipped(
    world: World,
    connected: WeComConnection,
    emulated: Emulated,
    django_capture_on_commit_callbacks: CaptureOnCommit,
) -> None:
    code = _code(world)
    added = scan(emulated, django_capture_on_commit_callbacks, code, welcome_code=False)
    assert (added.send.status, added.send.error) == (WelcomeSend.Status.SKIPPED, "the add came without a welcome code")
    assert emulated.welcome_messages() == []


def test_a_paused_code_still_attributes_but_sends_the_default_and_no_tags(
    world: World,
    connected: WeComConnection,
    emulated: Emulated,
    django_capture_on_commit_callbacks: CaptureOnCommit,
) -> None:
    hq = world.actor("hq")
    welcome_message_save(actor=hq, scope=WelcomeMessage.Scope.DEFAULT, text="默认欢迎语")
    code = _code(world, fallback_guide_id=world.guides["G3"].id)
    with django_capture_on_commit_callbacks(execute=True):
        live_code_pause(actor=hq, live_code_id=code.id)
    # The printed QR still works: WeCom now sends its scans to the fallback guide.
    assert emulated.way(code.config_id).user == ["guide3"]
    added = scan(emulated, django_capture_on_commit_callbacks, code)
    assert added.userid == "guide3"
    assert added.send.live_code_id == code.id
    assert [m["text"] for m in emulated.welcome_messages()] == ["默认欢迎语"]
    assert not CustomerTag.objects.filter(customer_id=added.relation.customer_id).exists()


def test_image_and_link_attachments_go_out_with_a_fresh_temporary_media_id(
    world: World,
    connected: WeComConnection,
    emulated: Emulated,
    django_capture_on_commit_callbacks: CaptureOnCommit,
) -> None:
    import io

    from PIL import Image

    from siyu.channels.models import WelcomeAsset
    from siyu.channels.services import welcome_asset_upload

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    asset = welcome_asset_upload(
        actor=world.actor("hq"), kind="image", name="新品.png", content=buffer.getvalue(), content_type="image/png"
    )
    link = {"msgtype": "link", "title": "春季新品", "url": "https://brand.example.com/new"}
    code = _code(world, welcome_attachments=[{"msgtype": "image", "asset_id": asset.id}, link])
    scan(emulated, django_capture_on_commit_callbacks, code)
    scan(emulated, django_capture_on_commit_callbacks, code, name="第二位")

    first, second = emulated.welcome_messages()
    media_id = first["attachments"][0]["image"]["media_id"]
    assert media_id in emulated.corp.media  # uploaded through media/upload
    assert first["attachments"][1] == {"msgtype": "link", "link": {"title": "春季新品", "url": link["url"]}}
    # Within its 3 days the media id is reused, not uploaded again.
    assert second["attachments"][0]["image"]["media_id"] == media_id
    assert len(emulated.corp.media) == 1
    assert WelcomeAsset.objects.get().media_id == media_id
