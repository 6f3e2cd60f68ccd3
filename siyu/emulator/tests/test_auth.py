"""gettoken, token expiry and the access_token / permission errors every other call goes through."""

from __future__ import annotations

import re

from siyu.emulator.seed import OTHER_AGENTID, SeedSpec, build_corp
from siyu.emulator.tests.conftest import ANCHOR, Running, StartEmulator


def test_gettoken_returns_the_same_token_until_it_expires(emulator: Running) -> None:
    client = emulator.client
    first = client.gettoken()
    assert first["errcode"] == 0
    assert first["errmsg"] == "ok"
    assert first["expires_in"] == 7200
    assert 0 < len(first["access_token"]) <= 512

    client.admin("clock", {"advance": 3600})
    again = client.gettoken()
    assert again["access_token"] == first["access_token"]
    assert 3595 <= again["expires_in"] <= 3600

    client.admin("clock", {"advance": 3601})
    renewed = client.gettoken()
    assert renewed["access_token"] != first["access_token"]
    assert renewed["expires_in"] == 7200


def test_expired_token_gives_42001_and_a_new_token_works(emulator: Running) -> None:
    client = emulator.client
    old = client.refresh()
    assert client.get("externalcontact/get_follow_user_list")["errcode"] == 0

    client.admin("clock", {"advance": 7201})
    assert client.get("externalcontact/get_follow_user_list", access_token=old)["errcode"] == 42001

    new = client.refresh()
    assert new != old
    assert client.get("externalcontact/get_follow_user_list", access_token=new)["errcode"] == 0
    assert client.get("externalcontact/get_follow_user_list", access_token=old)["errcode"] == 42001


def test_gettoken_errors(start_emulator: StartEmulator) -> None:
    other = build_corp(SeedSpec(seed=8, corp_id="wwtest0000000002", anchor=ANCHOR, customers=5, group_chats=0))
    first = build_corp(SeedSpec(seed=7, corp_id="wwtest0000000001", anchor=ANCHOR, customers=5, group_chats=0))
    running = start_emulator(corps=[first, other])
    client = running.client
    other_secret = other.apps[0].secret

    assert client.gettoken(corp_id="")["errcode"] == 41002
    assert client.gettoken(secret="")["errcode"] == 41004
    assert client.gettoken(corp_id="wwnosuchcorp00000")["errcode"] == 40013
    assert client.gettoken(secret="not-the-secret")["errcode"] == 40001
    assert client.gettoken(secret=other_secret)["errcode"] == 40091  # another corp's secret
    assert client.gettoken(corp_id=other.corp_id, secret=other_secret)["errcode"] == 0


def test_access_token_errors_and_error_shape(emulator: Running) -> None:
    client = emulator.client
    missing = client.request("GET", "/cgi-bin/externalcontact/get_follow_user_list").json()
    assert missing["errcode"] == 41001
    invalid = client.get("externalcontact/get_follow_user_list", access_token="forged")
    assert invalid["errcode"] == 40014
    # The real shape: text, hint, caller ip and the devtool link naming the code (wecom-api.md §1).
    assert re.fullmatch(
        r"invalid access_token, hint: \[\d+\], from ip: 127\.0\.0\.1, "
        r"more info at https://open\.work\.weixin\.qq\.com/devtool/query\?e=40014",
        invalid["errmsg"],
    )


def test_other_apps_token_may_read_the_org_but_not_customers(emulator: Running) -> None:
    secret = next(a.secret for a in emulator.corp.apps if a.agentid == OTHER_AGENTID)
    other = emulator.client_for(emulator.corp.corp_id, secret)
    assert other.get("department/list")["errcode"] == 0
    assert other.get("externalcontact/get_follow_user_list")["errcode"] == 48002
    # Tokens are per app: the two apps' tokens differ.
    assert other.token != emulator.client.token


def test_wrong_method_and_malformed_body_give_40063(emulator: Running) -> None:
    client = emulator.client
    assert client.get("externalcontact/batch/get_by_user")["errcode"] == 40063
    params = {"access_token": client.token}
    result = client.request("POST", "/cgi-bin/externalcontact/batch/get_by_user", params=params, raw=b"{not json")
    assert result.status == 200
    assert result.json()["errcode"] == 40063
    assert result.headers["Content-Type"] == "application/json; charset=UTF-8"


def test_unknown_api_is_a_404(emulator: Running) -> None:
    result = emulator.client.request("GET", "/cgi-bin/no/such/api", params={"access_token": emulator.client.token})
    assert result.status == 404
