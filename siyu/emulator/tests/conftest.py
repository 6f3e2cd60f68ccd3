"""Fixtures: a real emulator HTTP server on a free 127.0.0.1 port, and a small WeCom client that talks to it.

Tests reach the emulator only over HTTP (WeCom's /cgi-bin/ API and the /emulator/ admin surface). Ground truth
comes from the seeded corp, built independently of the server by the same deterministic seed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from siyu.emulator.clock import Clock
from siyu.emulator.config import EmulatorConfig
from siyu.emulator.core import Emulator
from siyu.emulator.model import Corp, from_jsonable, to_jsonable
from siyu.emulator.seed import SeedSpec, build_corp
from siyu.emulator.server import RunningServer, serve_in_thread
from siyu.wecom.crypto import WeComCrypto, parse_xml

REPO = Path(__file__).resolve().parents[3]
ANCHOR = 1_700_000_000  # fixed, so seeded corps are identical on every run
SMALL = SeedSpec(seed=7, corp_id="wwtest0000000001", anchor=ANCHOR, customers=240, group_chats=14)


@dataclass
class HttpResult:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class WeComClient:
    base_url: str
    corp_id: str
    secret: str
    _token: str = ""
    calls: int = field(default=0)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        raw: bytes | None = None,
    ) -> HttpResult:
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http://127.0.0.1 only
        self.calls += 1
        try:
            with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310
                return HttpResult(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as error:
            return HttpResult(error.code, error.read(), dict(error.headers))

    # -- WeCom API ------------------------------------------------------------------------------------------------

    def gettoken(self, corp_id: str | None = None, secret: str | None = None) -> dict[str, Any]:
        params = {"corpid": self.corp_id if corp_id is None else corp_id}
        params["corpsecret"] = self.secret if secret is None else secret
        return self.request("GET", "/cgi-bin/gettoken", params=params).json()

    @property
    def token(self) -> str:
        if not self._token:
            self.refresh()
        return self._token

    def refresh(self) -> str:
        data = self.gettoken()
        assert data["errcode"] == 0, data
        self._token = data["access_token"]
        return self._token

    def get(self, api: str, **params: Any) -> dict[str, Any]:
        params.setdefault("access_token", self.token)
        return self.request("GET", "/cgi-bin/" + api, params=params).json()

    def post(self, api: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        params.setdefault("access_token", self.token)
        return self.request("POST", "/cgi-bin/" + api, params=params, body=body).json()

    # -- the emulator's admin surface ---------------------------------------------------------------------------

    def admin(self, path: str, body: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        result = self.request("POST" if body is not None else "GET", "/emulator/" + path, params=params, body=body)
        assert result.status == 200, result.body
        return result.json()

    def admin_raw(self, path: str, body: dict[str, Any]) -> HttpResult:
        return self.request("POST", "/emulator/" + path, body=body)

    def wait_callbacks(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The recorded deliveries once `count` exist and none is still being tried."""
        deadline = time.monotonic() + timeout
        while True:
            data = self.admin("callbacks")
            done = [d for d in data["deliveries"] if d["acknowledged"] is not None]
            if len(done) >= count and data["pending"] == 0:
                return data["deliveries"]
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} finished deliveries, have {data}")
            time.sleep(0.02)


@dataclass
class Running:
    server: RunningServer
    client: WeComClient
    corp: Corp  # ground truth: an independent copy of what the server was seeded with

    @property
    def url(self) -> str:
        return self.server.url

    def client_for(self, corp_id: str, secret: str) -> WeComClient:
        return WeComClient(self.url, corp_id, secret)


StartEmulator = Callable[..., Running]


def copy_corp(corp: Corp) -> Corp:
    return from_jsonable(Corp, json.loads(json.dumps(to_jsonable(corp))))


@pytest.fixture
def start_emulator() -> Iterator[StartEmulator]:
    """Start emulators (stopped at teardown): start(spec=..., corps=[...], **EmulatorConfig fields)."""
    running: list[RunningServer] = []

    def start(
        spec: SeedSpec = SMALL, corps: list[Corp] | None = None, clock: Clock | None = None, **config: Any
    ) -> Running:
        seeded = corps if corps is not None else [build_corp(spec)]
        truth = copy_corp(seeded[0])
        config.setdefault("callback_retry_delay", 0.05)
        server = serve_in_thread(Emulator(EmulatorConfig(**config), [copy_corp(c) for c in seeded], clock=clock))
        running.append(server)
        app = next(a for a in truth.apps if a.customer_contact)
        return Running(server, WeComClient(server.url, truth.corp_id, app.secret), truth)

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def emulator(start_emulator: StartEmulator) -> Running:
    return start_emulator()


def follow_pairs(corp: Corp) -> set[tuple[str, str]]:
    return {(f.userid, c.external_userid) for c in corp.contacts.values() for f in c.follows.values()}


# -- a callback receiver ------------------------------------------------------------------------------------------

TOKEN = "emulatortoken"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"  # wecom-api.md §2.5's key: any 43-char key works


@dataclass
class Received:
    query: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A tiny callback endpoint: answers from `script` ((status, delay) per request), then 200."""

    server: ThreadingHTTPServer
    script: list[tuple[int, float]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/wecom/callback"

    def connect(self, running: Running) -> None:
        """Point the emulator's corp at this receiver with the test token and key."""
        running.client.admin("callback", {"url": self.url, "token": TOKEN, "encoding_aes_key": AES_KEY})

    def wait(self, count: int, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} callbacks, received {len(self.received)}")
            time.sleep(0.02)
        return list(self.received)

    def events(self, corp_id: str) -> list[ElementTree.Element]:
        """Every received callback verified and decrypted with siyu's crypto, in arrival order."""
        crypto = WeComCrypto(TOKEN, AES_KEY, corp_id)
        return [
            parse_xml(
                crypto.decrypt_message(
                    body=r.body,
                    msg_signature=r.query["msg_signature"],
                    timestamp=r.query["timestamp"],
                    nonce=r.query["nonce"],
                )
            )
            for r in self.received
        ]


def _start_receiver() -> Receiver:
    holder: dict[str, Receiver] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            with lock:
                rec = holder["receiver"]
                rec.received.append(Received(query, body, time.monotonic()))
                status, delay = rec.script.pop(0) if rec.script else (200, 0.0)
            time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:  # the emulator gave up waiting and closed the connection
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["receiver"] = Receiver(server)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return holder["receiver"]


@pytest.fixture
def make_receiver() -> Iterator[Callable[[], Receiver]]:
    started: list[Receiver] = []

    def make() -> Receiver:
        started.append(_start_receiver())
        return started[-1]

    yield make
    for receiver in started:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def receiver(make_receiver: Callable[[], Receiver]) -> Receiver:
    return make_receiver()


# -- `siyu emulator` as a subprocess ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_cli(port: int, *args: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "siyu.cli", "emulator", "--port", str(port), *args]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "siyu.settings"}
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: S603


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> dict[str, Any]:
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


def stop_cli(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return out.decode()
