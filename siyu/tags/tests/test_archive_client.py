"""The session archive reader (siyu.wecom.archive): where it reads, and what it makes of the pages it gets."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.testing import World
from siyu.wecom.archive import ArchiveClient, archive_base_url, archive_client
from siyu.wecom.client import RetryPolicy
from siyu.wecom.errors import WeComAPIError, WeComTransportError
from siyu.wecom.models import WeComConnection
from siyu.wecom.services import connection_create
from siyu.wecom.tests.support import AES_KEY, TOKEN


@pytest.fixture
def connection(world: World) -> WeComConnection:
    return connection_create(
        actor=world.actor("hq"),
        corp_id="wwarchive",
        contact_secret="s3cret",
        callback_token=TOKEN,
        encoding_aes_key=AES_KEY,
        api_base_url="http://emu:8001/cgi-bin/",
    )


def test_the_archive_is_read_beside_the_emulators_api_or_where_configured(
    connection: WeComConnection, settings: SettingsWrapper
) -> None:
    assert archive_base_url(connection) == "http://emu:8001/emulator/"
    connection.api_base_url = "https://qyapi.weixin.qq.com/cgi-bin/"
    assert archive_base_url(connection) is None  # the real API has no HTTP archive
    assert archive_client(connection) is None
    settings.SIYU_WECOM_ARCHIVE_URL = "http://archive-bridge:9000/v1"
    assert archive_base_url(connection) == "http://archive-bridge:9000/v1/"


def client_answering(answer: Any, seen: list[httpx.Request] | None = None) -> ArchiveClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(200, content=json.dumps(answer).encode())

    return ArchiveClient(
        "http://emu/emulator/",
        "wwarchive",
        "s3cret",
        retry=RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.001),
        sleep=lambda _: None,
        transport=httpx.MockTransport(handle),
    )


def test_a_page_is_read_after_a_seq_in_seq_order(db: None) -> None:
    seen: list[httpx.Request] = []
    page = {
        "messages": [
            {"seq": 8, "msgid": "m8", "action": "recall", "from": "wmc1", "tolist": ["guide1"], "roomid": "",
             "msgtime": 1_700_000_001_000, "msgtype": "text", "text": {"content": "撤回了"}},
            {"seq": 7, "msgid": "m7", "action": "send", "from": "wmc1", "tolist": ["guide1"], "roomid": "",
             "msgtime": 1_700_000_000_000, "msgtype": "text", "text": {"content": "敏感肌"}},
            {"seq": 9, "msgid": "m9", "action": "send", "from": "guide1", "tolist": ["wmc1", "wmc2"],
             "roomid": "wrchat", "msgtime": 1_700_000_002_000, "msgtype": "image", "image": {"md5sum": "x"}},
        ],
        "last_seq": 12,
    }  # fmt: skip
    result = client_answering(page, seen).chat_messages(after=6, limit=3)
    assert [(m.seq, m.content, m.is_text) for m in result.messages] == [
        (7, "敏感肌", True),
        (8, "撤回了", False),  # a recall is not something said
        (9, "", False),
    ]
    assert (result.messages[2].roomid, result.messages[2].tolist, result.last_seq) == ("wrchat", ("wmc1", "wmc2"), 12)
    assert dict(seen[0].url.params) == {"corp_id": "wwarchive", "after": "6", "limit": "3"}
    assert seen[0].url.path == "/emulator/chat_messages"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ({"errcode": 301052, "errmsg": "archive not enabled"}, WeComAPIError),
        ({"last_seq": 3}, WeComTransportError),
        ({"messages": [{"msgid": "no seq"}]}, WeComTransportError),
    ],
)
def test_an_unusable_page_is_an_error(db: None, answer: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        client_answering(answer).chat_messages(after=0)


def test_the_page_size_is_bounded(db: None) -> None:
    with pytest.raises(ValueError, match="limit"):
        client_answering({"messages": []}).chat_messages(limit=1001)
