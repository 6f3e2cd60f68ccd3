"""Deterministic seeding, the JSON snapshot across restarts, and `siyu emulator` served by gunicorn."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from siyu.emulator.config import EmulatorConfig
from siyu.emulator.core import Emulator
from siyu.emulator.model import Corp, dumps
from siyu.emulator.seed import SeedSpec, build_corp
from siyu.emulator.server import serve_in_thread
from siyu.emulator.tests.conftest import ANCHOR, SMALL, WeComClient, copy_corp

REPO = Path(__file__).resolve().parents[3]


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"siyu emulator exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/emulator/corps", timeout=2) as response:  # noqa: S310
                return json.loads(response.read())
        except OSError:
            time.sleep(0.2)
    raise AssertionError("siyu emulator did not come up")


def _serve(port: int, state: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "siyu.cli",
        "emulator",
        "--port",
        str(port),
        "--state",
        str(state),
        "--customers",
        "30",
        "--group-chats",
        "2",
        "--seed",
        "11",
        "--corp-id",
        "wwclitest00000001",
    ]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "siyu.settings"}
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: S603


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return out.decode()


def test_siyu_emulator_command_serves_with_gunicorn_and_resumes(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    state = tmp_path / "state.json"
    proc = _serve(port, state)
    try:
        corps = _wait_up(url, proc)["corps"]
        (corp,) = corps  # type: ignore[misc]
        assert corp["corp_id"] == "wwclitest00000001"
        assert corp["counts"]["contacts"] == 30
        secret = next(a["secret"] for a in corp["apps"] if a["customer_contact"])
        client = WeComClient(url, corp["corp_id"], secret)
        token = client.refresh()
        assert len(client.get("externalcontact/get_follow_user_list")["follow_user"]) > 0
    finally:
        output = _stop(proc)
    assert "WeCom emulator" in output
    assert secret in output  # the banner tells the operator the credentials
    assert state.exists()

    proc = _serve(port, state)
    try:
        _wait_up(url, proc)
        client = WeComClient(url, "wwclitest00000001", secret, _token=token)
        assert client.get("externalcontact/get_follow_user_list")["errcode"] == 0
    finally:
        _stop(proc)
