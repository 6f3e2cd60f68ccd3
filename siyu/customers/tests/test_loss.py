"""Loss alerts (流失提醒): a del_follow_user / del_external_contact callback records one alert (even when the
callback is processed again), the timeline shows the loss, and the guide and the store manager get a WeCom app
message through the emulator, once; the lost-customers list is scoped and filtered."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.analytics.models import Event
from siyu.analytics.services import event_record
from siyu.core.models import Guide
from siyu.customers import alerts
from siyu.customers.models import LossAlert
from siyu.emulator.seed import SeedSpec
from siyu.testing import IMMEDIATE_TASKS, PASSWORD, World
from siyu.wecom.models import RawCallback
from siyu.wecom.services import raw_callback_process, raw_callback_store
from siyu.wecom.tests.emulated import WORLD_MEMBERS, Brand, add_members, connect_brand, emulator_serving
from siyu.wecom.tests.support import T0, contact_xml, signed_post
from siyu.wecom.webhooks import verify_message

SPEC = SeedSpec(
    seed=31, corp_id="wwlossalerts00001", anchor=1_700_000_000, regions=1, stores_per_region=1,
    guides_per_store=1, customers=1, group_chats=0,
)  # fmt: skip
CaptureOnCommit = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]


@pytest.fixture(autouse=True)
def immediate(settings: SettingsWrapper) -> None:
    settings.TASKS = IMMEDIATE_TASKS


@pytest.fixture
def brand(world: World) -> Iterator[Brand]:
    cache.clear()
    with emulator_serving(SPEC) as server:
        with server.emulator.lock:
            add_members(next(iter(server.emulator.corps.values())), {**WORLD_MEMBERS["a"], "manager1": "店长"})
        yield connect_brand(server, tenant=world.tenant_a)
    cache.clear()


@pytest.fixture
def manager(world: World) -> Guide:
    """Store S1's manager is a WeCom member too (a guide row linked to the store1 user)."""
    return Guide.objects.create(
        tenant=world.tenant_a,
        store=world.stores["S1"],
        user=world.users["store1"],
        name="店长",
        wecom_userid="manager1",
    )


def _deliver(brand: Brand, change_type: str, create_time: int) -> RawCallback:
    corp_id = brand.connection.corp_id
    request = signed_post(contact_xml(change_type, "guide1", "wmc1", create_time=create_time), key=corp_id,
                          corp_id=corp_id)  # fmt: skip
    verified = verify_message(
        key=corp_id, msg_signature=request.query["msg_signature"], timestamp=request.query["timestamp"],
        nonce=request.query["nonce"], body=request.body,
    )  # fmt: skip
    row, _ = raw_callback_store(verified=verified)
    return row


def _app_messages(brand: Brand) -> list[dict[str, Any]]:
    with brand.server.emulator.lock:
        return list(next(iter(brand.server.emulator.corps.values())).app_messages)


@pytest.mark.parametrize(
    ("change_type", "kind"),
    [("del_follow_user", "deleted_by_customer"), ("del_external_contact", "deleted_by_guide")],
)
def test_a_loss_alerts_guide_and_manager_once(
    world: World,
    brand: Brand,
    manager: Guide,
    django_capture_on_commit_callbacks: CaptureOnCommit,
    change_type: str,
    kind: str,
) -> None:
    c1 = world.customers["c1"]
    chatted = dt.datetime.fromtimestamp(T0 + 3600, tz=dt.UTC)
    event_record(tenant_id=world.tenant_a.id, type="message.received", customer_id=c1.id, occurred_at=chatted,
                 properties={"guide_id": world.guides["G1"].id})  # fmt: skip
    row = _deliver(brand, change_type, T0 + 86_400)
    with django_capture_on_commit_callbacks(execute=True):
        raw_callback_process(raw_callback_id=row.id)
    alert = LossAlert.objects.get()
    at = dt.datetime.fromtimestamp(T0 + 86_400, tz=dt.UTC)
    assert (alert.customer_id, alert.guide_id, alert.store_id, alert.kind, alert.occurred_at) == (
        c1.id, world.guides["G1"].id, world.stores["S1"].id, kind, at,
    )  # fmt: skip
    assert (alert.last_interaction_at, alert.last_interaction_type) == (chatted, "message.received")
    assert alert.notified_at is not None
    assert alert.notify_error == ""
    [message] = _app_messages(brand)
    assert message["touser"] == ["guide1", "manager1"]
    assert "王**" in message["text"]
    assert "导购1" in message["text"]
    assert "13800000001" not in message["text"]  # never the phone
    # The timeline shows the loss.
    assert Event.objects.filter(customer_id=c1.id, type=f"contact.{kind}").count() == 1
    # The same callback processed again, and the alert job run again: no second alert, no second message.
    with django_capture_on_commit_callbacks(execute=True):
        raw_callback_process(raw_callback_id=row.id)
    assert alerts.loss_alert_notify(alert_id=alert.id) == "already sent"
    assert LossAlert.objects.count() == 1
    assert len(_app_messages(brand)) == 1


def test_lost_customers_list_is_scoped_and_filtered(world: World) -> None:
    from siyu.customers.services import follow_relation_delete

    hq = world.actor("hq")
    for key, guide, day in (("c1", "G1", 1), ("c2", "G2", 2), ("c3", "G3", 3)):
        follow_relation_delete(actor=hq, customer_id=world.customers[key].id, guide_id=world.guides[guide].id,
                               by_customer=True, at=dt.datetime(2026, 3, day, 8, tzinfo=dt.UTC))  # fmt: skip
    expected = {"hq": ["c3", "c2", "c1"], "region1": ["c2", "c1"], "store1": ["c1"], "guide1": ["c1"],
                "franchisee1": ["c3", "c1"], "outsider": []}  # fmt: skip
    by_id = {c.id: k for k, c in world.customers.items()}
    for persona, keys in expected.items():
        rows = alerts.loss_alert_list(actor=world.actor(persona))
        assert [by_id[a.customer_id] for a in rows] == keys, persona
    filtered = alerts.loss_alert_list(actor=hq, since=dt.date(2026, 3, 2), until=dt.date(2026, 3, 2))
    assert [by_id[a.customer_id] for a in filtered] == ["c2"]
    assert [by_id[a.customer_id] for a in alerts.loss_alert_list(actor=hq, guide_id=world.guides["G3"].id)] == ["c3"]
    assert [by_id[a.customer_id] for a in alerts.loss_alert_list(actor=hq, store_id=world.stores["S1"].id)] == ["c1"]

    # The console page, as the store manager: their lost customer only, masked, with the guide.
    client = Client()
    assert client.login(username="store1", password=PASSWORD)
    page = client.get("/customers/lost/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('data-loss-id="') == 1
    assert "王**" in html
    assert "导购1" in html
    assert "李**" not in html
