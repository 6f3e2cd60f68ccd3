"""The callback endpoint over HTTP: URL verification, storing and acknowledging, and every kind of rejection.

Rejections must answer 4xx, log their reason on "siyu.wecom.callback", and change nothing (no row, no job).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django_tasks_db.models import DBTaskResult
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.analytics.models import Event
from siyu.core.models import AuditLog
from siyu.customers.models import Customer, FollowRelation
from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.models import RawCallback, WeComConnection
from siyu.wecom.tests.support import AES_KEY, CORP_A, CORP_B, TOKEN, contact_xml, event_xml, signed_post

DB_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "fast"]}}

pytestmark = pytest.mark.usefixtures("connections")


@pytest.fixture(autouse=True)
def _db_tasks(settings: SettingsWrapper) -> None:
    settings.TASKS = DB_TASKS


CaptureOnCommit = Callable[..., Any]


def _state() -> dict[str, int]:
    return {
        "callbacks": RawCallback.objects.count(),
        "jobs": DBTaskResult.objects.count(),
        "customers": Customer.objects.count(),
        "relations": FollowRelation.objects.count(),
        "events": Event.objects.count(),
        "audit": AuditLog.objects.count(),
    }


ADD = contact_xml("add_external_contact", "guide1", "wmNEW001", State="store-S1", WelcomeCode="WELCOME1")

# -- URL verification (GET) --------------------------------------------------------------------------------------


def _verification_query(*, echo: str = "5927782489442352469", corp_id: str = CORP_A, **override: str) -> dict[str, str]:
    crypto = WeComCrypto(TOKEN, AES_KEY, corp_id)
    timestamp, nonce = str(int(time.time())), "1372623149"
    echostr = crypto.encrypt(echo)
    query = {
        "msg_signature": crypto.signature(timestamp, nonce, echostr),
        "timestamp": timestamp,
        "nonce": nonce,
        "echostr": echostr,
    }
    query.update(override)
    return query


@pytest.mark.parametrize("by", ["corp_id", "connection_id"])
def test_url_verification_echoes_the_plaintext(
    client: Client, connections: dict[str, WeComConnection], by: str
) -> None:
    key = CORP_A if by == "corp_id" else str(connections["A"].id)
    response = client.get(f"/wecom/callback/{key}/?{urlencode(_verification_query())}")
    assert response.status_code == 200
    assert response.content == b"5927782489442352469"
    assert response["Content-Type"] == "text/plain; charset=utf-8"


def test_url_verification_tolerates_an_unencoded_plus(client: Client) -> None:
    # Find an echo whose ciphertext contains "+", then send it raw: the query parser turns it into a space.
    for i in range(200):
        query = _verification_query(echo=f"echo-{i}")
        if "+" in query["echostr"]:
            break
    raw = "&".join(f"{k}={v}" for k, v in query.items())
    response = client.get(f"/wecom/callback/{CORP_A}/?{raw}")
    assert response.status_code == 200
    assert response.content == f"echo-{i}".encode()


@pytest.mark.parametrize(
    ("override", "status", "reason"),
    [
        ({"msg_signature": "0" * 40}, 403, "bad_signature"),
        ({"msg_signature": ""}, 403, "unsigned"),
        ({"nonce": "1372623150"}, 403, "bad_signature"),
        ({"timestamp": str(int(time.time()) - 3600)}, 403, "stale_timestamp"),
        ({"timestamp": "yesterday"}, 400, "bad_timestamp"),
        ({"echostr": ""}, 400, "missing_params"),
    ],
)
def test_url_verification_rejections(
    client: Client, caplog: pytest.LogCaptureFixture, override: dict[str, str], status: int, reason: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="siyu.wecom.callback"):
        response = client.get(f"/wecom/callback/{CORP_A}/?{urlencode(_verification_query(**override))}")
    assert response.status_code == status
    assert response.content == reason.encode()
    messages = [r.getMessage() for r in caplog.records if r.name == "siyu.wecom.callback"]
    assert len(messages) == 1
    assert f"reason={reason}" in messages[0]


def test_url_verification_for_another_corp_is_rejected(client: Client) -> None:
    # Signed with the right token and key, but encrypted for corp B: A's endpoint must not echo it.
    response = client.get(f"/wecom/callback/{CORP_A}/?{urlencode(_verification_query(corp_id=CORP_B))}")
    assert response.status_code == 403
    assert response.content == b"bad_receive_id"


# -- event push (POST) -------------------------------------------------------------------------------------------


def test_a_signed_event_is_stored_enqueued_and_acknowledged_empty(
    django_capture_on_commit_callbacks: CaptureOnCommit, connections: dict[str, WeComConnection]
) -> None:
    request = signed_post(ADD)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = request.send()
    assert response.status_code == 200
    assert response.content == b""
    assert len(callbacks) == 1
    row = RawCallback.objects.get()
    assert row.tenant_id == connections["A"].tenant_id
    assert row.connection_id == connections["A"].id
    assert row.status == RawCallback.Status.RECEIVED
    assert row.attempts == 0
    assert row.xml == ADD
    assert (row.event_type, row.change_type) == ("change_external_contact", "add_external_contact")
    assert row.event == {
        "ToUserName": CORP_A,
        "FromUserName": "sys",
        "CreateTime": "1767607200",
        "MsgType": "event",
        "Event": "change_external_contact",
        "ChangeType": "add_external_contact",
        "UserID": "guide1",
        "ExternalUserID": "wmNEW001",
        "State": "store-S1",
        "WelcomeCode": "WELCOME1",
    }
    assert row.created_at == dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)
    assert (row.msg_signature, row.timestamp, row.nonce) == (
        request.query["msg_signature"],
        request.query["timestamp"],
        request.query["nonce"],
    )
    job = DBTaskResult.objects.get()
    assert job.queue_name == "fast"
    assert job.task_path == "siyu.wecom.tasks.raw_callback_run"
    assert job.args_kwargs == {"args": [row.id], "kwargs": {}}
    # Nothing is processed inside the request.
    assert Customer.objects.filter(identities__value="wmNEW001").count() == 0


def test_the_endpoint_is_csrf_exempt(django_capture_on_commit_callbacks: CaptureOnCommit) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(ADD).send(Client(enforce_csrf_checks=True))
    assert response.status_code == 200
    assert RawCallback.objects.count() == 1


def test_a_retried_delivery_is_acknowledged_and_stores_nothing(
    django_capture_on_commit_callbacks: CaptureOnCommit, caplog: pytest.LogCaptureFixture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert signed_post(ADD).send().status_code == 200
    before = _state()
    # WeCom's retry: the same event, re-encrypted under a new nonce (and a later timestamp).
    retry = signed_post(ADD, timestamp=int(time.time()) + 2)
    with (
        caplog.at_level(logging.INFO, logger="siyu.wecom.callback"),
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        response = retry.send()
    assert response.status_code == 200
    assert response.content == b""
    assert callbacks == []
    assert _state() == before
    assert "duplicate WeCom callback" in caplog.text


def test_the_identical_request_again_is_a_duplicate_not_a_new_event(
    django_capture_on_commit_callbacks: CaptureOnCommit,
) -> None:
    request = signed_post(ADD)
    with django_capture_on_commit_callbacks(execute=True):
        assert request.send().status_code == 200
    before = _state()
    with django_capture_on_commit_callbacks(execute=True):
        again = request.send()
    assert again.status_code == 200
    assert _state() == before


def test_two_different_events_are_two_rows(django_capture_on_commit_callbacks: CaptureOnCommit) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        signed_post(ADD).send()
        signed_post(contact_xml("del_follow_user", "guide1", "wmNEW001", create_time=1767607260)).send()
        # Same ids and type, one second later: a new event (the customer re-added the guide).
        signed_post(contact_xml("add_external_contact", "guide1", "wmNEW001", create_time=1767607201)).send()
    assert RawCallback.objects.count() == 3
    assert DBTaskResult.objects.count() == 3


def test_group_member_changes_in_one_second_are_distinct(django_capture_on_commit_callbacks: CaptureOnCommit) -> None:
    common = {"ChatId": "wrCHAT1", "UpdateDetail": "add_member", "JoinScene": "3"}
    with django_capture_on_commit_callbacks(execute=True):
        signed_post(event_xml("change_external_chat", "update", MemChangeList=["wmA"], CurMemVer="v2", **common)).send()
        signed_post(event_xml("change_external_chat", "update", MemChangeList=["wmB"], CurMemVer="v3", **common)).send()
    rows = list(RawCallback.objects.order_by("id").values_list("event", flat=True))
    assert [r["MemChangeList"] for r in rows] == [["wmA"], ["wmB"]]


def test_each_brand_stores_its_own_callbacks(
    django_capture_on_commit_callbacks: CaptureOnCommit, connections: dict[str, WeComConnection]
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert signed_post(ADD).send().status_code == 200
        xml_b = contact_xml("add_external_contact", "guide1", "wmNEW001", corp_id=CORP_B)
        assert signed_post(xml_b, key=CORP_B, corp_id=CORP_B).send().status_code == 200
    assert sorted(RawCallback.objects.values_list("tenant_id", "connection_id")) == sorted(
        [(c.tenant_id, c.id) for c in connections.values()]
    )


# -- rejections --------------------------------------------------------------------------------------------------


def _tamper(mutate: Callable[[Any], None]) -> Callable[[], Any]:
    def build() -> Any:
        request = signed_post(ADD)
        mutate(request)
        return request

    return build


def _set(**query: str) -> Callable[[Any], None]:
    return lambda request: request.query.update(query)


def _drop(name: str) -> Callable[[Any], None]:
    return lambda request: request.query.pop(name)


def _body(body: bytes) -> Callable[[Any], None]:
    def mutate(request: Any) -> None:
        request.body = body

    return mutate


def _signed_raw_encrypt(encrypted: str) -> Callable[[], Any]:
    """A correctly signed envelope around a ciphertext that is not a valid WeCom plaintext."""

    def build() -> Any:
        request = signed_post(ADD)
        crypto = WeComCrypto(TOKEN, AES_KEY, CORP_A)
        ts, nonce = request.query["timestamp"], request.query["nonce"]
        request.query["msg_signature"] = crypto.signature(ts, nonce, encrypted)
        request.body = crypto.build_envelope(to_user=CORP_A, encrypted=encrypted)
        return request

    return build


REJECTIONS: dict[str, tuple[Callable[[], Any], int, str]] = {
    "unsigned": (_tamper(_drop("msg_signature")), 403, "unsigned"),
    "mis-signed": (_tamper(_set(msg_signature="f" * 40)), 403, "bad_signature"),
    "signature over another nonce": (_tamper(_set(nonce="123")), 403, "bad_signature"),
    "no timestamp": (_tamper(_drop("timestamp")), 400, "missing_params"),
    "no nonce": (_tamper(_drop("nonce")), 400, "missing_params"),
    "timestamp not a number": (_tamper(_set(timestamp="1e9")), 400, "bad_timestamp"),
    "replayed an hour later": (lambda: signed_post(ADD, timestamp=int(time.time()) - 3600), 403, "stale_timestamp"),
    "from the future": (lambda: signed_post(ADD, timestamp=int(time.time()) + 600), 403, "stale_timestamp"),
    "for another corp": (lambda: signed_post(ADD, corp_id=CORP_B), 403, "bad_receive_id"),
    "another token": (lambda: signed_post(ADD, token="otherToken"), 403, "bad_signature"),
    "unknown corp": (lambda: signed_post(ADD, key="wwNOBODY"), 404, "unknown_connection"),
    "unknown connection id": (lambda: signed_post(ADD, key="999999"), 404, "unknown_connection"),
    "empty body": (_tamper(_body(b"")), 400, "malformed_xml"),
    "not xml": (_tamper(_body(b"hello")), 400, "malformed_xml"),
    "no Encrypt": (_tamper(_body(b"<xml><ToUserName>wwA</ToUserName></xml>")), 400, "missing_encrypt"),
    "entity expansion": (
        _tamper(_body(b'<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>')),
        400,
        "malformed_xml",
    ),
    "oversized body": (_tamper(_body(b"<xml>" + b" " * 300_000 + b"</xml>")), 413, "body_too_large"),
    "signed short ciphertext": (_signed_raw_encrypt("c2hvcnQ="), 400, "bad_ciphertext"),
    "signed garbage block": (_signed_raw_encrypt("bm90IGEgY2lwaGVydGV4dA=="), 400, "bad_padding"),
    "signed non-base64": (_signed_raw_encrypt("***"), 400, "bad_base64"),
    "inner xml malformed": (lambda: signed_post("<xml><Event>oops</xml>"), 400, "malformed_event"),
    "inner xml without an event": (lambda: signed_post("<xml><Foo>1</Foo></xml>"), 400, "malformed_event"),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_rejected_requests_change_nothing(
    case: str, django_capture_on_commit_callbacks: CaptureOnCommit, caplog: pytest.LogCaptureFixture
) -> None:
    build, status, reason = REJECTIONS[case]
    request = build()
    before = _state()
    with (
        caplog.at_level(logging.WARNING, logger="siyu.wecom.callback"),
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        response = request.send()
    assert (response.status_code, response.content) == (status, reason.encode())
    assert callbacks == []
    assert _state() == before
    messages = [r.getMessage() for r in caplog.records if r.name == "siyu.wecom.callback"]
    assert len(messages) == 1
    assert f"reason={reason}" in messages[0]


def test_a_reused_nonce_with_another_message_is_rejected(
    django_capture_on_commit_callbacks: CaptureOnCommit, caplog: pytest.LogCaptureFixture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert signed_post(ADD, nonce="424242").send().status_code == 200
    before = _state()
    other = contact_xml("del_follow_user", "guide1", "wmNEW001")
    with (
        caplog.at_level(logging.WARNING, logger="siyu.wecom.callback"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = signed_post(other, nonce="424242").send()
    assert (response.status_code, response.content) == (403, b"nonce_reused")
    assert _state() == before
    assert "reason=nonce_reused" in caplog.text


def test_a_nonce_may_come_back_after_the_window(
    django_capture_on_commit_callbacks: CaptureOnCommit, settings: SettingsWrapper
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert signed_post(ADD, nonce="424242").send().status_code == 200
    RawCallback.objects.update(received_at=RawCallback.objects.get().received_at.replace(year=2025))
    other = contact_xml("del_follow_user", "guide1", "wmNEW001")
    with django_capture_on_commit_callbacks(execute=True):
        assert signed_post(other, nonce="424242").send().status_code == 200
    assert RawCallback.objects.count() == 2


def test_the_replay_window_is_configurable(
    django_capture_on_commit_callbacks: CaptureOnCommit, settings: SettingsWrapper
) -> None:
    settings.SIYU_WECOM_CALLBACK_MAX_SKEW = 7200
    with django_capture_on_commit_callbacks(execute=True):
        assert signed_post(ADD, timestamp=int(time.time()) - 3600).send().status_code == 200
    settings.SIYU_WECOM_CALLBACK_MAX_SKEW = 10
    late = contact_xml("del_follow_user", "guide1", "wmNEW001")
    assert signed_post(late, timestamp=int(time.time()) - 30).send().status_code == 403


def test_a_connection_without_callback_secrets_refuses(
    connections: dict[str, WeComConnection], caplog: pytest.LogCaptureFixture
) -> None:
    WeComConnection.objects.filter(id=connections["A"].id).update(encoding_aes_key_enc="")
    with caplog.at_level(logging.WARNING, logger="siyu.wecom.callback"):
        response = signed_post(ADD).send()
    assert (response.status_code, response.content) == (404, b"not_configured")
    assert RawCallback.objects.count() == 0


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_other_methods_are_not_allowed(client: Client, method: str) -> None:
    assert getattr(client, method)(f"/wecom/callback/{CORP_A}/").status_code == 405
