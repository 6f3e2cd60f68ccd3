"""`siyu sync` against a seeded emulator corp over real HTTP: the full pull, idempotence, changes between runs.

Ground truth is the emulator's own corp (what WeCom holds); siyu's state is read from its tables; both are keyed by
WeCom ids (see emulated.py), so "the sync is right" is "the two are equal".
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.analytics.models import Event
from siyu.core.errors import PermissionDenied, ValidationFailed
from siyu.core.models import AuditLog, Guide, Role
from siyu.core.scopes import Actor
from siyu.customers.models import FollowRelation, LossAlert
from siyu.groups.models import CustomerGroup, GroupMember
from siyu.tags.models import CustomerTag, Tag
from siyu.testing import IMMEDIATE_TASKS
from siyu.wecom.models import SyncRun, SyncSeen
from siyu.wecom.selectors import access_sync_run, sync_history, sync_status
from siyu.wecom.services import SYNC_PHASES, sync_request
from siyu.wecom.sync import SyncOptions, sync_run
from siyu.wecom.tests.emulated import Brand, db_state, event_counts, expected_event_counts, expected_state


def options(brand: Brand, **kwargs: Any) -> SyncOptions:
    return SyncOptions(client_factory=brand.client, sleep=lambda _: None, **kwargs)


def assert_mirrors(brand: Brand, *, vanished: dict[str, str] | None = None) -> None:
    """siyu holds what the emulator holds; `vanished` members (userid → name) are kept as departed guides."""
    with brand.server.emulator.lock:
        expected = expected_state(brand.corp)
    for userid, name in (vanished or {}).items():
        expected["guides"][userid] = (name, Guide.Status.DEPARTED)
    actual = db_state(brand.tenant)
    for key, value in expected.items():
        assert actual[key] == value, key


def changed(run: SyncRun) -> dict[str, int]:
    """Everything a run changed, per phase and kind (zeros dropped)."""
    return {
        f"{phase}.{key}": value
        for phase, counts in run.counts.items()
        for key, value in counts.items()
        if key != "unchanged" and value
    }


def test_a_full_sync_mirrors_the_corp(brand: Brand) -> None:
    run = sync_run(tenant_id=brand.tenant.id, options=options(brand))

    assert (run.status, run.attempts, run.error, run.phases) == (SyncRun.Status.SUCCEEDED, 1, "", list(SYNC_PHASES))
    assert run.finished_at is not None
    assert_mirrors(brand)
    with brand.server.emulator.lock:
        assert event_counts(brand.tenant) == expected_event_counts(brand.corp)
        corp = brand.corp
        follows = sum(len(c.follows) for c in corp.contacts.values())
        # The seed gives some customers two or three followers: one customer, several relations.
        assert follows > len(corp.contacts)
        assert run.counts["members"] == {"created": len(corp.members), "updated": 0, "unchanged": 0, "deleted": 0}
        assert run.counts["contacts"]["created"] == follows
        assert run.counts["contacts"]["customers_created"] == len(corp.contacts)
        assert run.counts["groups"]["created"] == len(corp.group_chats)
    assert run.counts["tags"]["created"] == 4 + 17  # the seed's 4 tag groups with 17 tags
    # Scratch rows are gone once the run is done.
    assert not SyncSeen.objects.filter(run=run).exists()


def test_a_second_run_changes_nothing(brand: Brand) -> None:
    sync_run(tenant_id=brand.tenant.id, options=options(brand))
    events, audits, state = event_counts(brand.tenant), AuditLog.objects.count(), db_state(brand.tenant)

    again = sync_run(tenant_id=brand.tenant.id, options=options(brand))

    assert again.status == SyncRun.Status.SUCCEEDED
    assert changed(again) == {}
    assert again.counts["contacts"]["unchanged"] == FollowRelation.objects.filter(tenant=brand.tenant).count()
    assert again.counts["groups"]["unchanged"] == CustomerGroup.objects.filter(tenant=brand.tenant).count()
    assert event_counts(brand.tenant) == events
    assert db_state(brand.tenant) == state
    # Only the run's own start/finish rows: no service found anything to change.
    assert list(AuditLog.objects.order_by("id").values_list("action", flat=True)[audits:]) == [
        "wecom_sync.start",
        "wecom_sync.finish",
    ]


def test_changes_in_wecom_between_runs_are_mirrored(brand: Brand) -> None:
    sync_run(tenant_id=brand.tenant.id, options=options(brand))
    corp = brand.corp
    with brand.server.emulator.lock:
        two_followers = next(c for c in corp.contacts.values() if len(c.follows) >= 2)
        removed_follower = next(iter(two_followers.follows))
        # Tags only the removed follower gave: the customer loses them with the relation.
        lost_tags = set(two_followers.follows[removed_follower].tag_ids) - {
            t for u, f in two_followers.follows.items() if u != removed_follower for t in f.tag_ids
        }
        edited = next(c for c in corp.contacts.values() if len(c.follows) == 1)
        edited_userid = next(iter(edited.follows))
        dropped_tag = edited.follows[edited_userid].tag_ids[0]
        group_ids = list(corp.tag_groups)
        new_tag_group = group_ids[1]
        deleted_tag = corp.tag_groups[group_ids[2]].tags[0].id
        chats = sorted(corp.group_chats.values(), key=lambda c: c.chat_id)
        left_chat, renamed_chat, dismissed_chat = chats[0], chats[1], chats[2]
        leaver = next(m.userid for m in left_chat.member_list if m.type == 2)

    # What people do in WeCom meanwhile (callbacks are not delivered anywhere: only the sync can notice).
    brand.admin("simulate/del_contact", {"userid": removed_follower, "external_userid": two_followers.external_userid})
    edit = {"userid": edited_userid, "external_userid": edited.external_userid, "remark": "老客户"}
    brand.admin("simulate/edit_contact", {**edit, "remove_tag": [dropped_tag]})
    new_tag = brand.admin("simulate/tags/create", {"group_id": new_tag_group, "tags": ["敏感肌"]})["tag_ids"][0]
    brand.admin("simulate/tags/delete", {"tag_ids": [deleted_tag]})
    brand.admin("simulate/chat/leave", {"chat_id": left_chat.chat_id, "members": [leaver]})
    brand.admin("simulate/chat/update", {"chat_id": renamed_chat.chat_id, "name": "新名字", "notice": "周末有活动"})
    brand.admin("simulate/chat/dismiss", {"chat_id": dismissed_chat.chat_id})
    newcomer = brand.admin("simulate/add_contact", {"userid": edited_userid, "name": "新客户", "gender": 2})
    # A member who resigned (still listed, status 5) and one the app can no longer see at all.
    exported = brand.admin("corps/export")
    members = exported["members"]
    resigned = next(
        u for u in members if u.startswith("guide") and u != edited_userid and u not in two_followers.follows
    )
    members[resigned]["status"] = 5
    del members["hq_admin"]
    brand.admin("corps", exported)
    events_before = event_counts(brand.tenant)

    run = sync_run(tenant_id=brand.tenant.id, options=options(brand))

    assert_mirrors(brand, vanished={"hq_admin": "总部管理员"})
    dismissed = CustomerGroup.objects.get(tenant=brand.tenant, chat_id=dismissed_chat.chat_id)
    assert (dismissed.status, dismissed.member_count) == (CustomerGroup.Status.DISMISSED, 0)
    assert not GroupMember.objects.filter(group=dismissed, left_at__isnull=True).exists()
    relation = FollowRelation.objects.get(
        tenant=brand.tenant, external_userid=two_followers.external_userid, guide__wecom_userid=removed_follower
    )
    assert relation.status == FollowRelation.Status.DELETED_BY_GUIDE
    # The loss WeCom's callback never told siyu about is alerted when the sync finds it.
    alert = LossAlert.objects.get(relation=relation)
    assert (alert.kind, alert.guide_id) == (LossAlert.Kind.DELETED_BY_GUIDE, relation.guide_id)
    assert not Tag.objects.filter(tenant=brand.tenant, wecom_tag_id=deleted_tag).exists()
    assert Tag.objects.get(tenant=brand.tenant, wecom_tag_id=new_tag).name == "敏感肌"
    assert dict(Guide.objects.filter(tenant=brand.tenant, wecom_userid__in=[resigned, "hq_admin"]).values_list(
        "wecom_userid", "status"
    )) == {resigned: Guide.Status.DEPARTED, "hq_admin": Guide.Status.DEPARTED}
    assert not CustomerTag.objects.filter(
        customer__identities__value=edited.external_userid, tag__wecom_tag_id=dropped_tag
    ).exists()

    with brand.server.emulator.lock:
        dismissed_customers = sum(1 for m in dismissed_chat.member_list if m.type == 2)
    new_events = event_counts(brand.tenant) - events_before
    assert new_events == {
        "contact.deleted_by_guide": 1,
        # The dropped tag and those of the removed follower; a tag deleted from the library takes its rows along
        # without events.
        "tag.removed": 1 + len(lost_tags),
        "group.left": 1 + dismissed_customers,
        "customer.created": 1,
        "contact.added": 1,
    }
    assert newcomer["external_userid"] in db_state(brand.tenant)["customers"]
    counts = run.counts
    assert (counts["members"]["updated"], counts["members"]["deleted"]) == (1, 1)
    assert (counts["contacts"]["created"], counts["contacts"]["updated"], counts["contacts"]["deleted"]) == (1, 1, 1)
    assert (counts["contacts"]["tags_removed"], counts["tags"]["created"]) == (1 + len(lost_tags), 1)
    assert counts["tags"]["deleted"] == 1
    assert (counts["groups"]["updated"], counts["groups"]["deleted"], counts["groups"]["members_left"]) == (2, 1, 1)


def test_only_the_named_phases_run(brand: Brand) -> None:
    run = sync_run(tenant_id=brand.tenant.id, options=options(brand, phases=["tags", "members"]))

    assert run.phases == ["members", "tags"]  # always in dependency order
    assert set(run.counts) == {"members", "tags"}
    assert Tag.objects.filter(tenant=brand.tenant).count() == 17
    assert not FollowRelation.objects.filter(tenant=brand.tenant).exists()
    assert not CustomerGroup.objects.filter(tenant=brand.tenant).exists()


def test_contacts_before_members_creates_placeholder_guides_the_member_sync_names(brand: Brand) -> None:
    sync_run(tenant_id=brand.tenant.id, options=options(brand, phases=["contacts"]))
    with brand.server.emulator.lock:
        userid, member = next((u, m) for u, m in brand.corp.members.items() if u.startswith("guide"))
    assert Guide.objects.get(tenant=brand.tenant, wecom_userid=userid).name == userid

    run = sync_run(tenant_id=brand.tenant.id, options=options(brand, phases=["members"]))

    assert Guide.objects.get(tenant=brand.tenant, wecom_userid=userid).name == member.name
    assert run.counts["members"]["updated"] >= 1


def test_the_sync_status_and_history_selectors(brand: Brand) -> None:
    first = sync_run(tenant_id=brand.tenant.id, options=options(brand, phases=["tags"]))
    second = sync_run(tenant_id=brand.tenant.id, options=options(brand, phases=["tags"]))
    hq = Actor.system(brand.tenant.id)

    history = sync_history(actor=hq)
    assert [s.id for s in history] == [second.id, first.id]
    assert history[1].totals == {"created": 21, "updated": 0, "unchanged": 0, "deleted": 0}
    assert history[0].totals == {"created": 0, "updated": 0, "unchanged": 21, "deleted": 0}
    assert (history[0].changed, history[0].status, history[0].error) == (0, SyncRun.Status.SUCCEEDED, "")
    status = sync_status(actor=hq)
    assert status.latest is not None
    assert status.last_success is not None
    assert (status.running, status.latest.id, status.last_success.id) == (False, second.id, second.id)
    # Sync runs are HQ's business, like the connection: a store manager sees none.
    manager = Actor(user_id=None, tenant_id=brand.tenant.id, role=Role.STORE_MANAGER, store_id=1)
    assert sync_history(actor=manager) == []
    assert sync_status(actor=manager).latest is None
    assert access_sync_run(actor=hq, sync_run_id=first.id) == first


# -- the command -----------------------------------------------------------------------------------------------


def test_the_command_syncs_a_brand_with_progress_and_a_summary(
    brand: Brand, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("sync", "--tenant", brand.tenant.slug)
    out = capsys.readouterr().out

    assert_mirrors(brand)
    for label in ("Members (guides)", "Corp tags", "Contacts and follow relations", "Customer groups"):
        assert label in out
    run = SyncRun.objects.get(tenant=brand.tenant)
    assert f"Sync #{run.id} of {brand.tenant.slug} done" in out

    call_command("sync", "--tenant", brand.tenant.slug, "--only", "contacts")
    assert "0 changes." in capsys.readouterr().out


def test_the_command_refuses_unknown_phases_and_brands(brand: Brand) -> None:
    with pytest.raises(CommandError, match="unknown phase 'friends'"):
        call_command("sync", "--only", "contacts,friends")
    with pytest.raises(CommandError, match="no brand 'nope'"):
        call_command("sync", "--tenant", "nope")
    assert not SyncRun.objects.exists()


def test_a_failed_run_is_reported_and_the_command_fails(brand: Brand, capsys: pytest.CaptureFixture[str]) -> None:
    brand.admin("faults", {"rate_http_5xx": 1.0, "paths": ["/cgi-bin/externalcontact/get_corp_tag_list"]})

    with pytest.raises(CommandError, match=f"sync failed for {brand.tenant.slug}"):
        call_command("sync", "--tenant", brand.tenant.slug, "--only", "tags")

    assert "run `siyu sync` again to resume" in capsys.readouterr().out
    run = SyncRun.objects.get(tenant=brand.tenant)
    assert (run.status, run.phase) == (SyncRun.Status.FAILED, "tags")
    assert "HTTP 503" in run.error
    assert [e["phase"] for e in run.errors] == ["tags"]


def test_events_happen_when_wecom_says(brand: Brand) -> None:
    sync_run(tenant_id=brand.tenant.id, options=options(brand, phases=["members", "contacts"]))
    with brand.server.emulator.lock:
        contact = next(iter(brand.corp.contacts.values()))
        follow = next(iter(contact.follows.values()))
    added = Event.objects.get(
        tenant=brand.tenant, type="contact.added", customer_id=FollowRelation.objects.get(
            tenant=brand.tenant, external_userid=contact.external_userid, guide__wecom_userid=follow.userid
        ).customer_id, guide_id=Guide.objects.get(tenant=brand.tenant, wecom_userid=follow.userid).id
    )
    assert added.occurred_at == dt.datetime.fromtimestamp(follow.createtime, tz=dt.UTC)
    assert added.properties == {"guide_id": added.guide_id, "add_way": follow.add_way, "state": follow.state}


IMMEDIATE = IMMEDIATE_TASKS


def test_hq_asks_for_a_sync_and_a_job_runs_it(
    brand: Brand, settings: SettingsWrapper, django_capture_on_commit_callbacks: Any
) -> None:
    settings.TASKS = IMMEDIATE
    hq = Actor(user_id=None, tenant_id=brand.tenant.id, role=Role.HQ_ADMIN)
    with django_capture_on_commit_callbacks(execute=True):
        sync_request(actor=hq, phases=["tags"])

    run = SyncRun.objects.get(tenant=brand.tenant)
    assert (run.status, run.phases) == (SyncRun.Status.SUCCEEDED, ["tags"])
    assert AuditLog.objects.filter(action="wecom_sync.request", tenant=brand.tenant).count() == 1


def test_only_hq_may_ask_for_a_sync(brand: Brand, django_capture_on_commit_callbacks: Any) -> None:
    manager = Actor(user_id=None, tenant_id=brand.tenant.id, role=Role.REGION_MANAGER, region_id=1)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(PermissionDenied):
        sync_request(actor=manager)
    assert callbacks == []
    with pytest.raises(ValidationFailed):
        sync_request(actor=Actor.system(brand.tenant.id), phases=["friends"])
    assert not SyncRun.objects.exists()


def test_odd_characters_from_wecom_are_cleaned_not_fatal(brand: Brand) -> None:
    with brand.server.emulator.lock:
        owner = next(u for u in sorted(brand.corp.members) if u.startswith("guide"))
    added = brand.admin("simulate/add_contact", {"userid": owner, "name": "\x00小\x1f 王\n"})
    edit = {"userid": owner, "external_userid": added["external_userid"], "remark": "a\x07b"}
    brand.admin("simulate/edit_contact", edit)

    run = sync_run(tenant_id=brand.tenant.id, options=options(brand, phases=["members", "contacts"]))

    assert run.status == SyncRun.Status.SUCCEEDED
    customer = db_state(brand.tenant)["customers"][added["external_userid"]]
    assert customer[0] == "小 王"
    relation = FollowRelation.objects.get(tenant=brand.tenant, external_userid=added["external_userid"])
    assert relation.remark == "ab"
