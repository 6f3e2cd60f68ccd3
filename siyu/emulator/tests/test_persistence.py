"""Deterministic seeding, the JSON snapshot across restarts, and `siyu emulator` served by gunicorn."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from siyu.emulator.config import EmulatorConfig
from siyu.emulator.core import Emulator
from siyu.emulator.model import Corp, dumps
from siyu.emulator.seed import SeedSpec, build_corp
from siyu.emulator.server import serve_in_thread
from siyu.emulator.tests.conftest import (
    ANCHOR,
    SMALL,
    WeComClient,
    copy_corp,
    free_port,
    serve_cli,
    stop_cli,
    wait_up,
)


def test_seeding_is_deterministic() -> None:
    assert dumps(build_corp(SMALL)) == dumps(build_corp(SMALL))
    assert dumps(build_corp(SeedSpec(seed=8, corp_id=SMALL.corp_id, anchor=ANCHOR))) != dumps(build_corp(SMALL))
    corp = build_corp(SeedSpec(seed=3, anchor=ANCHOR, customers=50))
    assert corp.corp_id.startswith("ww")
    assert len(corp.corp_id) == 18
    assert len(corp.contacts) == 50


def test_snapshot_round_trip_is_exact() -> None:
    corp = build_corp(SMALL)
    assert dumps(copy_corp(corp)) == dumps(corp)


def _no_seed() -> list[Corp]:
    raise AssertionError("a saved state must be resumed, not re-seeded")


def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "emulator" / "state.json"
    config = EmulatorConfig(state_path=path)
    running = serve_in_thread(Emulator.open(config, lambda: [build_corp(SMALL)]))
    corp_id = SMALL.resolved_corp_id()
    secret = running.emulator.corps[corp_id].apps[0].secret
    client = WeComClient(running.url, corp_id, secret)
    token = client.refresh()
    tag = client.post("externalcontact/add_corp_tag", {"group_name": "重启", "tag": [{"name": "保留"}]})
    added = client.admin("simulate/add_contact", {"userid": "brand_ip", "name": "重启前"})
    client.admin("clock", {"advance": 100})
    running.stop()  # writes the last snapshot
    assert json.loads(path.read_text(encoding="utf-8"))["format"] == 1

    again = serve_in_thread(Emulator.open(config, _no_seed))
    try:
        client = WeComClient(again.url, corp_id, secret, _token=token)
        assert client.get("externalcontact/get_follow_user_list")["errcode"] == 0  # the same token still works
        tags = client.post("externalcontact/get_corp_tag_list", {"group_id": [tag["tag_group"]["group_id"]]})
        assert tags["tag_group"][0]["tag"][0]["name"] == "保留"
        assert (
            client.get("externalcontact/get", external_userid=added["external_userid"])["external_contact"]["name"]
            == "重启前"
        )
        assert client.gettoken()["expires_in"] <= 7100  # the clock offset was kept too
    finally:
        again.stop()


def _serve(port: int, state: Path) -> subprocess.Popen[bytes]:
    args = ["--state", str(state), "--customers", "30", "--group-chats", "2", "--seed", "11"]
    return serve_cli(port, *args, "--corp-id", "wwclitest00000001")


def test_siyu_emulator_command_serves_with_gunicorn_and_resumes(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    state = tmp_path / "state.json"
    proc = _serve(port, state)
    try:
        corps = wait_up(url, proc)["corps"]
        (corp,) = corps  # type: ignore[misc]
        assert corp["corp_id"] == "wwclitest00000001"
        assert corp["counts"]["contacts"] == 30
        secret = next(a["secret"] for a in corp["apps"] if a["customer_contact"])
        client = WeComClient(url, corp["corp_id"], secret)
        token = client.refresh()
        assert len(client.get("externalcontact/get_follow_user_list")["follow_user"]) > 0
    finally:
        output = stop_cli(proc)
    assert "WeCom emulator" in output
    assert secret in output  # the banner tells the operator the credentials
    assert state.exists()

    proc = _serve(port, state)
    try:
        wait_up(url, proc)
        client = WeComClient(url, "wwclitest00000001", secret, _token=token)
        assert client.get("externalcontact/get_follow_user_list")["errcode"] == 0
    finally:
        stop_cli(proc)


def test_snapshot_keeps_activity_inheritance_moments_and_join_ways(tmp_path: Path) -> None:
    """Everything the simulator and the later endpoints add to a corp survives a restart unchanged."""
    path = tmp_path / "state.json"
    config = EmulatorConfig(state_path=path, moment_job_seconds=0)
    running = serve_in_thread(Emulator.open(config, lambda: [build_corp(SMALL)]))
    corp = running.emulator.corps[SMALL.resolved_corp_id()]
    client = WeComClient(running.url, corp.corp_id, corp.apps[0].secret)
    client.admin("simulate/run", {"steps": 300, "seed": 8})
    chat_id = next(iter(corp.group_chats))
    assert (
        client.post("externalcontact/groupchat/add_join_way", {"scene": 2, "chat_id_list": [chat_id]})["errcode"] == 0
    )
    handover = next(u for u in corp.members if u.startswith("guide") and corp.customers_of(u))
    customer = next(iter(corp.customers_of(handover)))
    body = {"handover_userid": handover, "takeover_userid": "brand_ip", "external_userid": [customer]}
    assert client.post("externalcontact/transfer_customer", body)["errcode"] == 0
    jobid = client.post("externalcontact/add_moment_task", {"text": {"content": "新品"}})["jobid"]
    moment_id = client.get("externalcontact/get_moment_task_result", jobid=jobid)["result"]["moment_id"]
    client.admin("simulate/moment/publish", {"moment_id": moment_id, "userid": handover})
    before = dumps(corp)
    running.stop()

    again = serve_in_thread(Emulator.open(config, _no_seed))
    try:
        restored = again.emulator.corps[corp.corp_id]
        assert dumps(restored) == before
        assert restored.transfers[0].status == 2
        assert restored.next_due() == restored.transfers[0].takeover_at  # derived state rebuilt, not stored
    finally:
        again.stop()
