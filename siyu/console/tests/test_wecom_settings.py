"""The WeCom settings pages as an HQ admin uses them: the connection form, "test connection" against the emulator
over HTTP, sync now with its status and history, and the raw-callback log with its filters, detail and retry.

Who may open these pages at all is in test_scope_matrix.py.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.console.tests.conftest import attr_values, login
from siyu.core.errors import NotFound, PermissionDenied
from siyu.core.models import AuditLog
from siyu.emulator.model import Corp
from siyu.emulator.server import RunningServer
from siyu.testing import IMMEDIATE_TASKS, World
from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.models import RawCallback, SyncRun, WeComConnection
from siyu.wecom.selectors import connection_secrets
from siyu.wecom.services import (
    connection_create,
    connection_update,
    raw_callback_retry,
    sync_run_finish,
    sync_run_open,
    sync_run_progress,
)
from siyu.wecom.tests.emulated import emulator_serving
from siyu.wecom.tests.support import AES_KEY, TOKEN, contact_xml, event_xml, signed_post

CaptureOnCommit = Callable[..., Any]
SETTINGS = "console:wecom"
IMMEDIATE = IMMEDIATE_TASKS
DB_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "fast"]}}
CONTACT_SECRET = "contact-secret-0123456789abcdefWXYZ"
APP_SECRET = "app-secret-0123456789abcdef-LMNO"


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    # Access tokens are cached per corp + secret + URL; a token left by another test must not answer for this one.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def emulator() -> Iterator[RunningServer]:
    with emulator_serving() as server:
        yield server


def the_corp(server: RunningServer) -> Corp:
    return next(iter(server.emulator.corps.values()))


def connect(world: World, server: RunningServer | None = None, **overrides: str) -> WeComConnection:
    """Brand A connected to the emulator's corp (or to a corp nobody serves), as the HQ admin."""
    kwargs = {
        "corp_id": "wwchengguang01",
        "contact_secret": CONTACT_SECRET,
        "callback_token": TOKEN,
        "encoding_aes_key": AES_KEY,
        "api_base_url": "http://emulator.invalid/cgi-bin/",
    }
    if server is not None:
        corp = the_corp(server)
        kwargs |= {
            "corp_id": corp.corp_id,
            "agent_id": str(corp.apps[0].agentid),
            "contact_secret": corp.apps[0].secret,
            "api_base_url": f"{server.url}/cgi-bin/",
        }
    return connection_create(actor=world.actor("hq"), **(kwargs | overrides))


def form_data(**overrides: str) -> dict[str, str]:
    return {
        "corp_id": "wwchengguang01",
        "agent_id": "1000002",
        "contact_secret": CONTACT_SECRET,
        "app_secret": APP_SECRET,
        "callback_token": TOKEN,
        "encoding_aes_key": AES_KEY,
        "api_base_url": "http://emulator.invalid/cgi-bin/",
    } | overrides


def field_errors(html: str) -> dict[str, list[str]]:
    """Errors shown under each form row, by field name."""
    errors: dict[str, list[str]] = {}
    form = html.split('id="connection-form"')[1].split("</form>")[0]
    rows = re.split(r'<div class="form-row[^"]*" data-field="(\w+)">', form)
    for name, row in zip(rows[1::2], rows[2::2], strict=True):
        found = re.findall(r'class="field-error" role="alert">([^<]+)<', row)
        if found:
            errors[name] = found
    return errors


# -- the connection form -------------------------------------------------------------------------------------


