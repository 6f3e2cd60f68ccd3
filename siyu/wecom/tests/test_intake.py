"""The callback intake: group commit between server threads, and the production server's WSGI route.

The route (siyu.wsgi.application) is driven as a WSGI server drives it, with real threads where it matters; the
group commit is first checked on its own with a recording writer, then through the route against the database.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection as db_connection
from django.db import connections
from django_tasks_db.models import DBTaskResult
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.testing import World, build_world
from siyu.wecom import intake
from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.intake import GroupCommit
from siyu.wecom.models import RawCallback
from siyu.wecom.services import connection_create
from siyu.wecom.tests.support import AES_KEY, CORP_A, TOKEN, contact_xml, signed_post
from siyu.wsgi import application

DB_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "fast"]}}

# -- group commit, on its own ------------------------------------------------------------------------------------


class Recorder:
    """A writer that records its groups, answers "<item>!" per item, and can be made slow or failing."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.groups: list[list[str]] = []
        self.threads: list[str] = []
        self.fail_on: str | None = None

    def __call__(self, items: list[str]) -> list[str]:
        self.groups.append(list(items))
        self.threads.append(threading.current_thread().name)
        time.sleep(self.delay)
        if self.fail_on in items:
            raise RuntimeError(f"cannot write {self.fail_on}")
        return [f"{item}!" for item in items]


def _in_threads(count: int, call: Callable[[int], Any]) -> list[Any]:
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            results[i] = call(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connections.close_all()  # this thread's own, if it used the database

    threads = [threading.Thread(target=run, args=(i,), name=f"t{i}") for i in range(count)]
    for thread in threads:
        thread.start()
        time.sleep(0.001)  # arrive in order, while the first group is being written
    for thread in threads:
        thread.join(10)
    return results


def test_a_lone_item_is_written_at_once_by_its_own_thread() -> None:
    writer = Recorder()
    assert GroupCommit(writer).submit("a") == "a!"
    assert writer.groups == [["a"]]
    assert writer.threads == [threading.current_thread().name]


def test_items_arriving_during_a_write_are_written_together_each_once() -> None:
    writer = Recorder(delay=0.05)
    commit = GroupCommit(writer, max_group=64)
    results = _in_threads(20, lambda i: commit.submit(f"i{i}"))
    assert results == [f"i{i}!" for i in range(20)]
    written = [item for group in writer.groups for item in group]
    assert sorted(written) == sorted(f"i{i}" for i in range(20))  # every item once
    assert written == [f"i{i}" for i in range(20)]  # in arrival order
    assert writer.groups[0] == ["i0"]  # the first arrival writes alone; the rest gathered meanwhile
    assert len(writer.groups) < 20


def test_groups_are_capped() -> None:
    writer = Recorder(delay=0.05)
    commit = GroupCommit(writer, max_group=4)
    _in_threads(13, lambda i: commit.submit(f"i{i}"))
    assert max(len(group) for group in writer.groups) == 4
    assert sum(len(group) for group in writer.groups) == 13


def test_a_failed_write_fails_its_group_only() -> None:
    writer = Recorder(delay=0.05)
    writer.fail_on = "i0"
    commit = GroupCommit(writer)
    results = _in_threads(6, lambda i: commit.submit(f"i{i}"))
    assert isinstance(results[0], RuntimeError)
    assert results[1:] == [f"i{i}!" for i in range(1, 6)]
    assert commit.submit("later") == "later!"


def test_a_writer_answering_the_wrong_number_of_results_is_an_error() -> None:
    commit: GroupCommit[str, str] = GroupCommit(lambda items: [])
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        commit.submit("a")


# -- the WSGI route --------------------------------------------------------------------------------------------


@pytest.fixture
def committed(transactional_db: None, settings: SettingsWrapper) -> Iterator[World]:
    """Brand A connected on corp wwA, committed: the route's kick enqueues from a thread of its own."""
    settings.TASKS = DB_TASKS
    world = build_world()
    connection_create(actor=world.actor("hq"), corp_id=CORP_A, callback_token=TOKEN, encoding_aes_key=AES_KEY)
    yield world
    intake._kick.release()


def _environ(method: str, path: str, query: dict[str, str] | str = "", body: bytes = b"", **extra: str) -> dict:
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query if isinstance(query, str) else urlencode(query),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "text/xml",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **extra,
    }


