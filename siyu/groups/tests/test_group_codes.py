"""Group live codes (群活码) against the emulator over HTTP: the join way holds the window of groups with room,
switches at a threshold or by schedule, takes in the group WeCom opens when all are full, and says "full" when
it cannot; tag rules send invitations from the guide; migrations count arrivals per source group."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.analytics.models import Event
from siyu.core.errors import Conflict, ValidationFailed
from siyu.core.models import AuditLog, Guide
from siyu.core.scopes import Actor
from siyu.customers.models import Identity
from siyu.emulator.config import EmulatorConfig
from siyu.emulator.core import Emulator
from siyu.emulator.seed import build_corp
from siyu.emulator.server import RunningServer, serve_in_thread
from siyu.groups.models import CustomerGroup, GroupCode, GroupCodeSlot, GroupInvite, MigrationSource
from siyu.groups.selectors import group_code_stats, group_invite_for_tags, group_migration_stats
from siyu.groups.services import (
    GroupCodeInput,
    GroupSlotInput,
    MigrationSourceInput,
    group_code_create,
    group_code_sync,
    group_code_update,
    group_invite_rule_create,
    group_migration_create,
    group_upsert,
)
from siyu.tags.services import customer_tag_add, tag_group_create
from siyu.testing import IMMEDIATE_TASKS
from siyu.wecom import transport
from siyu.wecom.sync import SyncOptions, sync_run
from siyu.wecom.tests.emulated import SPEC, Brand, connect_brand


@pytest.fixture
def small_rooms() -> Iterator[RunningServer]:
    """An emulator whose groups take 20 people through a join way (WeCom's is 200), so filling one is quick."""
    cache.clear()
    server = serve_in_thread(Emulator(EmulatorConfig(join_way_room_limit=20), [build_corp(SPEC)]))
    yield server
    server.stop()
    cache.clear()


@pytest.fixture
def synced(brand: Brand, settings: SettingsWrapper) -> Brand:
    settings.TASKS = IMMEDIATE_TASKS
    sync_run(tenant_id=brand.tenant.id, options=SyncOptions(client_factory=brand.client))
    return brand


@pytest.fixture
def synced_small(db: None, small_rooms: RunningServer, settings: SettingsWrapper) -> Brand:
    settings.TASKS = IMMEDIATE_TASKS
    brand = connect_brand(small_rooms)
    sync_run(tenant_id=brand.tenant.id, options=SyncOptions(client_factory=brand.client))
    return brand


def groups_by_size(brand: Brand) -> list[CustomerGroup]:
    return list(CustomerGroup.objects.filter(tenant=brand.tenant).order_by("member_count", "chat_id"))


def outsiders(brand: Brand) -> list[str]:
    """Customers in no group yet (they can scan a join way)."""
    with brand.server.emulator.lock:
        corp = brand.corp
        inside = {m.userid for chat in corp.group_chats.values() for m in chat.member_list}
        return sorted(e for e, c in corp.contacts.items() if e not in inside and c.follows)


def way(brand: Brand, config_id: str) -> dict[str, Any]:
    with brand.client(brand.connection) as client:
        return dict(client.join_way_get(config_id))


def scan(brand: Brand, config_id: str, external_userid: str, capture: DjangoCaptureOnCommitCallbacks) -> str:
    """A customer scans the code; siyu hears of it as from the chat's callbacks (the group is re-read)."""
    result = brand.admin("simulate/join_way", {"config_id": config_id, "external_userid": external_userid})
    mirror(brand, result["chat_id"], capture)
    return str(result["chat_id"])


def mirror(brand: Brand, chat_id: str, capture: DjangoCaptureOnCommitCallbacks) -> None:
    """What processing the chat's change_external_chat callback does: re-read the group and mirror it."""
    with brand.client(brand.connection) as client:
        chat = client.groupchat_get(chat_id)
    owner = Guide.objects.get(tenant=brand.tenant, wecom_userid=chat["owner"])
    with capture(execute=True):
        group_upsert(actor=Actor.system(brand.tenant.id), data=transport.group_input(chat, owner.id))


def code_input(groups: list[GroupSlotInput], **extra: Any) -> GroupCodeInput:
    values: dict[str, Any] = {"name": "春季会员群", "state": "spring", "room_base_name": "春季群", **extra}
    return GroupCodeInput(groups=groups, **values)


def test_a_code_switches_to_the_next_group_when_one_reaches_its_threshold(
    synced: Brand, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    hq = Actor.system(synced.tenant.id)
    small, second = groups_by_size(synced)[:2]  # 6 and 16 members
    code = group_code_create(
        actor=hq,
        data=code_input([GroupSlotInput(small.id, threshold=small.member_count + 2), GroupSlotInput(second.id)]),
    )
    assert code.sync_error == ""
    assert code.way_chat_ids == [small.chat_id, second.chat_id]
    assert way(synced, code.config_id)["chat_id_list"] == [small.chat_id, second.chat_id]
    assert way(synced, code.config_id)["state"] == "spring"
    qr = code.qr_code
    assert qr.endswith(f"/emulator/qr/{code.config_id}.svg")

    people = outsiders(synced)
    assert scan(synced, code.config_id, people[0], django_capture_on_commit_callbacks) == small.chat_id
    code.refresh_from_db()
    assert code.way_chat_ids == [small.chat_id, second.chat_id]  # one short of the threshold: no switch yet
    assert scan(synced, code.config_id, people[1], django_capture_on_commit_callbacks) == small.chat_id

    # The first group reached its threshold: the same QR now sends newcomers to the second group.
    code.refresh_from_db()
    assert code.way_chat_ids == [second.chat_id]
    assert way(synced, code.config_id)["chat_id_list"] == [second.chat_id]
    assert code.qr_code == qr
    assert GroupCodeSlot.objects.get(code=code, group=small).full_at is not None
    assert scan(synced, code.config_id, people[2], django_capture_on_commit_callbacks) == second.chat_id
    # Re-running the switch changes nothing in WeCom or siyu.
    again = group_code_sync(tenant_id=synced.tenant.id, code_id=code.id)
    assert again is not None
    assert again.way_chat_ids == [second.chat_id]

    stats = group_code_stats(actor=hq, code_id=code.id)
    per_group = {g.slot.group_id: (g.joins, g.leaves, g.net, g.members, g.in_way, g.full) for g in stats.groups}
    assert per_group == {
        small.id: (2, 0, 2, small.member_count + 2, False, True),
        second.id: (1, 0, 1, second.member_count + 1, True, False),
    }
    assert (stats.joins, stats.net, stats.daily.joins[-1], sum(stats.daily.joins)) == (3, 3, 3, 3)


def test_schedule_mode_moves_the_way_when_the_window_turns(synced: Brand) -> None:
    hq = Actor.system(synced.tenant.id)
    first, second = groups_by_size(synced)[:2]
    now = timezone.now()
    turn = now + dt.timedelta(days=1)
    code = group_code_create(
        actor=hq,
        data=code_input(
            [
                GroupSlotInput(first.id, active_from=now - dt.timedelta(hours=1), active_until=turn),
                GroupSlotInput(second.id, active_from=turn),
            ],
            switch_mode=GroupCode.SwitchMode.SCHEDULE,
        ),
    )
    assert way(synced, code.config_id)["chat_id_list"] == [first.chat_id]
    later = group_code_sync(tenant_id=synced.tenant.id, code_id=code.id, now=turn + dt.timedelta(minutes=1))
    assert later is not None
    assert later.way_chat_ids == [second.chat_id]
    assert way(synced, code.config_id)["chat_id_list"] == [second.chat_id]


def test_when_all_groups_are_full_wecom_opens_the_next_and_the_code_takes_it_in(
    synced_small: Brand, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    brand = synced_small
    hq = Actor.system(brand.tenant.id)
    group = next(g for g in groups_by_size(brand) if g.member_count == 17)
    code = group_code_create(actor=hq, data=code_input([GroupSlotInput(group.id, threshold=18)]))
    people = outsiders(brand)
    scan(brand, code.config_id, people[0], django_capture_on_commit_callbacks)
    code.refresh_from_db()
    # At its threshold and the only group: the way keeps it so WeCom fills it to its limit, then opens a new one.
    assert (code.way_chat_ids, code.is_full) == ([group.chat_id], False)
    scan(brand, code.config_id, people[1], django_capture_on_commit_callbacks)
    scan(brand, code.config_id, people[2], django_capture_on_commit_callbacks)  # the group holds 20 now
    opened = scan(brand, code.config_id, people[3], django_capture_on_commit_callbacks)

    assert opened != group.chat_id
    new = CustomerGroup.objects.get(tenant=brand.tenant, chat_id=opened)
    assert new.name == "春季群1"
    slot = GroupCodeSlot.objects.get(code=code, group=new)
    assert (slot.auto_created, slot.threshold, slot.position) == (True, 180, 1)
    code.refresh_from_db()
    assert code.way_chat_ids == [opened]
    assert way(brand, code.config_id)["chat_id_list"] == [opened]
    assert code.room_base_id == 2  # WeCom's counter, kept when siyu rewrites the way
    assert (
        AuditLog.objects.filter(tenant=brand.tenant, action="group_code.group_added", target_id=str(code.id)).count()
        == 1
    )


def test_without_auto_create_a_full_code_says_so_and_a_full_group_is_refused(
    synced: Brand, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    hq = Actor.system(synced.tenant.id)
    small, other = groups_by_size(synced)[:2]
    code = group_code_create(
        actor=hq, data=code_input([GroupSlotInput(small.id, threshold=small.member_count + 1)], auto_create=False)
    )
    assert code.is_full is False
    scan(synced, code.config_id, outsiders(synced)[0], django_capture_on_commit_callbacks)
    code.refresh_from_db()
    assert code.is_full is True

    with pytest.raises(Conflict, match="is full") as refused:
        group_code_update(
            actor=hq,
            code_id=code.id,
            data=code_input([GroupSlotInput(small.id), GroupSlotInput(other.id, threshold=other.member_count)]),
        )
    assert refused.value.field == "group_ids"
    # Room in another group: the code is no longer full.
    code = group_code_update(
        actor=hq,
        code_id=code.id,
        data=code_input(
            [GroupSlotInput(small.id, threshold=small.member_count + 1), GroupSlotInput(other.id)], auto_create=False
        ),
    )
    assert (code.is_full, code.way_chat_ids) == (False, [other.chat_id])


@pytest.mark.parametrize(
    ("state", "error"),
    [
        ("x" * 31, ValidationFailed),
        ("", ValidationFailed),
        ("有中文", ValidationFailed),
        ("a b", ValidationFailed),
        ("mg12s3", ValidationFailed),
        ("spring", Conflict),
    ],
)
def test_state_is_validated_and_unique_per_brand(synced: Brand, state: str, error: type[Exception]) -> None:
    hq = Actor.system(synced.tenant.id)
    group = groups_by_size(synced)[0]
    group_code_create(actor=hq, data=code_input([GroupSlotInput(group.id)]))
    before = GroupCode.objects.count()
    with pytest.raises(error) as raised:
        group_code_create(actor=hq, data=code_input([GroupSlotInput(group.id)], state=state))
    assert raised.value.field == "state"  # type: ignore[attr-defined]
    assert GroupCode.objects.count() == before


def test_a_tag_rule_invites_the_customer_from_their_guide_and_sees_them_join(
    synced: Brand, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    hq = Actor.system(synced.tenant.id)
    group = groups_by_size(synced)[0]
    code = group_code_create(actor=hq, data=code_input([GroupSlotInput(group.id)], invite_text="欢迎加入春季会员群"))
    vip = tag_group_create(actor=hq, name="会员", tags=["VIP"]).tags.get()
    group_invite_rule_create(actor=hq, tag_id=vip.id, code_id=code.id)
    assert group_invite_for_tags(tenant_id=synced.tenant.id, tag_ids=[vip.id]) == code
    external = outsiders(synced)[0]
    customer_id = Identity.objects.get(tenant=synced.tenant, value=external).customer_id

    with django_capture_on_commit_callbacks(execute=True):
        customer_tag_add(actor=hq, customer_id=customer_id, tag_id=vip.id)

    invite = GroupInvite.objects.get(tenant=synced.tenant, customer_id=customer_id)
    assert (invite.status, invite.error) == (GroupInvite.Status.INVITED, "")
    with synced.server.emulator.lock:
        msg = synced.corp.group_msgs[invite.msgid]
        sent = (msg.chat_type, msg.creator, msg.text, [(r.userid, r.external_userid) for r in msg.results])
        link = msg.attachments[0]["link"]
        follower = max(synced.corp.contacts[external].follows.values(), key=lambda f: f.createtime).userid
    assert sent == ("single", follower, {"content": "欢迎加入春季会员群"}, [(follower, external)])
    assert invite.guide is not None
    assert invite.guide.wecom_userid == follower
    assert link["url"].endswith(f"/g/{code.public_token}/")
    assert link["picurl"] == code.qr_code
    assert Event.objects.filter(tenant=synced.tenant, type="group.invited", customer_id=customer_id).count() == 1

    # Tagging again (or another tag of the same rule) sends nothing twice.
    with django_capture_on_commit_callbacks(execute=True):
        customer_tag_add(actor=hq, customer_id=customer_id, tag_id=vip.id)
    assert GroupInvite.objects.filter(tenant=synced.tenant).count() == 1

    scan(synced, code.config_id, external, django_capture_on_commit_callbacks)
    invite.refresh_from_db()
    assert invite.status == GroupInvite.Status.JOINED
    assert invite.joined_at is not None


def test_migration_rate_per_source_group_from_arrivals_through_its_poster(
    synced: Brand, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    hq = Actor.system(synced.tenant.id)
    group = groups_by_size(synced)[0]
    code = group_code_create(actor=hq, data=code_input([GroupSlotInput(group.id)]))
    today = timezone.localdate()
    migration = group_migration_create(
        actor=hq,
        name="老会员群升级",
        code_id=code.id,
        starts_on=today,
        ends_on=today + dt.timedelta(days=6),
        caption="服务升级：扫码进入新群领福利",
        sources=[
            MigrationSourceInput(name="个微一群", member_count=10),
            MigrationSourceInput(name="个微二群", members="小王\n小李\n\n老张\n阿芳\n"),
        ],
    )
    one, two = MigrationSource.objects.filter(migration=migration).order_by("position")
    assert (one.state, two.state) == (f"mg{migration.id}s{one.id}", f"mg{migration.id}s{two.id}")
    assert two.member_count == 4
    assert "小王" not in two.members_enc  # encrypted at rest
    assert way(synced, one.config_id)["chat_id_list"] == [group.chat_id]
    assert one.qr_code
    assert one.qr_code != code.qr_code

    people = outsiders(synced)
    for person in people[:3]:
        scan(synced, one.config_id, person, django_capture_on_commit_callbacks)
    scan(synced, two.config_id, people[3], django_capture_on_commit_callbacks)

    stats = group_migration_stats(actor=hq, migration_id=migration.id)
    assert [(s.source.name, s.migrated, s.rate) for s in stats.sources] == [("个微一群", 3, 0.3), ("个微二群", 1, 0.25)]
    assert (stats.migrated, stats.source_members, round(stats.rate, 4)) == (4, 14, round(4 / 14, 4))
    assert stats.daily.days[0] == today.isoformat()
    assert stats.daily.joins[0] == 4