def test_hq_connects_the_brand_and_stored_secrets_never_come_back(client: Client, world: World) -> None:
    login(client, "hq")
    empty = client.get(reverse(SETTINGS)).content.decode()
    assert "http://testserver/wecom/callback/CORP_ID/" in empty  # what the URL will look like

    response = client.post(reverse(SETTINGS), form_data())

    assert response.status_code == 302
    connection = WeComConnection.objects.get(tenant=world.tenant_a)
    secrets = connection_secrets(connection)
    assert (connection.corp_id, connection.agent_id, connection.api_base_url) == (
        "wwchengguang01",
        "1000002",
        "http://emulator.invalid/cgi-bin/",
    )
    assert (secrets.contact_secret, secrets.app_secret, secrets.callback_token, secrets.encoding_aes_key) == (
        CONTACT_SECRET,
        APP_SECRET,
        TOKEN,
        AES_KEY,
    )
    audit = AuditLog.objects.get(action="wecom_connection.create")
    assert audit.actor_id == world.users["hq"].pk
    html = client.get(reverse(SETTINGS)).content.decode()
    for secret in (CONTACT_SECRET, APP_SECRET, TOKEN, AES_KEY):
        assert secret not in html
        assert secret not in str(audit.detail)
    hints = dict(re.findall(r'data-secret-hint="(\w+)">([^<]+)<', html))
    assert hints == {
        "contact_secret": "已设置（••••WXYZ）。留空则保持不变。",
        "app_secret": "已设置（••••LMNO）。留空则保持不变。",
        # The token is 12 characters: too short to show any of it.
        "callback_token": "已设置（••••）。留空则保持不变。",
        "encoding_aes_key": f"已设置（••••{AES_KEY[-4:]}）。留空则保持不变。",
    }
    assert '<code id="callback-url" class="copyable">http://testserver/wecom/callback/wwchengguang01/</code>' in html
    assert 'value="wwchengguang01"' in html
    assert "企业微信连接已保存。" in html


def test_blank_secrets_keep_what_is_stored_and_only_changes_are_audited(client: Client, world: World) -> None:
    connect(world, app_secret=APP_SECRET)
    login(client, "hq")
    data = form_data(agent_id="1000009", contact_secret="", app_secret="", callback_token="", encoding_aes_key="")

    assert client.post(reverse(SETTINGS), data).status_code == 302

    connection = WeComConnection.objects.get(tenant=world.tenant_a)
    secrets = connection_secrets(connection)
    assert connection.agent_id == "1000009"
    assert (secrets.contact_secret, secrets.app_secret, secrets.callback_token, secrets.encoding_aes_key) == (
        CONTACT_SECRET,
        APP_SECRET,
        TOKEN,
        AES_KEY,
    )
    assert AuditLog.objects.get(action="wecom_connection.update").detail == {"fields": ["agent_id"]}


def test_a_new_secret_replaces_the_stored_one(client: Client, world: World) -> None:
    connect(world)
    login(client, "hq")
    data = form_data(
        agent_id="", contact_secret="another-secret-0000111122223333", app_secret="", callback_token="",
        encoding_aes_key="",
    )
    assert client.post(reverse(SETTINGS), data).status_code == 302
    secrets = connection_secrets(WeComConnection.objects.get())
    assert (secrets.contact_secret, secrets.app_secret, secrets.callback_token) == (
        "another-secret-0000111122223333", "", TOKEN
    )
    assert AuditLog.objects.get(action="wecom_connection.update").detail == {"fields": ["contact_secret"]}


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"encoding_aes_key": AES_KEY[:-1]}, {"encoding_aes_key": ["EncodingAESKey 必须是 43 位字母或数字。"]}),
        ({"encoding_aes_key": AES_KEY[:-1] + "+"}, {"encoding_aes_key": ["EncodingAESKey 必须是 43 位字母或数字。"]}),
        ({"callback_token": "token with spaces"}, {"callback_token": ["Token 为 1 到 32 位字母或数字。"]}),
        ({"corp_id": "12345"}, {"corp_id": ["企业 ID 不会全是数字；企业微信的企业 ID 以“ww”或“wx”开头。"]}),
        ({"corp_id": ""}, {"corp_id": ["这个字段是必填项。"]}),
        ({"agent_id": "10000x"}, {"agent_id": ["只能使用数字。"]}),
        ({"api_base_url": "ftp://qyapi.weixin.qq.com/"}, {"api_base_url": ["请输入 http:// 或 https:// 开头的地址。"]}),
        (
            {"contact_secret": "", "encoding_aes_key": ""},
            {"contact_secret": ["连接品牌时必填。"], "encoding_aes_key": ["连接品牌时必填。"]},
        ),
    ],
)
def test_bad_input_is_a_form_error_on_its_field_and_saves_nothing(
    client: Client, world: World, overrides: dict[str, str], errors: dict[str, list[str]]
) -> None:
    login(client, "hq")
    response = client.post(reverse(SETTINGS), form_data(**overrides))
    assert response.status_code == 422
    html = response.content.decode()
    assert field_errors(html) == errors
    assert not WeComConnection.objects.exists()
    assert not AuditLog.objects.filter(action__startswith="wecom_connection").exists()
    # A secret typed into the failed form is not sent back either.
    assert CONTACT_SECRET not in html