def _call(environ: dict) -> tuple[int, dict[str, str], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(headers)

    body = b"".join(application(environ, start_response))
    return answer["status"], answer["headers"], body


def _post(request: Any, **extra: str) -> tuple[int, dict[str, str], bytes]:
    return _call(_environ("POST", request.path, request.query, request.body, **extra))


def _jobs_naming() -> list[list[int]]:
    return [job["args"] for job in DBTaskResult.objects.values_list("args_kwargs", flat=True)]


def _wait_for_jobs(rows: int, timeout: float = 5.0) -> list[list[int]]:
    deadline = time.monotonic() + timeout
    while sum(len(args) for args in _jobs_naming()) < rows and time.monotonic() < deadline:
        time.sleep(0.02)
    return _jobs_naming()


ADD = contact_xml("add_external_contact", "guide1", "wmFAST01", State="s1")


def test_the_route_stores_answers_and_enqueues_outside_django(committed: World) -> None:
    status, headers, body = _post(signed_post(ADD))
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == "0"
    # Django's middleware never saw it: no session, CSRF or clickjacking headers.
    assert "Vary" not in headers
    assert "X-Frame-Options" not in headers
    row = RawCallback.objects.get()
    assert row.xml == ADD
    assert row.status == RawCallback.Status.RECEIVED
    # Processing is enqueued by the process's kick a few milliseconds later, one job naming the row.
    assert _wait_for_jobs(1) == [[row.id]]


def test_the_route_refuses_like_the_view(committed: World) -> None:
    assert _post(signed_post(ADD, token="otherToken"))[::2] == (403, b"bad_signature")
    assert _post(signed_post(ADD, key="wwNOBODY"))[::2] == (404, b"unknown_connection")
    stale = signed_post(ADD, timestamp=int(time.time()) - 3600)
    assert _post(stale)[::2] == (403, b"stale_timestamp")
    huge = _environ("POST", f"/wecom/callback/{CORP_A}/", "a=1", b"", CONTENT_LENGTH="999999999")
    assert _call(huge)[::2] == (413, b"body_too_large")  # refused before reading what was declared
    assert RawCallback.objects.count() == 0


def test_retries_and_reused_nonces_through_the_route(committed: World) -> None:
    first = signed_post(ADD, nonce="777")
    assert _post(first)[::2] == (200, b"")
    assert _post(first)[::2] == (200, b"")  # the identical request again: a retry
    assert _post(signed_post(ADD, timestamp=int(time.time()) + 1))[::2] == (200, b"")  # re-signed retry
    other = contact_xml("del_follow_user", "guide1", "wmFAST01")
    assert _post(signed_post(other, nonce="777"))[::2] == (403, b"nonce_reused")
    assert RawCallback.objects.count() == 1
    assert _wait_for_jobs(1) == [[RawCallback.objects.get().id]]


def test_everything_else_goes_to_django(committed: World) -> None:
    crypto = WeComCrypto(TOKEN, AES_KEY, CORP_A)
    timestamp, nonce, echostr = str(int(time.time())), "42", crypto.encrypt("hello")
    query = {"msg_signature": crypto.signature(timestamp, nonce, echostr), "timestamp": timestamp, "nonce": nonce}
    status, _, body = _call(_environ("GET", f"/wecom/callback/{CORP_A}/", {**query, "echostr": echostr}))
    assert (status, body) == (200, b"hello")  # URL verification, answered by the Django view
    assert _call(_environ("POST", f"/wecom/callback/{CORP_A}/extra/", "", b"<xml/>"))[0] == 404
    assert _call(_environ("POST", "/wecom/callback/", "", b"<xml/>"))[0] == 404


@pytest.mark.skipif(
    db_connection.vendor == "sqlite",
    reason="the in-memory SQLite test database answers concurrent writers with 'table is locked' instead of waiting",
)
def test_concurrent_callbacks_are_stored_in_groups_and_enqueued_once(committed: World) -> None:
    requests = [
        signed_post(contact_xml("add_external_contact", f"guide{i % 3 + 1}", f"wmCONC{i:03d}")) for i in range(40)
    ]
    # A few WeCom retries of the same events arrive at the same time as the originals.
    requests += [signed_post(contact_xml("add_external_contact", "guide1", "wmCONC000"))] * 3
    answers = _in_threads(len(requests), lambda i: _post(requests[i])[::2])
    assert answers == [(200, b"")] * len(requests)
    ids = set(RawCallback.objects.values_list("id", flat=True))
    assert len(ids) == 40
    jobs = _wait_for_jobs(40)
    named = [row_id for args in jobs for row_id in args]
    assert sorted(named) == sorted(ids)  # every row in exactly one job
