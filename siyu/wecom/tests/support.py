"""Helpers for the WeCom connector's tests: a connected brand, event XML, and signed callback requests."""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from django.test import Client
from django.test.client import Client as _Client

from siyu.wecom.crypto import WeComCrypto

TOKEN = "siyuToken123"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
CORP_A = "wwA"  # the fixed world's brand A
CORP_B = "wwB"
T0 = 1767607200  # 2026-01-05 10:00 UTC, the fixed world's t0
SECRET = "s3cret-contact"  # the app secret FakeWeCom accepts (with "other-secret")


def event_xml(event: str, change_type: str = "", *, create_time: int = T0, corp_id: str = CORP_A, **fields: Any) -> str:
    """A self-built-app event as WeCom's inner XML; list values become <Item> children."""
    parts = [
        f"<ToUserName><![CDATA[{corp_id}]]></ToUserName>",
        "<FromUserName><![CDATA[sys]]></FromUserName>",
        f"<CreateTime>{create_time}</CreateTime>",
        "<MsgType><![CDATA[event]]></MsgType>",
        f"<Event><![CDATA[{event}]]></Event>",
    ]
    if change_type:
        parts.append(f"<ChangeType><![CDATA[{change_type}]]></ChangeType>")
    for name, value in fields.items():
        if isinstance(value, list):
            parts.append(f"<{name}>" + "".join(f"<Item>{item}</Item>" for item in value) + f"</{name}>")
        else:
            parts.append(f"<{name}><![CDATA[{value}]]></{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def contact_xml(change_type: str, userid: str, external_userid: str, *, create_time: int = T0, **fields: Any) -> str:
    return event_xml(
        "change_external_contact",
        change_type,
        create_time=create_time,
        UserID=userid,
        ExternalUserID=external_userid,
        **fields,
    )


@dataclass
class SignedRequest:
    """One callback POST as WeCom would send it."""

    path: str
    query: dict[str, str]
    body: bytes

    @property
    def url(self) -> str:
        return f"{self.path}?{urlencode(self.query)}"

    def send(self, client: _Client | None = None) -> Any:
        return (client or Client()).post(self.url, data=self.body, content_type="text/xml")


def signed_post(
    xml: str,
    *,
    key: str = CORP_A,
    corp_id: str = CORP_A,
    token: str = TOKEN,
    aes_key: str = AES_KEY,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> SignedRequest:
    crypto = WeComCrypto(token, aes_key, corp_id)
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or str(secrets.randbelow(10**10))
    encrypted, signature = crypto.encrypt_message(plaintext=xml, timestamp=ts, nonce=nonce)
    body = crypto.build_envelope(to_user=corp_id, encrypted=encrypted)
    return SignedRequest(
        path=f"/wecom/callback/{key}/",
        query={"msg_signature": signature, "timestamp": ts, "nonce": nonce},
        body=body,
    )


class FakeWeCom:
    """Just enough of WeCom: gettoken, token checks, canned answers per path, and scripted faults."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.issued = 0
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.faults: dict[str, list[Any]] = {}
        self.answers: dict[str, Any] = {}
        self.gettoken_delay = 0.0
        self.lock = threading.Lock()

    def fault(self, path: str, *faults: Any) -> None:
        self.faults.setdefault(path, []).extend(faults)

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/cgi-bin/")
        params = dict(request.url.params)
        body = json.loads(request.content) if request.content else None
        with self.lock:
            self.requests.append((request.method, path, params, body))
            fault = self.faults[path].pop(0) if self.faults.get(path) else None
        if fault == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if fault == "connect":
            raise httpx.ConnectError("refused", request=request)
        if fault == "truncated":
            return httpx.Response(200, content=b'{"errcode":0,"errmsg":"ok","follow_u')
        if isinstance(fault, str) and fault.startswith("http"):
            return httpx.Response(int(fault[4:]), content=b"<html>bad gateway</html>")
        if isinstance(fault, int):
            return httpx.Response(200, json={"errcode": fault, "errmsg": f"error {fault}, hint: [x]"})
        if path == "gettoken":
            if params.get("corpsecret") not in (SECRET, "other-secret"):
                return httpx.Response(200, json={"errcode": 40001, "errmsg": "invalid credential"})
            time.sleep(self.gettoken_delay)
            with self.lock:
                self.issued += 1
                token = f"TOKEN{self.issued}"
                self.tokens.add(token)
            return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200})
        if params.get("access_token") not in self.tokens:
            return httpx.Response(200, json={"errcode": 40014, "errmsg": "invalid access_token"})
        answer = self.answers.get(path, {})
        answer = answer(params, body) if callable(answer) else answer
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", **answer})

    def paths(self) -> list[str]:
        return [path for _, path, _, _ in self.requests]


class FakeWeComServer:
    """A FakeWeCom served over real HTTP on a free 127.0.0.1 port: for code that builds its own client from a
    connection's URL (callback processing in jobs), where no transport can be injected."""

    def __init__(self, fake: FakeWeCom) -> None:
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        class _Quiet(WSGIRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            query = environ.get("QUERY_STRING", "")
            url = f"http://fake{environ['PATH_INFO']}" + (f"?{query}" if query else "")
            response = fake.handler(httpx.Request(environ["REQUEST_METHOD"], url, content=body))
            start_response(f"{response.status_code} X", [("Content-Type", "application/json")])
            return [response.content]

        self.fake = fake
        self.server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/cgi-bin/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