def test_a_corp_already_connected_to_another_brand_is_refused_on_the_corp_id(client: Client, world: World) -> None:
    connection_create(
        actor=world.actor("outsider"), corp_id="wwchengguang01", callback_token=TOKEN, encoding_aes_key=AES_KEY
    )
    login(client, "hq")
    response = client.post(reverse(SETTINGS), form_data())
    assert response.status_code == 422
    assert field_errors(response.content.decode()) == {"corp_id": ["另一个品牌已连接这个企业 ID。"]}
    assert not WeComConnection.objects.filter(tenant=world.tenant_a).exists()


def test_generate_fills_the_input_with_a_fresh_valid_value(client: Client, world: World) -> None:
    login(client, "hq")
    url = reverse("console:wecom_generate", args=["encoding_aes_key"])
    first = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    second = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    keys = [re.search(r'value="([^"]+)"', html).group(1) for html in (first, second)]  # type: ignore[union-attr]
    assert 'name="encoding_aes_key"' in first
    assert 'id="id_encoding_aes_key"' in first
    assert keys[0] != keys[1]
    for key in keys:
        assert re.fullmatch(r"[A-Za-z0-9]{43}", key)
        WeComCrypto(TOKEN, key, "wwX")  # a key WeCom's crypto accepts
    token = client.get(reverse("console:wecom_generate", args=["callback_token"])).content.decode()
    assert 'name="callback_token"' in token
    assert re.search(r'value="[A-Za-z0-9]{32}"', token)
    assert client.get(reverse("console:wecom_generate", args=["contact_secret"])).status_code == 404
    assert not WeComConnection.objects.exists()


# -- test connection ---------------------------------------------------------------------------------------------


