"""change_external_tag callbacks: the tag catalogue follows WeCom's corp tag library.

The event names only an id; processing reads the tag or group from get_corp_tag_list (a fake WeCom behind the
real client, at the HTTP boundary) and mirrors it through the tags context's services.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from django.core.cache import cache

from siyu.core.models import AuditLog
from siyu.tags.models import CustomerTag, Tag, TagGroup
from siyu.testing import World
from siyu.wecom.client import RetryPolicy, WeComClient
from siyu.wecom.models import RawCallback, WeComConnection
from siyu.wecom.selectors import connection_secrets
from siyu.wecom.services import raw_callback_process
from siyu.wecom.tests.support import T0, FakeWeCom, event_xml

LIBRARY: dict[str, dict[str, Any]] = {
    # group id -> group, as WeCom's tag library holds it
    "etG1": {
        "group_id": "etG1",
        "group_name": "兴趣",  # the world's hand-made group of the same name gets linked, not duplicated
        "order": 5,
        "tag": [{"id": "etT1", "name": "护肤", "order": 2}, {"id": "etT3", "name": "香水", "order": 1}],
    },
    "etG2": {"group_id": "etG2", "group_name": "会员等级", "order": 1, "tag": [{"id": "etT9", "name": "金卡"}]},
}


@pytest.fixture(autouse=True)
def _clean_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def fake() -> FakeWeCom:
    fake = FakeWeCom()

    def corp_tags(params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        groups = [g for g in LIBRARY.values() if g["group_id"] in body.get("group_id", [])]
        if not groups and body.get("tag_id"):
            groups = [
                {**g, "tag": [t for t in g["tag"] if t["id"] in body["tag_id"]]}
                for g in LIBRARY.values()
                if any(t["id"] in body["tag_id"] for t in g["tag"])
            ]
        return {"tag_group": groups}

    fake.answers["externalcontact/get_corp_tag_list"] = corp_tags
    return fake


@pytest.fixture
def process(fake: FakeWeCom) -> Callable[[RawCallback], RawCallback]:
    def client_factory(connection: WeComConnection) -> WeComClient:
        # The connection's own base URL and secret; only the transport is the fake.
        return WeComClient(
            connection.api_base_url,
            connection.corp_id,
            connection_secrets(connection).contact_secret,
            transport=httpx.MockTransport(fake.handler),
            retry=RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.0),
        )

    def process(row: RawCallback) -> RawCallback:
        result = raw_callback_process(raw_callback_id=row.id, client_factory=client_factory)
        assert result is not None
        return result

    return process


def catalogue(world: World) -> list[tuple[str, str, int, list[tuple[str, str, int]]]]:
    return [
        (g.name, g.wecom_group_id, g.order, [(t.name, t.wecom_tag_id, t.order) for t in g.tags.order_by("name")])
        for g in TagGroup.objects.filter(tenant=world.tenant_a).order_by("name")
    ]


def tag_event(change_type: str, wecom_id: str, tag_type: str = "tag", *, create_time: int = T0) -> str:
    return event_xml("change_external_tag", change_type, create_time=create_time, Id=wecom_id, TagType=tag_type)


def test_a_new_tag_in_a_known_group_links_and_adds(
    world: World, store: Callable[..., RawCallback], process: Callable[[RawCallback], RawCallback], fake: FakeWeCom
) -> None:
    row = process(store(tag_event("create", "etT3")))
    assert (row.status, row.error) == (RawCallback.Status.PROCESSED, "")
    # Only the created tag was asked for; the hand-made group "兴趣" is now linked to etG1.
    assert [b for _, p, _, b in fake.requests if p == "externalcontact/get_corp_tag_list"] == [{"tag_id": ["etT3"]}]
    assert catalogue(world) == [("兴趣", "etG1", 5, [("彩妆", "", 0), ("护肤", "", 0), ("香水", "etT3", 1)])]


def test_a_new_group_comes_with_all_its_tags(
    world: World, store: Callable[..., RawCallback], process: Callable[[RawCallback], RawCallback], fake: FakeWeCom
) -> None:
    row = process(store(tag_event("create", "etG1", "tag_group")))
    assert row.status == RawCallback.Status.PROCESSED
    assert [b for _, p, _, b in fake.requests if p == "externalcontact/get_corp_tag_list"] == [{"group_id": ["etG1"]}]
    # "护肤" already existed by hand in "兴趣": adopted (keeping its customers), not duplicated.
    assert catalogue(world) == [("兴趣", "etG1", 5, [("彩妆", "", 0), ("护肤", "etT1", 2), ("香水", "etT3", 1)])]
    assert Tag.objects.get(wecom_tag_id="etT1").id == world.tags["护肤"].id
    assert CustomerTag.objects.filter(tag=world.tags["护肤"]).count() == 2


def test_processing_again_and_a_repeated_update_change_nothing(
    world: World, store: Callable[..., RawCallback], process: Callable[[RawCallback], RawCallback]
) -> None:
    process(store(tag_event("create", "etG2", "tag_group")))
    audits = AuditLog.objects.filter(action="tag_group.sync_wecom").count()
    snapshot = catalogue(world)
    process(store(tag_event("update", "etG2", "tag_group")))
    assert catalogue(world) == snapshot
    assert AuditLog.objects.filter(action="tag_group.sync_wecom").count() == audits == 1


def test_a_renamed_tag_is_renamed(
    world: World, store: Callable[..., RawCallback], process: Callable[[RawCallback], RawCallback], monkeypatch: Any
) -> None:
    process(store(tag_event("create", "etG2", "tag_group")))
    monkeypatch.setitem(LIBRARY, "etG2", {**LIBRARY["etG2"], "tag": [{"id": "etT9", "name": "黑金卡", "order": 9}]})
    row = process(store(tag_event("update", "etT9")))
    assert row.status == RawCallback.Status.PROCESSED
    assert ("会员等级", "etG2", 1, [("黑金卡", "etT9", 9)]) in catalogue(world)
    assert AuditLog.objects.filter(action="tag_group.sync_wecom").latest("id").detail == {
        "wecom_group_id": "etG2",
        "changes": ["tag etT9 name, order"],
    }


def test_deletes(
    world: World, store: Callable[..., RawCallback], process: Callable[[RawCallback], RawCallback], fake: FakeWeCom
) -> None:
    process(store(tag_event("create", "etG1", "tag_group")))
    requests = len(fake.requests)
    row = process(store(tag_event("delete", "etT1")))
    assert (row.status, row.error) == (RawCallback.Status.PROCESSED, "")
    assert len(fake.requests) == requests  # a delete needs nothing from WeCom
    assert not Tag.objects.filter(id=world.tags["护肤"].id).exists()
    assert CustomerTag.objects.filter(customer__tenant=world.tenant_a, tag__name="护肤").count() == 0
    audit = AuditLog.objects.get(action="tag.delete_wecom")
    assert audit.detail == {"wecom_tag_id": "etT1", "name": "护肤", "customer_tags": 2}
    # A second delete (say, deleted again after being re-created in between and not yet mirrored).
    again = process(store(tag_event("delete", "etT1", create_time=T0 + 60)))
    assert (again.status, again.error) == (RawCallback.Status.IGNORED, "not in the tag catalogue")
    group = process(store(tag_event("delete", "etG1", "tag_group")))
    assert group.status == RawCallback.Status.PROCESSED
    assert catalogue(world) == []


def test_a_tag_gone_by_the_time_we_ask_is_ignored(
    world: World, store: Callable[..., RawCallback], process: Callable[[RawCallback], RawCallback]
) -> None:
    before = catalogue(world)
    row = process(store(tag_event("create", "etGONE")))
    assert (row.status, row.error) == (RawCallback.Status.IGNORED, "no longer in WeCom's tag library")
    assert catalogue(world) == before


def test_wecom_unreachable_fails_the_callback_for_a_retry(
    world: World, store: Callable[..., RawCallback], process: Callable[[RawCallback], RawCallback], fake: FakeWeCom
) -> None:
    fake.fault("externalcontact/get_corp_tag_list", 45009, 45009)
    row = process(store(tag_event("create", "etT3")))
    assert (row.status, row.attempts) == (RawCallback.Status.FAILED, 1)
    assert row.error.startswith("WeComAPIError: WeCom externalcontact/get_corp_tag_list failed: errcode 45009")
    row = process(row)  # the limit has passed
    assert (row.status, row.attempts) == (RawCallback.Status.PROCESSED, 2)
    assert Tag.objects.filter(wecom_tag_id="etT3").count() == 1


def test_shuffle_is_ignored(
    world: World, store: Callable[..., RawCallback], process: Callable[[RawCallback], RawCallback], fake: FakeWeCom
) -> None:
    row = process(store(event_xml("change_external_tag", "shuffle", Id="etG1")))
    assert (row.status, row.error) == (RawCallback.Status.IGNORED, "tag order is refreshed by the tag sync")
    assert fake.requests == []
