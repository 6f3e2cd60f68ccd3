"""Helpers of the channels tests: a simulated scan of a live code delivered through the real callback endpoint, and
a form posted as a browser would post it as shown (`form_fields`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
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


class _FormReader(HTMLParser):
    """The fields of one form as a browser submits them (see `form_fields`)."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self._textarea: str | None = None
        self._text = ""
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._option: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        name = a.get("name")
        if "disabled" in a:
            return
        if tag == "input" and name and a.get("type", "text") not in ("submit", "button", "file", "reset"):
            if a.get("type") not in ("checkbox", "radio") or "checked" in a:
                self.fields.append((name, a.get("value") or ("on" if a.get("type") == "checkbox" else "")))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""
        elif tag == "select" and name:
            self._select, self._options = name, []
        elif tag == "option" and self._select is not None:
            self._option, self._text = a, ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None or self._option is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea" and self._textarea is not None:
            # The HTML parser drops one newline right after <textarea>.
            text = self._text[1:] if self._text.startswith("\n") else self._text
            self.fields.append((self._textarea, text))
            self._textarea = None
        elif tag == "option" and self._option is not None:
            value = self._option.get("value")
            self._options.append((self._text if value is None else value, "selected" in self._option))
            self._option = None
        elif tag == "select" and self._select is not None:
            chosen = [value for value, selected in self._options if selected] or [v for v, _ in self._options[:1]]
            self.fields.extend((self._select, value) for value in chosen[:1])
            self._select = None


def form_fields(html: str, form_id: str) -> dict[str, list[str]]:
    """What a browser posts for the form `form_id` of `html` as it is shown: text inputs and hidden ones, ticked
    boxes, the selected (else first) option of each select, textareas; line breaks sent as CRLF, as browsers do.
    The dict is ready for Django's test client (a list per name, in document order)."""
    reader = _FormReader(form_id)
    reader.feed(html)
    posted: dict[str, list[str]] = {}
    for name, value in reader.fields:
        posted.setdefault(name, []).append(value.replace("\r\n", "\n").replace("\n", "\r\n"))
    return posted