def run_test(client: Client) -> str:
    response = client.post(reverse("console:wecom_test"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def checks(html: str) -> list[tuple[str, str, str]]:
    """(endpoint, ok|failed, errcode) per step shown."""
    return re.findall(r'class="check check-(ok|failed)" data-endpoint="([^"]+)" data-errcode="(-?\d+)"', html)


def test_connection_test_passes_against_the_emulator(client: Client, world: World, emulator: RunningServer) -> None:
    connect(world, emulator, app_secret=the_corp(emulator).apps[1].secret)
    login(client, "hq")
    html = run_test(client)
    assert 'data-test-ok="1"' in html
    assert "连接正常。" in html
    assert checks(html) == [
        ("ok", "gettoken", "0"),
        ("ok", "department/list", "0"),
        ("ok", "externalcontact/get_follow_user_list", "0"),
        ("ok", "gettoken", "0"),
        ("ok", "department/list", "0"),
    ]
    corp = the_corp(emulator)
    followers = sum(1 for m in corp.members.values() if m.customer_contact and m.status == 1)
    assert f"企业微信返回了 {followers} 条。" in html
    assert f"企业微信返回了 {len(corp.departments)} 条。" in html


def test_a_wrong_secret_shows_wecoms_errcode_and_what_to_do(
    client: Client, world: World, emulator: RunningServer
) -> None:
    connect(world, emulator)
    connection_update(actor=world.actor("hq"), changes={"contact_secret": "not-the-secret"})
    login(client, "hq")
    html = run_test(client)
    assert 'data-test-ok="0"' in html
    assert checks(html) == [("failed", "gettoken", "40001")]
    assert "获取 access_token" in html
    assert "企业微信拒绝了该 Secret" in html
    assert re.search(r"errcode 40001: invalid credential.*more info at https://open.work.weixin.qq.com", html)


def test_an_app_without_customer_contact_is_told_so(client: Client, world: World, emulator: RunningServer) -> None:
    connect(world, emulator, contact_secret=the_corp(emulator).apps[1].secret)
    login(client, "hq")
    html = run_test(client)
    assert checks(html) == [
        ("ok", "gettoken", "0"),
        ("ok", "department/list", "0"),
        ("failed", "externalcontact/get_follow_user_list", "48002"),
    ]
    assert "该应用无权调用此接口" in html


def test_an_unreachable_host_answers_quickly_in_plain_words(client: Client, world: World) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connect(world, api_base_url=f"http://127.0.0.1:{port}/cgi-bin/")
    login(client, "hq")
    started = time.monotonic()
    html = run_test(client)
    assert time.monotonic() - started < 5
    assert checks(html) == [("failed", "gettoken", "-2")]
    assert "无法连接 API 地址：请检查地址、DNS 和防火墙。" in html
    assert "cannot connect: ConnectError" in html


def test_testing_before_saving_asks_to_save_first(client: Client, world: World) -> None:
    login(client, "hq")
    assert "请先保存连接。" in run_test(client)


# -- sync ----------------------------------------------------------------------------------------------------------


def history(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr data-run-id="(\d+)" data-status="(\w+)">', html)


def phase_counts(html: str, run_id: int) -> dict[str, dict[str, int]]:
    row = re.search(rf'<tr data-run-id="{run_id}".*?</tr>\s*</tbody>\s*</table>', html, flags=re.S)
    assert row is not None
    counts: dict[str, dict[str, int]] = {}
    for phase, cells in re.findall(r'<tr data-phase="(\w+)">(.*?)</tr>', row.group(0), flags=re.S):
        counts[phase] = {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', cells)}
    return counts


def test_sync_now_runs_a_sync_and_the_history_shows_its_counts(
    client: Client,
    world: World,
    emulator: RunningServer,
    settings: SettingsWrapper,
    django_capture_on_commit_callbacks: CaptureOnCommit,
) -> None:
    settings.TASKS = IMMEDIATE
    connect(world, emulator)
    login(client, "hq")
    assert "还没有运行过同步。" in client.get(reverse("console:wecom_sync")).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("console:wecom_sync_start"), HTTP_HX_REQUEST="true")

    run = SyncRun.objects.get(tenant=world.tenant_a)
    assert (run.status, run.requested_by_id) == (SyncRun.Status.SUCCEEDED, world.users["hq"].pk)
    # The job ran after the response (on commit), as a worker would: the panel answered "requested" and polls.
    panel = response.content.decode()
    assert "已请求同步" in panel
    polled = re.search(r'hx-get="([^"]+\?requested=[\d.]+)"\s+hx-trigger="every 2s"', panel)
    assert polled is not None
    done = client.get(polled.group(1), HTTP_HX_REQUEST="true").content.decode()
    assert 'data-polling="0"' in done  # the run finished: polling stops
    assert 'hx-trigger="every 2s"' not in done
    page = client.get(reverse("console:wecom_sync")).content.decode()
    assert history(page) == [(str(run.id), "succeeded")]
    expected = {
        phase: {key: int(run.counts[phase].get(key, 0)) for key in ("created", "updated", "unchanged", "deleted")}
        for phase in ("members", "tags", "contacts", "groups")
    }
    assert phase_counts(page, run.id) == expected
    corp = the_corp(emulator)
    # Every member of the corp was seen (a member siyu already knew, like the brand IP account, is not new).
    assert sum(expected["members"][k] for k in ("created", "updated", "unchanged")) == len(corp.members)
    assert expected["groups"]["created"] == len(corp.group_chats)
    assert 'data-sync-state="succeeded"' in page


def test_sync_now_is_refused_while_a_sync_runs(
    client: Client, world: World, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    connect(world)
    run, _ = sync_run_open(tenant_id=world.tenant_a.id)
    login(client, "hq")
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("console:wecom_sync_start"), HTTP_HX_REQUEST="true")
    assert callbacks == []  # no job queued
    html = response.content.decode()
    assert "已有同步正在进行，未再启动新的同步。" in html
    assert 'id="sync-now" disabled' in html
    assert SyncRun.objects.get().id == run.id
    assert not AuditLog.objects.filter(action="wecom_sync.request").exists()


def test_the_running_sync_polls_every_2s_with_its_progress_and_stops_when_done(client: Client, world: World) -> None:
    connect(world)
    run, _ = sync_run_open(tenant_id=world.tenant_a.id)
    run = sync_run_progress(run=run, phase="members", checkpoint={"done": True}, counts={"created": 7, "unchanged": 2})
    run = sync_run_progress(run=run, phase="tags", checkpoint={"cursor": "x"}, counts={"created": 3})
    login(client, "hq")
    status_url = reverse("console:wecom_sync_status")

    html = client.get(reverse("console:wecom_sync")).content.decode()
    assert f'hx-get="{status_url}"' in html
    assert 'hx-trigger="every 2s"' in html
    assert 'data-sync-state="running"' in html
    assert "企业标签（第 2 / 4 阶段）" in html
    assert '<progress class="sync-progress" max="4" value="1">' in html
    assert phase_counts(html, run.id)["members"] == {"created": 7, "updated": 0, "unchanged": 2, "deleted": 0}

    sync_run_finish(run=run)
    done = client.get(status_url, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 2s"' not in done
    assert 'data-sync-state="succeeded"' in done
    assert history(done) == [(str(run.id), "succeeded")]


def test_a_sync_whose_heartbeat_stopped_is_shown_stalled_not_running(client: Client, world: World) -> None:
    connect(world)
    run, _ = sync_run_open(tenant_id=world.tenant_a.id)
    SyncRun.objects.filter(id=run.id).update(heartbeat_at=run.heartbeat_at - dt.timedelta(minutes=5))
    login(client, "hq")
    html = client.get(reverse("console:wecom_sync")).content.decode()
    assert 'data-sync-state="stalled"' in html
    assert "已停滞" in html
    assert 'hx-trigger="every 2s"' not in html


def test_a_queued_sync_polls_until_a_worker_starts_it(
    client: Client, world: World, settings: SettingsWrapper, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    settings.TASKS = DB_TASKS  # the job waits in the database for a worker
    connect(world)
    login(client, "hq")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        html = client.post(reverse("console:wecom_sync_start"), HTTP_HX_REQUEST="true").content.decode()
    assert len(callbacks) == 1
    assert "已请求同步" in html
    assert 'data-sync-state="queued"' in html
    polled = re.search(r'hx-get="([^"]+\?requested=[\d.]+)"', html)
    assert polled is not None
    poll_url = polled.group(1)
    assert 'data-sync-state="queued"' in client.get(poll_url, HTTP_HX_REQUEST="true").content.decode()

    sync_run_open(tenant_id=world.tenant_a.id)  # what the worker does first
    picked_up = client.get(poll_url, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-sync-state="queued"' not in picked_up
    assert 'data-sync-state="running"' in picked_up
    assert 'hx-trigger="every 2s"' in picked_up


@pytest.mark.parametrize("requested", ["", "soon", "nan", "1e308", "-1"])
def test_a_bad_requested_time_is_ignored(client: Client, world: World, requested: str) -> None:
    connect(world)
    login(client, "hq")
    response = client.get(reverse("console:wecom_sync_status"), {"requested": requested})
    assert response.status_code == 200
    assert 'data-polling="0"' in response.content.decode()


# -- the callback log --------------------------------------------------------------------------------------------


def deliver(xml: str, corp_id: str) -> RawCallback:
    """One callback through the real endpoint, signed and encrypted as WeCom does."""
    response = signed_post(xml, key=corp_id, corp_id=corp_id).send(Client())
    assert response.status_code == 200
    return RawCallback.objects.latest("id")


def event(kind: str, *, corp_id: str, at: int = 1767607200, **fields: str) -> str:
    return event_xml(kind[0], kind[1], create_time=at, corp_id=corp_id, **fields)


@pytest.fixture
def log(world: World, settings: SettingsWrapper) -> dict[str, RawCallback]:
    """Brand A's callbacks: processed, ignored, failed and received ones, received over several days."""
    settings.TASKS = DB_TASKS
    corp_id = connect(world).corp_id
    rows = {
        "added": deliver(contact_xml("add_external_contact", "guide1", "wmADD001", corp_id=corp_id), corp_id),
        "deleted": deliver(event(("change_external_contact", "del_follow_user"), corp_id=corp_id,
                                 UserID="guide2", ExternalUserID="wmDEL002"), corp_id),
        "chat": deliver(event(("change_external_chat", "dismiss"), corp_id=corp_id, ChatId="wrCHAT003"), corp_id),
        "broken": deliver(event(("change_external_contact", "add_external_contact"), corp_id=corp_id,
                                UserID="guide3"), corp_id),
    }
    from siyu.wecom.services import raw_callback_process

    for key in ("added", "deleted", "chat", "broken"):
        raw_callback_process(raw_callback_id=rows[key].id)
    now = dt.datetime.now(tz=dt.UTC)
    for days, key in ((3, "added"), (2, "deleted"), (1, "chat"), (0, "broken")):
        RawCallback.objects.filter(id=rows[key].id).update(received_at=now - dt.timedelta(days=days))
    # Brand B's callback: never in brand A's log.
    connection_create(actor=world.actor("outsider"), corp_id="wwyuanshan01", callback_token=TOKEN,
                      encoding_aes_key=AES_KEY)
    rows["other"] = deliver(event(("change_external_contact", "del_follow_user"), corp_id="wwyuanshan01",
                                  UserID="guide1", ExternalUserID="wmDEL002"), "wwyuanshan01")
    return {key: RawCallback.objects.get(id=row.id) for key, row in rows.items()}


def listed(client: Client, **params: str) -> list[int]:
    response = client.get(reverse("console:wecom_callbacks"), params)
    assert response.status_code == 200
    return [int(i) for i in attr_values(response.content.decode(), "data-callback-id")]


def test_the_log_lists_the_brands_callbacks_newest_first_with_their_outcome(
    client: Client, log: dict[str, RawCallback]
) -> None:
    order = ("broken", "chat", "deleted", "added")
    assert [log[k].status for k in order] == ["failed", "ignored", "ignored", "processed"]
    login(client, "hq")
    html = client.get(reverse("console:wecom_callbacks")).content.decode()
    assert [int(i) for i in attr_values(html, "data-callback-id")] == [log[k].id for k in order]
    assert attr_values(html, "data-status") == ["failed", "ignored", "ignored", "processed"]
    assert "BadEvent: the event has no ExternalUserID" in html
    assert "title=\"wmDEL002\">wmDEL002</td>" in html  # the customer column, full id on hover


@pytest.mark.parametrize(
    ("params", "keys"),
    [
        ({"status": "ignored"}, ["chat", "deleted"]),
        ({"status": "failed"}, ["broken"]),
        ({"event": "change_external_chat"}, ["chat"]),
        ({"change": "add_external_contact"}, ["broken", "added"]),
        ({"event": "change_external_contact", "change": "del_follow_user"}, ["deleted"]),
        ({"q": "wmDEL002"}, ["deleted"]),  # an external user id
        ({"q": "guide1"}, ["added"]),  # a member's user id
        ({"q": "wrCHAT003"}, ["chat"]),  # a chat id
        ({"q": "wmDEL"}, []),  # ids match whole, never in part
        ({"status": "processed", "q": "wmDEL002"}, []),
    ],
)
def test_filters_narrow_the_log(
    client: Client, log: dict[str, RawCallback], params: dict[str, str], keys: list[str]
) -> None:
    login(client, "hq")
    assert listed(client, **params) == [log[k].id for k in keys]


def test_the_date_range_takes_whole_days_of_the_brands_time_zone(client: Client, log: dict[str, RawCallback]) -> None:
    login(client, "hq")
    zone = ZoneInfo(django_settings.TIME_ZONE)
    order = ("broken", "chat", "deleted", "added")
    received = {k: log[k].received_at.astimezone(zone).date() for k in order}
    day = received["deleted"]
    assert listed(client, start=day.isoformat(), end=day.isoformat()) == [
        log[k].id for k in order if received[k] == day
    ]
    assert listed(client, start=received["chat"].isoformat()) == [
        log[k].id for k in order if received[k] >= received["chat"]
    ]
    assert listed(client, end=received["deleted"].isoformat()) == [
        log[k].id for k in order if received[k] <= received["deleted"]
    ]


def test_bad_filters_are_named_and_the_others_still_apply(client: Client, log: dict[str, RawCallback]) -> None:
    login(client, "hq")
    response = client.get(
        reverse("console:wecom_callbacks"),
        {"status": "exploded", "start": "2099-02-10", "end": "2099-02-01", "event": "change_external_chat"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "状态: 选择一个有效的选项。 exploded 不在可用的选项中。" in html
    assert "至: 结束日期早于开始日期。" in html
    assert [int(i) for i in attr_values(html, "data-callback-id")] == []  # the valid start (2099) still applies
    assert listed(client, event="change_external_chat", end="9999-12-31", start="junk") == [log["chat"].id]
    assert listed(client, event="<script>") == [log[k].id for k in ("broken", "chat", "deleted", "added")]


def test_the_log_pages_without_counting(client: Client, world: World, settings: SettingsWrapper) -> None:
    settings.SIYU_PAGE_SIZE = 2
    settings.TASKS = DB_TASKS
    corp_id = connect(world).corp_id
    ids = [
        deliver(event(("change_external_chat", "dismiss"), corp_id=corp_id, ChatId=f"wrPAGE{i}", at=1767607200 + i),
                corp_id).id
        for i in range(5)
    ]
    login(client, "hq")
    assert listed(client) == ids[::-1][:2]
    assert listed(client, page="3") == [ids[0]]
    html = client.get(reverse("console:wecom_callbacks"), {"page": "2"}, HTTP_HX_REQUEST="true")
    assert html["HX-Push-Url"] == "/settings/wecom/callbacks/?page=2"
    assert "第 2 页" in html.content.decode()


def test_the_detail_shows_the_decrypted_xml_and_the_parsed_fields(
    client: Client, world: World, log: dict[str, RawCallback]
) -> None:
    login(client, "hq")
    html = client.get(reverse("console:wecom_callback_detail", args=[log["deleted"].id])).content.decode()
    assert '<pre class="xml" id="callback-xml">&lt;xml&gt;\n  &lt;ToUserName&gt;wwchengguang01&lt;/' in html
    assert "&lt;ExternalUserID&gt;wmDEL002&lt;/ExternalUserID&gt;" in html
    fields = dict(re.findall(r'<tr data-field="(\w+)"><th>\w+</th><td class="mono">([^<]*)</td>', html))
    assert fields["ExternalUserID"] == "wmDEL002"
    assert fields["ChangeType"] == "del_follow_user"
    assert fields["CreateTime"] == "1767607200"
    assert 'data-status="ignored"' in html
    assert 'id="callback-retry"' not in html  # only failed rows offer a retry
    added = client.get(reverse("console:wecom_callback_detail", args=[log["added"].id])).content.decode()
    assert re.search(r'href="/customers/\d+/">打开客户</a>', added)
    other = client.get(reverse("console:wecom_callback_detail", args=[log["other"].id]))
    assert other.status_code == 404


def test_retry_reprocesses_a_failed_callback_once_wecom_is_reachable(
    client: Client,
    world: World,
    emulator: RunningServer,
    settings: SettingsWrapper,
    django_capture_on_commit_callbacks: CaptureOnCommit,
) -> None:
    settings.TASKS = IMMEDIATE
    connection = connect(world, emulator, api_base_url="http://127.0.0.1:9/cgi-bin/")  # WeCom unreachable at first
    corp = the_corp(emulator)
    group = next(g for g in corp.tag_groups.values() if not g.deleted)
    xml = event(("change_external_tag", "create"), corp_id=connection.corp_id, Id=group.tags[0].id, TagType="tag")
    with django_capture_on_commit_callbacks(execute=True):
        row = deliver(xml, connection.corp_id)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (RawCallback.Status.FAILED, 1)
    assert "cannot connect" in row.error
    login(client, "hq")
    detail_url = reverse("console:wecom_callback_detail", args=[row.id])
    assert 'id="callback-retry"' in client.get(detail_url).content.decode()

    connection_update(actor=world.actor("hq"), changes={"api_base_url": f"{emulator.url}/cgi-bin/"})
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(reverse("console:wecom_callback_retry", args=[row.id]))
    assert response.status_code == 302
    assert len(callbacks) == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == (RawCallback.Status.PROCESSED, 2)
    audit = AuditLog.objects.get(action="wecom_callback.retry")
    assert (audit.actor_id, audit.target_id) == (world.users["hq"].pk, str(row.id))
    html = client.get(detail_url).content.decode()
    assert "已将该回调重新排队处理。" in html
    assert 'data-status="processed"' in html

    # Retrying what is no longer failed changes nothing and says why.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        client.post(reverse("console:wecom_callback_retry", args=[row.id]))
    assert callbacks == []
    assert AuditLog.objects.filter(action="wecom_callback.retry").count() == 1
    assert "只有处理失败的回调可以重试。" in client.get(detail_url).content.decode()


@pytest.mark.parametrize("persona", ["region1", "store1", "guide1", "franchisee1", "outsider"])
def test_only_the_brands_hq_may_retry_a_callback(world: World, log: dict[str, RawCallback], persona: str) -> None:
    error = NotFound if persona == "outsider" else PermissionDenied  # another brand's row does not exist for them
    with pytest.raises(error):
        raw_callback_retry(actor=world.actor(persona), raw_callback_id=log["broken"].id)
    assert RawCallback.objects.get(id=log["broken"].id).status == RawCallback.Status.FAILED
    assert not AuditLog.objects.filter(action="wecom_callback.retry").exists()
