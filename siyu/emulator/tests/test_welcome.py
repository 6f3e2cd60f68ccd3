"""send_welcome_msg: the welcome_code of an add event is valid 20 seconds and usable once."""

from __future__ import annotations

from siyu.emulator.tests.conftest import Running

TEXT = {"content": "欢迎光临，新人礼已发放"}


def _add(emulator: Running) -> dict[str, str]:
    guide = next(m.userid for m in emulator.corp.members.values() if m.userid.startswith("guide"))
    return emulator.client.admin("simulate/add_contact", {"userid": guide})


def test_welcome_code_works_once(emulator: Running) -> None:
    client = emulator.client
    added = _add(emulator)
    code = added["welcome_code"]
    assert code
    first = client.post("externalcontact/send_welcome_msg", {"welcome_code": code, "text": TEXT})
    assert first == {"errcode": 0, "errmsg": "ok"}
    second = client.post("externalcontact/send_welcome_msg", {"welcome_code": code, "text": TEXT})
    assert second["errcode"] == 41051
    sent = client.admin("welcome_messages")["welcome_messages"]
    assert len(sent) == 1
    assert (sent[0]["external_userid"], sent[0]["userid"], sent[0]["text"]) == (
        added["external_userid"],
        added["userid"],
        TEXT["content"],
    )


def test_welcome_code_expires_after_20_seconds(emulator: Running) -> None:
    client = emulator.client
    in_time = _add(emulator)["welcome_code"]
    late = _add(emulator)["welcome_code"]
    client.admin("clock", {"advance": 19})
    assert client.post("externalcontact/send_welcome_msg", {"welcome_code": in_time, "text": TEXT})["errcode"] == 0
    client.admin("clock", {"advance": 2})
    assert client.post("externalcontact/send_welcome_msg", {"welcome_code": late, "text": TEXT})["errcode"] == 41050
    assert client.admin("welcome_messages")["welcome_messages"][0]["welcome_code"] == in_time


def test_welcome_message_errors(emulator: Running) -> None:
    client = emulator.client
    code = _add(emulator)["welcome_code"]
    image = {"msgtype": "image", "image": {"media_id": "MEDIA"}}
    assert client.post("externalcontact/send_welcome_msg", {"text": TEXT})["errcode"] == 41049
    assert client.post("externalcontact/send_welcome_msg", {"welcome_code": "nope", "text": TEXT})["errcode"] == 41050
    assert client.post("externalcontact/send_welcome_msg", {"welcome_code": code})["errcode"] == 40063
    assert (
        client.post("externalcontact/send_welcome_msg", {"welcome_code": code, "attachments": [image] * 10})["errcode"]
        == 40058
    )
    bad = {"msgtype": "voice", "voice": {"media_id": "x"}}
    assert (
        client.post("externalcontact/send_welcome_msg", {"welcome_code": code, "attachments": [bad]})["errcode"]
        == 41065
    )
    mismatched = {"msgtype": "image", "link": {"title": "x"}}
    assert (
        client.post("externalcontact/send_welcome_msg", {"welcome_code": code, "attachments": [mismatched]})["errcode"]
        == 41065
    )
    too_long = {"content": "字" * 1334}  # 4002 bytes of UTF-8
    assert client.post("externalcontact/send_welcome_msg", {"welcome_code": code, "text": too_long})["errcode"] == 40058
    # None of the rejected calls used the code up.
    assert (
        client.post("externalcontact/send_welcome_msg", {"welcome_code": code, "attachments": [image]})["errcode"] == 0
    )


def test_no_welcome_code_when_not_issued(emulator: Running) -> None:
    guide = next(m.userid for m in emulator.corp.members.values() if m.userid.startswith("guide"))
    added = emulator.client.admin("simulate/add_contact", {"userid": guide, "welcome_code": False})
    assert added["welcome_code"] == ""
