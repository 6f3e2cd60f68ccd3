"""The WeCom client against a fake WeCom at the HTTP boundary (httpx.MockTransport) and a real slow server.

The fake issues tokens, checks them, records every request, and plays scripted faults (errcodes, HTTP 5xx,
timeouts, truncated bodies) before answering normally; tests assert the exact requests the client made.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.core.cache import cache

from siyu.wecom.client import ContactPage, RetryPolicy, WeComClient
from siyu.wecom.errors import WeComAPIError, WeComTransportError
from siyu.wecom.tests.support import SECRET, FakeWeCom

BASE = "https://qyapi.example/cgi-bin/"
CORP = "wwCORP"


@pytest.fixture(autouse=True)
def _clean_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake() -> FakeWeCom:
    fake = FakeWeCom()
    fake.answers["externalcontact/get_follow_user_list"] = {"follow_user": ["zhangsan", "lisi"]}
    return fake


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make(fake: FakeWeCom, sleeps: Sleeps, secret: str = SECRET, **kwargs: Any) -> WeComClient:
    return WeComClient(BASE, CORP, secret, 5.0, transport=httpx.MockTransport(fake.handler), sleep=sleeps, **kwargs)


# -- tokens ------------------------------------------------------------------------------------------------------


def test_the_token_is_fetched_once_and_shared_by_clients_of_one_app(fake: FakeWeCom, sleeps: Sleeps) -> None:
    with make(fake, sleeps) as one, make(fake, sleeps) as two:
        assert one.follow_user_list() == ["zhangsan", "lisi"]
        assert two.follow_user_list() == ["zhangsan", "lisi"]
    assert fake.paths() == ["gettoken", "externalcontact/get_follow_user_list", "externalcontact/get_follow_user_list"]
    assert fake.requests[0][2] == {"corpid": CORP, "corpsecret": SECRET}
    assert [r[2]["access_token"] for r in fake.requests[1:]] == ["TOKEN1", "TOKEN1"]


def test_each_app_secret_has_its_own_token(fake: FakeWeCom, sleeps: Sleeps) -> None:
    make(fake, sleeps).follow_user_list()
    make(fake, sleeps, secret="other-secret").follow_user_list()
    assert fake.issued == 2
    assert [r[2]["access_token"] for r in fake.requests if r[1] != "gettoken"] == ["TOKEN1", "TOKEN2"]


def test_no_secret_in_the_cache_key(fake: FakeWeCom, sleeps: Sleeps) -> None:
    client = make(fake, sleeps)
    client.follow_user_list()
    assert SECRET not in client._token_key
    assert cache.get(client._token_key) == "TOKEN1"


@pytest.mark.parametrize("errcode", [42001, 40014, 40001])
def test_an_expired_or_invalid_token_is_refreshed_once_and_the_call_retried(
    fake: FakeWeCom, sleeps: Sleeps, errcode: int
) -> None:
    client = make(fake, sleeps)
    client.follow_user_list()
    fake.fault("externalcontact/get_follow_user_list", errcode)
    assert client.follow_user_list() == ["zhangsan", "lisi"]
    assert fake.paths()[-3:] == [
        "externalcontact/get_follow_user_list",
        "gettoken",
        "externalcontact/get_follow_user_list",
    ]
    assert fake.requests[-1][2]["access_token"] == "TOKEN2"
    assert cache.get(client._token_key) == "TOKEN2"
    assert sleeps == []


def test_a_token_rejected_twice_is_an_error_not_a_loop(fake: FakeWeCom, sleeps: Sleeps) -> None:
    fake.fault("externalcontact/get_follow_user_list", 42001, 42001, 42001)
    with pytest.raises(WeComAPIError) as info:
        make(fake, sleeps).follow_user_list()
    assert (info.value.errcode, info.value.endpoint) == (42001, "externalcontact/get_follow_user_list")
    assert fake.paths() == ["gettoken", "externalcontact/get_follow_user_list"] * 2


def test_a_wrong_secret_fails_at_once(fake: FakeWeCom, sleeps: Sleeps) -> None:
    with pytest.raises(WeComAPIError) as info:
        make(fake, sleeps, secret="wrong").follow_user_list()
    assert (info.value.errcode, info.value.errmsg, info.value.endpoint) == (40001, "invalid credential", "gettoken")
    assert fake.paths() == ["gettoken"]
    assert "wrong" not in str(info.value)


def test_concurrent_callers_fetch_one_token(fake: FakeWeCom) -> None:
    fake.gettoken_delay = 0.2  # long enough for every thread to arrive while the first one fetches
    results: list[list[str]] = []
    barrier = threading.Barrier(8)

    def run() -> None:
        barrier.wait()
        results.append(make(fake, Sleeps()).follow_user_list())

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == [["zhangsan", "lisi"]] * 8
    assert fake.issued == 1


def test_a_token_rejected_by_many_concurrent_calls_is_refreshed_once(fake: FakeWeCom) -> None:
    make(fake, Sleeps()).follow_user_list()
    fake.tokens.clear()  # WeCom invalidated TOKEN1 early
    fake.gettoken_delay = 0.2
    barrier = threading.Barrier(6)
    results: list[list[str]] = []

    def run() -> None:
        barrier.wait()
        results.append(make(fake, Sleeps()).follow_user_list())

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == [["zhangsan", "lisi"]] * 6
    assert fake.issued == 2


# -- retries -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [45009, -1, "http502", "http503", "timeout", "connect", "truncated"])
def test_transient_failures_are_retried_with_backoff(fake: FakeWeCom, sleeps: Sleeps, fault: Any) -> None:
    client = make(fake, sleeps, retry=RetryPolicy(attempts=4, base_delay=1.0, max_delay=8.0))
    fake.fault("externalcontact/get_follow_user_list", fault, fault)
    assert client.follow_user_list() == ["zhangsan", "lisi"]
    assert fake.paths().count("externalcontact/get_follow_user_list") == 3
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.0
    assert 1.0 <= sleeps[1] <= 2.0


def test_a_rate_limit_that_persists_raises_after_the_last_attempt(fake: FakeWeCom, sleeps: Sleeps) -> None:
    client = make(fake, sleeps, retry=RetryPolicy(attempts=3))
    fake.fault("externalcontact/list", 45009, 45009, 45009, 45009)
    with pytest.raises(WeComAPIError) as info:
        client.external_contact_list("zhangsan")
    assert (info.value.errcode, info.value.endpoint) == (45009, "externalcontact/list")
    assert fake.paths().count("externalcontact/list") == 3
    assert len(sleeps) == 2


def test_persistent_5xx_raises_a_transport_error(fake: FakeWeCom, sleeps: Sleeps) -> None:
    fake.fault("externalcontact/list", *["http500"] * 5)
    with pytest.raises(WeComTransportError) as info:
        make(fake, sleeps, retry=RetryPolicy(attempts=4)).external_contact_list("zhangsan")
    assert (info.value.errcode, info.value.errmsg, info.value.endpoint) == (-2, "HTTP 500", "externalcontact/list")
    assert len(sleeps) == 3


@pytest.mark.parametrize("fault", ["timeout", "http502", "truncated"])
def test_a_non_idempotent_call_that_may_have_landed_is_not_repeated(
    fake: FakeWeCom, sleeps: Sleeps, fault: Any
) -> None:
    client = make(fake, sleeps)
    fake.fault("externalcontact/add_corp_tag", fault)
    with pytest.raises(WeComTransportError):
        client.corp_tag_add(group_name="兴趣", tags=[{"name": "护肤"}])
    assert fake.paths().count("externalcontact/add_corp_tag") == 1
    assert sleeps == []


@pytest.mark.parametrize("fault", ["connect", 45009, -1])
def test_a_non_idempotent_call_is_repeated_when_wecom_never_acted(fake: FakeWeCom, sleeps: Sleeps, fault: Any) -> None:
    fake.answers["externalcontact/add_corp_tag"] = {"tag_group": {"group_id": "G1", "group_name": "兴趣", "tag": []}}
    client = make(fake, sleeps)
    fake.fault("externalcontact/add_corp_tag", fault)
    assert client.corp_tag_add(group_name="兴趣", tags=[{"name": "护肤"}])["group_id"] == "G1"
    assert fake.paths().count("externalcontact/add_corp_tag") == 2


def test_other_errcodes_raise_with_code_message_and_endpoint(fake: FakeWeCom, sleeps: Sleeps) -> None:
    fake.fault("externalcontact/get", 84061)
    with pytest.raises(WeComAPIError) as info:
        make(fake, sleeps).external_contact_get("wmX")
    assert (info.value.errcode, info.value.errmsg, info.value.endpoint) == (
        84061,
        "error 84061, hint: [x]",
        "externalcontact/get",
    )
    assert str(info.value) == "WeCom externalcontact/get failed: errcode 84061: error 84061, hint: [x]"
    assert "TOKEN" not in str(info.value)
    assert sleeps == []


def test_an_http_4xx_is_not_retried(fake: FakeWeCom, sleeps: Sleeps) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("gettoken"):
            return httpx.Response(200, json={"errcode": 0, "access_token": "T", "expires_in": 7200})
        return httpx.Response(404)

    client = WeComClient(BASE, CORP, SECRET, transport=httpx.MockTransport(handler), sleep=sleeps)
    with pytest.raises(WeComTransportError, match="HTTP 404"):
        client.follow_user_list()
    assert sleeps == []


def test_no_secret_or_token_reaches_the_logs(fake: FakeWeCom, sleeps: Sleeps, caplog: pytest.LogCaptureFixture) -> None:
    # gettoken puts the secret in the query string and every call the token: the HTTP library's request log
    # line (INFO) would print both, so settings keep the "httpx" logger at WARNING.
    fake.fault("externalcontact/get_follow_user_list", 42001, 45009, "http502")
    with caplog.at_level(logging.DEBUG):
        make(fake, sleeps).follow_user_list()
    assert caplog.records  # the client's own retry lines are there
    assert not [r for r in caplog.records if SECRET in r.getMessage() or "TOKEN" in r.getMessage()]


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.5, max_delay=4.0)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (9, 4.0)]:
        delays = {policy.delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


# -- endpoints: exact requests -----------------------------------------------------------------------------------


def test_member_and_department_requests(fake: FakeWeCom, sleeps: Sleeps) -> None:
    fake.answers["department/list"] = {"department": [{"id": 1, "name": "总部", "parentid": 0}]}
    fake.answers["user/list"] = {"userlist": [{"userid": "zhangsan", "name": "张三", "department": [2]}]}
    client = make(fake, sleeps)
    assert client.department_list() == [{"id": 1, "name": "总部", "parentid": 0}]
    client.department_list(2)
    assert client.user_list(2, fetch_child=True) == [{"userid": "zhangsan", "name": "张三", "department": [2]}]
    calls = [(m, p, {k: v for k, v in q.items() if k != "access_token"}, b) for m, p, q, b in fake.requests[1:]]
    assert calls == [
        ("GET", "department/list", {}, None),
        ("GET", "department/list", {"id": "2"}, None),
        ("GET", "user/list", {"department_id": "2", "fetch_child": "1"}, None),
    ]


def test_contact_requests(fake: FakeWeCom, sleeps: Sleeps) -> None:
    fake.answers["externalcontact/list"] = {"external_userid": ["wmA", "wmB"]}
    fake.answers["externalcontact/get"] = {
        "external_contact": {"external_userid": "wmA", "name": "李雷", "type": 1},
        "follow_user": [{"userid": "zhangsan", "createtime": 1700000000, "add_way": 1, "state": "s1"}],
        "next_cursor": "",
    }
    client = make(fake, sleeps)
    assert client.external_contact_list("zhangsan") == ["wmA", "wmB"]
    detail = client.external_contact_get("wmA")
    assert detail["follow_user"][0]["state"] == "s1"
    client.external_contact_get("wmA", cursor="C2")
    calls = [(m, p, {k: v for k, v in q.items() if k != "access_token"}) for m, p, q, _ in fake.requests[1:]]
    assert calls == [
        ("GET", "externalcontact/list", {"userid": "zhangsan"}),
        ("GET", "externalcontact/get", {"external_userid": "wmA"}),
        ("GET", "externalcontact/get", {"external_userid": "wmA", "cursor": "C2"}),
    ]


def test_batch_get_by_user_follows_the_cursor_to_the_end(fake: FakeWeCom, sleeps: Sleeps) -> None:
    pages = {"": ("C1", ["wm1", "wm2"]), "C1": ("C2", ["wm3", "wm4"]), "C2": ("", ["wm5"])}

    def answer(params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        next_cursor, ids = pages[body.get("cursor", "")]
        contacts = [
            {
                "external_contact": {"external_userid": i, "name": i, "type": 1},
                "follow_info": {"userid": "zhangsan", "createtime": 1, "tag_id": []},
            }
            for i in ids
        ]
        return {"external_contact_list": contacts, "next_cursor": next_cursor}

    fake.answers["externalcontact/batch/get_by_user"] = answer
    client = make(fake, sleeps)
    pages_seen = list(client.external_contacts_by_user(["zhangsan", "lisi"], limit=2))
    assert [[c["external_contact"]["external_userid"] for c in p.contacts] for p in pages_seen] == [
        ["wm1", "wm2"],
        ["wm3", "wm4"],
        ["wm5"],
    ]
    assert [p.next_cursor for p in pages_seen] == ["C1", "C2", ""]
    assert [b for _, p, _, b in fake.requests if p == "externalcontact/batch/get_by_user"] == [
        {"userid_list": ["zhangsan", "lisi"], "limit": 2},
        {"userid_list": ["zhangsan", "lisi"], "limit": 2, "cursor": "C1"},
        {"userid_list": ["zhangsan", "lisi"], "limit": 2, "cursor": "C2"},
    ]
    # Resuming from a stored cursor starts there; limits above WeCom's 100 are clamped.
    resumed = client.external_contact_batch_page(["zhangsan"], cursor="C2", limit=1000)
    assert resumed == ContactPage(contacts=resumed.contacts, next_cursor="")
    assert fake.requests[-1][3] == {"userid_list": ["zhangsan"], "limit": 100, "cursor": "C2"}


def test_batch_get_by_user_refuses_more_than_100_members(fake: FakeWeCom, sleeps: Sleeps) -> None:
    with pytest.raises(ValueError, match="1 to 100"):
        make(fake, sleeps).external_contact_batch_page([f"u{i}" for i in range(101)])
    assert fake.requests == []


def test_tag_requests(fake: FakeWeCom, sleeps: Sleeps) -> None:
    group = {"group_id": "G1", "group_name": "兴趣", "tag": [{"id": "T1", "name": "护肤"}]}
    fake.answers["externalcontact/get_corp_tag_list"] = {"tag_group": [group]}
    fake.answers["externalcontact/add_corp_tag"] = {"tag_group": group}
    client = make(fake, sleeps)
    assert client.corp_tag_list() == [group]
    client.corp_tag_list(tag_ids=["T1"], group_ids=["G1"])
    assert client.corp_tag_add(group_name="兴趣", order=3, tags=[{"name": "护肤", "order": 1}]) == group
    client.corp_tag_add(group_id="G1", tags=[{"name": "彩妆"}])
    client.mark_tag(userid="zhangsan", external_userid="wmA", add_tag=["T1"])
    bodies = [(p, b) for m, p, _, b in fake.requests[1:]]
    assert bodies == [
        ("externalcontact/get_corp_tag_list", {}),
        ("externalcontact/get_corp_tag_list", {"tag_id": ["T1"], "group_id": ["G1"]}),
        ("externalcontact/add_corp_tag", {"tag": [{"name": "护肤", "order": 1}], "group_name": "兴趣", "order": 3}),
        ("externalcontact/add_corp_tag", {"tag": [{"name": "彩妆"}], "group_id": "G1"}),
        (
            "externalcontact/mark_tag",
            {"userid": "zhangsan", "external_userid": "wmA", "add_tag": ["T1"], "remove_tag": []},
        ),
    ]
    assert {m for m, *_ in fake.requests[1:]} == {"POST"}


def test_tag_argument_checks(fake: FakeWeCom, sleeps: Sleeps) -> None:
    client = make(fake, sleeps)
    with pytest.raises(ValueError, match="exactly one"):
        client.corp_tag_add(group_id="G1", group_name="兴趣", tags=[{"name": "x"}])
    with pytest.raises(ValueError, match="at least one"):
        client.corp_tag_add(group_id="G1", tags=[])
    with pytest.raises(ValueError, match="add or to remove"):
        client.mark_tag(userid="u", external_userid="wm")
    assert fake.requests == []


# -- a real server and a real timeout ----------------------------------------------------------------------------


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    delay = 1.0

    def do_GET(self) -> None:
        if self.path.startswith("/cgi-bin/gettoken"):
            payload = {"errcode": 0, "errmsg": "ok", "access_token": "REAL", "expires_in": 7200}
        else:
            time.sleep(self.delay)
            payload = {"errcode": 0, "errmsg": "ok", "follow_user": ["late"]}
        data = json.dumps(payload).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cgi-bin/"
    server.shutdown()
    server.server_close()


def test_a_real_read_timeout_is_retried_then_reported(slow_server: str) -> None:
    sleeps = Sleeps()
    client = WeComClient(slow_server, CORP, SECRET, 0.2, retry=RetryPolicy(attempts=2), sleep=sleeps)
    started = time.monotonic()
    with pytest.raises(WeComTransportError) as info:
        client.follow_user_list()
    elapsed = time.monotonic() - started
    assert (info.value.errmsg, info.value.endpoint) == ("ReadTimeout", "externalcontact/get_follow_user_list")
    assert len(sleeps) == 1
    assert elapsed < 0.9  # two 0.2 s timeouts, never the server's full second
    client.close()


def test_nothing_listens_is_a_connect_error(sleeps: Sleeps) -> None:
    client = WeComClient("http://127.0.0.1:9/cgi-bin/", CORP, SECRET, 0.5, retry=RetryPolicy(attempts=2), sleep=sleeps)
    with pytest.raises(WeComTransportError) as info:
        client.follow_user_list()
    assert (info.value.endpoint, info.value.errmsg) == ("gettoken", "cannot connect: ConnectError")
    assert len(sleeps) == 1
