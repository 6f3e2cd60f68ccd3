"""Helpers of the channels tests: a simulated scan of a live code delivered through the real callback endpoint."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.test import Client

from siyu.channels.models import LiveCode, WelcomeSend
from siyu.channels.tests.conftest import Emulated
from siyu.customers.models import FollowRelation
from siyu.wecom.models import RawCallback
from siyu.wecom.tests.support import contact_xml, signed_post

CaptureOnCommit = Callable[..., Any]


@dataclass
class Added:
    userid: str
    external_userid: str
    welcome_code: str
    row: RawCallback

    @property
    def relation(self) -> FollowRelation:
        return FollowRelation.objects.get(external_userid=self.external_userid, guide__wecom_userid=self.userid)

    @property
    def send(self) -> WelcomeSend:
        return WelcomeSend.objects.get(follow_relation=self.relation)


def scan(
    emulated: Emulated,
    capture: CaptureOnCommit,
    code: LiveCode | None = None,
    *,
    name: str = "林小雨",
    userid: str = "",
    state: str | None = None,
    welcome_code: bool = True,
    wait_seconds: float = 0,
) -> Added:
    """A customer scans the code (or adds `userid`) in the emulator; WeCom's callback reaches siyu's endpoint and is
    processed with the immediate backend. `wait_seconds` moves WeCom's clock on before siyu hears of the add (to
    let the welcome code expire)."""
    body: dict[str, Any] = {"name": name, "welcome_code": welcome_code}
    if code is not None:
        body["config_id"] = code.config_id
    if userid:
        body["userid"] = userid
    if state is not None:
        body["state"] = state
    out = emulated.admin("simulate/add_contact", body)
    if wait_seconds:
        emulated.admin("clock", {"advance": wait_seconds})
    fields = {}
    event_state = state if state is not None else (code.state if code is not None else "")
    if event_state:
        fields["State"] = event_state
    if out["welcome_code"]:
        fields["WelcomeCode"] = out["welcome_code"]
    corp_id = emulated.corp.corp_id
    xml = contact_xml(
        "add_external_contact",
        out["userid"],
        out["external_userid"],
        create_time=int(time.time()),
        corp_id=corp_id,
        **fields,
    )
    with capture(execute=True):
        response = signed_post(xml, key=corp_id, corp_id=corp_id).send(Client())
    assert response.status_code == 200, response.content
    row = RawCallback.objects.get(event__ExternalUserID=out["external_userid"], change_type="add_external_contact")
    assert row.status == RawCallback.Status.PROCESSED, row.error
    return Added(out["userid"], out["external_userid"], out["welcome_code"], row)
