"""Live code services against the emulator over HTTP: validation, idempotent creation, strategies, caps, schedule."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.channels import routing
from siyu.channels.models import LiveCode
from siyu.channels.services import (
    GuideOption,
    live_code_create,
    live_code_delete,
    live_code_pause,
    live_code_rebalance,
    live_code_resume,
    live_code_update,
    welcome_message_save,
)
from siyu.channels.tests.conftest import Emulated
from siyu.channels.tests.support import CaptureOnCommit, scan
from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog, Guide
from siyu.testing import IMMEDIATE_TASKS, World
from siyu.wecom.models import WeComConnection


@pytest.fixture(autouse=True)
def immediate(settings: SettingsWrapper) -> None:
    settings.TASKS = IMMEDIATE_TASKS


def _ids(world: World, *keys: str) -> list[int]:
    return [world.guides[k].id for k in keys]


# -- validation ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"state": "x" * 31}, "state", "state is longer than 30 characters"),
        ({"state": "有空格 的state"}, "state", "state may only hold"),
        ({"guide_ids": []}, "guide_ids", "choose at least one guide"),
        ({"welcome_text": "你好{昵称}"}, "welcome_text", "unknown placeholder {昵称}"),
        ({"welcome_text": "单个{括号"}, "welcome_text", "lone brace"),
        (
            {"welcome_attachments": [{"msgtype": "link", "title": "t", "url": "ftp://x"}]},
            "welcome_attachments.0.url",
            "http(s)",
        ),
        (
            {"welcome_attachments": [{"msgtype": "link", "title": "t", "url": "https://a.cn"}] * 10},
            "welcome_attachments",
            "at most 9",
        ),
        ({"guide_options": {0: {"daily_cap": 0}}}, "daily_cap", "daily cap"),
        ({"guide_ids": [999_999]}, "guide_ids", "unknown guide 999999"),
        ({"tag_ids": [999_999]}, "tag_ids", "unknown tag 999999"),
        (
            {"welcome_attachments": [{"msgtype": "file", "asset_id": 12345}]},
            "welcome_attachments.0.asset_id",
            "not an uploaded",
        ),
        *(  # what urlsplit cannot parse is a bad URL, not a crash
            (
                {"welcome_attachments": [{"msgtype": "link", "title": "t", "url": url}]},
                "welcome_attachments.0.url",
                "must be an http(s) URL",
            )
            for url in ("http://]", "http://[::1", "https://shop.example.com:port/")
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
    world: World, connected: WeComConnection, emulated: Emulated, kwargs: dict[str, object], field: str, message: str
) -> None:
    ways_before = set(emulated.corp.contact_ways)
    args: dict[str, object] = {"name": "海报", "guide_ids": _ids(world, "G1")}
    args.update(kwargs)
    if "guide_options" in kwargs:
        args["guide_options"] = {world.guides["G1"].id: {"daily_cap": 0}}
    # Unknown ids are "not found" (404), like any id of another brand; malformed values are invalid (422).
    missing = message.startswith(("unknown guide", "unknown tag")) or "not an uploaded" in message
    with pytest.raises(NotFound if missing else ValidationFailed) as raised:
        live_code_create(actor=world.actor("hq"), **args)  # type: ignore[arg-type]
    assert raised.value.field == field
    assert message in raised.value.message
    assert not LiveCode.objects.exists()
    assert set(emulated.corp.contact_ways) == ways_before


def test_a_guide_of_another_brand_or_outside_the_scope_is_unknown(
    world: World, connected: WeComConnection, emulated: Emulated
) -> None:
    with pytest.raises(NotFound, match="unknown guide") as raised:
        live_code_create(actor=world.actor("hq"), name="x", guide_ids=[world.guides["GB"].id])
    assert raised.value.field == "guide_ids"
    with pytest.raises(NotFound, match="unknown guide"):
        live_code_create(actor=world.actor("store1"), name="x", guide_ids=_ids(world, "G2"))
    with pytest.raises(PermissionDenied):
        live_code_create(actor=world.actor("guide1"), name="x", guide_ids=_ids(world, "G1"))


def test_a_state_is_one_codes_until_that_code_is_deleted(
    world: World, connected: WeComConnection, emulated: Emulated
) -> None:
    hq = world.actor("hq")
    first = live_code_create(actor=hq, name="一", guide_ids=_ids(world, "G1"), state="ad-2026")
    with pytest.raises(Conflict) as raised:
        live_code_create(actor=hq, name="二", guide_ids=_ids(world, "G2"), state="ad-2026")
    assert raised.value.field == "state"
    live_code_delete(actor=hq, live_code_id=first.id)
    assert first.config_id not in emulated.corp.contact_ways  # the printed QR stops working
    second = live_code_create(actor=hq, name="二", guide_ids=_ids(world, "G2"), state="ad-2026")
    assert second.config_id != first.config_id
    assert list(AuditLog.objects.filter(target_type="live_code").values_list("action", flat=True).order_by("id")) == [
        "live_code.create",
        "live_code.delete",
        "live_code.create",
    ]


def test_without_a_wecom_connection_creation_is_refused(world: World) -> None:
    with pytest.raises(Conflict, match="connect the brand's WeCom first"):
        live_code_create(actor=world.actor("hq"), name="x", guide_ids=[world.guides["G1"].id])
    assert not LiveCode.objects.exists()


def test_create_after_a_lost_answer_finds_the_way_by_its_state(
    world: World, connected: WeComConnection, emulated: Emulated
) -> None:
    # WeCom creates the way but the answer is cut in half: the client cannot know the config_id.
    emulated.admin("faults", {"rate_truncate": 1.0, "paths": ["/cgi-bin/externalcontact/add_contact_way"]})
    code = live_code_create(actor=world.actor("hq"), name="断线", guide_ids=_ids(world, "G1"), state="lost-answer")
    emulated.admin("faults", {"rate_truncate": 0.0})
    ways = [w for w in emulated.corp.contact_ways.values() if w.state == "lost-answer"]
    assert len(ways) == 1  # found again by its state, not created twice
    assert code.config_id == ways[0].config_id
    assert LiveCode.objects.get().config_id == ways[0].config_id


def test_a_create_interrupted_before_wecom_resumes_when_run_again(
    world: World, connected: WeComConnection, emulated: Emulated
) -> None:
    emulated.admin("faults", {"rate_http_5xx": 1.0, "paths": ["/cgi-bin/externalcontact/add_contact_way"]})
    hq = world.actor("hq")
    with pytest.raises(Exception, match="WeCom did not answer"):
        live_code_create(actor=hq, name="重试", guide_ids=_ids(world, "G1"), state="retry-me")
    pending = LiveCode.objects.get(state="retry-me")
    assert pending.config_id == ""
    emulated.admin("faults", {"rate_http_5xx": 0.0})
    code = live_code_create(actor=hq, name="重试", guide_ids=_ids(world, "G1"), state="retry-me")
    assert code.id == pending.id
    assert code.config_id in emulated.corp.contact_ways
    assert LiveCode.objects.count() == 1


# -- strategies ----------------------------------------------------------------------------------------------------


def test_round_robin_hands_each_scan_to_the_next_guide(
    world: World, connected: WeComConnection, emulated: Emulated, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    code = live_code_create(actor=world.actor("hq"), name="轮流", guide_ids=_ids(world, "G1", "G2", "G3"))
    got = [scan(emulated, django_capture_on_commit_callbacks, code, name=f"客{i}").userid for i in range(4)]
    assert got == ["guide1", "guide2", "guide3", "guide1"]


def test_a_daily_cap_moves_on_then_falls_back_to_the_brand_ip(
    world: World, connected: WeComConnection, emulated: Emulated, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    g1, g2 = _ids(world, "G1", "G2")
    code = live_code_create(
        actor=world.actor("hq"),
        name="限额",
        guide_ids=[g1, g2],
        strategy=LiveCode.Strategy.LEAST_LOADED,
        guide_options={g1: GuideOption(daily_cap=1), g2: GuideOption(daily_cap=1)},
    )
    got = [scan(emulated, django_capture_on_commit_callbacks, code, name=f"客{i}").userid for i in range(3)]
    # Both guides reached their cap of one add today: the brand IP account takes the rest.
    assert got == ["guide1", "guide2", "brand_ip"]
    assert routing.pick(LiveCode.objects.get(id=code.id)).reason == "brand_ip"
    assert LiveCode.objects.get(id=code.id).rebalance_at == routing.day_start(timezone.now()) + dt.timedelta(days=1)


def test_a_fallback_guide_comes_before_the_brand_ip(
    world: World, connected: WeComConnection, emulated: Emulated
) -> None:
    g1 = world.guides["G1"]
    code = live_code_create(
        actor=world.actor("hq"), name="兜底", guide_ids=[g1.id], fallback_guide_id=world.guides["G3"].id
    )
    Guide.objects.filter(id=g1.id).update(status=Guide.Status.DEPARTED)  # the only guide left WeCom
    assert live_code_rebalance(live_code_id=code.id) == "moved to guide3 (fallback)"
    assert emulated.way(code.config_id).user == ["guide3"]
    assert live_code_rebalance(live_code_id=code.id) == "unchanged"


def test_least_loaded_picks_the_guide_with_fewest_adds_today(
    world: World, connected: WeComConnection, emulated: Emulated, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    code = live_code_create(
        actor=world.actor("hq"), name="均衡", guide_ids=_ids(world, "G1", "G2"), strategy=LiveCode.Strategy.LEAST_LOADED
    )
    got = [scan(emulated, django_capture_on_commit_callbacks, code, name=f"客{i}").userid for i in range(4)]
    assert sorted(got) == ["guide1", "guide1", "guide2", "guide2"]


def test_schedule_lists_only_guides_on_duty(
    world: World, connected: WeComConnection, emulated: Emulated, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    g1, g2 = _ids(world, "G1", "G2")
    now = timezone.localtime()
    today = now.weekday()
    on = [{"days": [today], "start": "00:00", "end": "24:00"}]
    off = [{"days": [(today + 1) % 7], "start": "09:00", "end": "18:00"}]
    code = live_code_create(
        actor=world.actor("hq"),
        name="排班",
        guide_ids=[g1, g2],
        strategy=LiveCode.Strategy.SCHEDULE,
        guide_options={g1: {"schedule": off}, g2: {"schedule": on}},
    )
    assert emulated.way(code.config_id).user == ["guide2"]
    stored = LiveCode.objects.get(id=code.id)
    assert stored.rebalance_at is not None
    assert stored.rebalance_at > now
    # The off-duty guide's window opening moves the code (the periodic rebalance).
    with django_capture_on_commit_callbacks(execute=True):
        live_code_update(
            actor=world.actor("hq"), live_code_id=code.id, guide_options={g1: {"schedule": on}, g2: {"schedule": off}}
        )
    assert emulated.way(code.config_id).user == ["guide1"]


def test_bad_schedules_are_refused(world: World, connected: WeComConnection, emulated: Emulated) -> None:
    g1 = world.guides["G1"].id
    for schedule, message in (
        ([{"days": [7], "start": "09:00", "end": "18:00"}], "weekdays"),
        ([{"days": [1], "start": "9am", "end": "18:00"}], "HH:MM"),
    ):
        with pytest.raises(ValidationFailed, match=message):
            live_code_create(
                actor=world.actor("hq"), name="x", guide_ids=[g1], guide_options={g1: {"schedule": schedule}}
            )


def test_update_pushes_the_new_state_and_guides_to_wecom(
    world: World, connected: WeComConnection, emulated: Emulated, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    hq = world.actor("hq")
    code = live_code_create(actor=hq, name="改", guide_ids=_ids(world, "G1"), state="old-state")
    with django_capture_on_commit_callbacks(execute=True):
        live_code_update(actor=hq, live_code_id=code.id, state="new-state", guide_ids=_ids(world, "G2"), name="改过")
    way = emulated.way(code.config_id)
    assert (way.state, way.user) == ("new-state", ["guide2"])
    stored = LiveCode.objects.get(id=code.id)
    assert (stored.name, stored.state, stored.wecom_state) == ("改过", "new-state", "new-state")
    with pytest.raises(NotFound):  # store S1's manager does not even see a code of S2's guide
        live_code_update(actor=world.actor("store1"), live_code_id=code.id, name="x")
    shared = live_code_create(actor=hq, name="共用", guide_ids=_ids(world, "G1", "G2"))
    with pytest.raises(PermissionDenied):  # sees it (G1 is theirs) but cannot change what reaches G2
        live_code_update(actor=world.actor("store1"), live_code_id=shared.id, name="x")


def test_pause_and_resume(
    world: World, connected: WeComConnection, emulated: Emulated, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    hq = world.actor("hq")
    code = live_code_create(actor=hq, name="暂停", guide_ids=_ids(world, "G1"))
    with django_capture_on_commit_callbacks(execute=True):
        live_code_pause(actor=hq, live_code_id=code.id)
    assert emulated.way(code.config_id).user == ["brand_ip"]
    with django_capture_on_commit_callbacks(execute=True):
        live_code_resume(actor=hq, live_code_id=code.id)
    assert emulated.way(code.config_id).user == ["guide1"]
    assert LiveCode.objects.get(id=code.id).status == LiveCode.Status.ACTIVE


def test_default_welcome_is_hq_only(world: World) -> None:
    with pytest.raises(PermissionDenied):
        welcome_message_save(actor=world.actor("store1"), scope="default", text="hi")
    saved = welcome_message_save(actor=world.actor("hq"), scope="default", text="hi {nickname}")
    assert saved is not None
    assert saved.text == "hi {nickname}"
    assert welcome_message_save(actor=world.actor("hq"), scope="default", text="") is None


def test_an_overnight_window_runs_past_midnight() -> None:
    import datetime as dt

    window = routing.windows_of([{"days": [4], "start": "22:00", "end": "02:00"}])[0]  # Friday night
    friday = dt.datetime(2026, 1, 9, 23, 30, tzinfo=dt.UTC)
    assert window.contains(friday)
    assert not window.contains(friday.replace(hour=21))
    assert window.contains(friday.replace(hour=1))
