"""The emulator: a plain WSGI application holding its own WeCom state (no Django, no siyu database).

Request flow for /cgi-bin/ (WeCom's API):
  route lookup → fault draw (latency, 5xx) → under the state lock: settle what came due (transfers whose 24 hours
  passed complete and fire their callbacks), access_token check (41001/40014/42001),
  48002 for customer-contact APIs called with another app's token, per-corp per-API frequency limit (45009),
  injected 45009/42001, the endpoint → JSON (cut in half when a truncation fault hit).
/emulator/ is the emulator's own admin surface (see `siyu.emulator.admin`): faults, limits, clock, corps,
simulated client actions, the behaviour simulator, recorded callback deliveries, the chat message store. It is
never rate-limited or faulted.

State is in memory behind one re-entrant lock; a saver thread writes a JSON snapshot (atomically) when
something changed, and `close()` writes a last one, so a restarted emulator resumes with the same corps,
customers and tokens.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import secrets
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siyu.emulator.callbacks import CallbackSender, Event
from siyu.emulator.cgi import Call, Route, load_routes
from siyu.emulator.clock import Clock
from siyu.emulator.config import EmulatorConfig
from siyu.emulator.errors import MESSAGES, ApiError, ErrCode
from siyu.emulator.faults import FaultInjector
from siyu.emulator.inheritance import settle as settle_transfers
from siyu.emulator.limits import RateLimiter
from siyu.emulator.model import App, Corp, Token, dumps, from_jsonable

if TYPE_CHECKING:
    from siyu.emulator.simulator import BackgroundSimulation, Mix

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1
StartResponse = Callable[[str, list[tuple[str, str]]], Any]
JSON_TYPE = "application/json; charset=UTF-8"
_STATUS = {
    200: "200 OK",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    503: "503 Service Unavailable",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    remote_addr: str

    def json(self) -> dict[str, Any]:
        """The JSON object body; 40063 when it is not one (the doc's answer to a wrongly encoded body)."""
        if not self.body.strip():
            return {}
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(ErrCode.PARAMETER_EMPTY, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise ApiError(ErrCode.PARAMETER_EMPTY, "the body is not a JSON object")
        return data


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


class Emulator:
    def __init__(self, config: EmulatorConfig, corps: Iterable[Corp] = (), *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.corps: dict[str, Corp] = {c.corp_id: c for c in corps}
        self.tokens: dict[str, Token] = {}
        self.routes: dict[str, Route] = load_routes()
        self.faults = FaultInjector(config.faults)
        self.limiter = RateLimiter()
        self.limiter.configure(config.limits)
        self.callbacks = CallbackSender(
            clock=self.clock,
            timeout=config.callback_timeout,
            attempts=config.callback_attempts,
            retry_delay=config.callback_retry_delay,
            workers=config.callback_workers,
        )
        self._hints = 0
        self._dirty = False
        self._save_lock = threading.Lock()
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None
        self._settler: threading.Thread | None = None
        # The behaviour simulator running in the background, if any (one per emulator: the demo's live activity).
        self.simulation: BackgroundSimulation | None = None

    # -- life cycle --------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, config: EmulatorConfig, seed: Callable[[], list[Corp]], *, clock: Clock | None = None) -> Emulator:
        """Resume from the snapshot at config.state_path if there is one, else start from `seed()`."""
        path = config.state_path
        if path is not None and path.exists():
            emulator = cls(config, clock=clock)
            emulator.load(json.loads(path.read_text(encoding="utf-8")))
            log.info("emulator state loaded from %s", path)
            return emulator
        emulator = cls(config, seed(), clock=clock)
        emulator._dirty = path is not None
        return emulator

    def start(self) -> Emulator:
        self.callbacks.start()
        if self.config.state_path is not None:
            self._saver = threading.Thread(target=self._save_loop, name="emulator-saver", daemon=True)
            self._saver.start()
        self._settler = threading.Thread(target=self._settle_loop, name="emulator-settler", daemon=True)
        self._settler.start()
        if self.config.simulate_rate > 0 and self.corps:
            self.simulation_start(seed=self.config.simulate_seed, rate=self.config.simulate_rate)
        return self

    def close(self) -> None:
        self.simulation_stop()
        self._stop.set()
        for thread in (self._saver, self._settler):
            if thread is not None:
                thread.join(5)
        self.callbacks.stop()
        self.save()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return json.loads(self.snapshot_json())

    def snapshot_json(self) -> str:
        with self.lock:
            return dumps(self._snapshot_dict(self.clock.offset, list(self.corps.values()), list(self.tokens.values())))

    @staticmethod
    def _snapshot_dict(offset: float, corps: list[Corp], tokens: list[Token]) -> dict[str, Any]:
        return {"format": SNAPSHOT_FORMAT, "clock_offset": offset, "corps": corps, "tokens": tokens}

    def load(self, snapshot: dict[str, Any]) -> None:
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported emulator snapshot format {snapshot.get('format')!r}")
        with self.lock:
            self.corps = {c["corp_id"]: from_jsonable(Corp, c) for c in snapshot["corps"]}
            self.tokens = {t["token"]: from_jsonable(Token, t) for t in snapshot.get("tokens", [])}
            offset = float(snapshot.get("clock_offset", 0.0))
            if offset > self.clock.offset:
                self.clock.advance(offset - self.clock.offset)

    def save(self) -> None:
        """Write the snapshot if anything changed since the last one.

        Only a pickled copy is taken under the state lock (a 50k-customer corp takes ~1 s on a slow box to
        encode as JSON, and API calls would wait that long); the JSON is produced from the copy outside it.
        """
        path = self.config.state_path
        if path is None:
            return
        with self._save_lock:
            with self.lock:
                if not self._dirty:
                    return
                frozen = pickle.dumps((self.clock.offset, list(self.corps.values()), list(self.tokens.values())))
                self._dirty = False
            offset, corps, tokens = pickle.loads(frozen)  # noqa: S301 - bytes we made a line above, never a file
            _write_atomically(path, dumps(self._snapshot_dict(offset, corps, tokens)))

    def mark_dirty(self) -> None:
        self._dirty = True

    def _save_loop(self) -> None:
        while not self._stop.wait(self.config.save_interval):
            try:
                self.save()
            except OSError:
                log.exception("could not save the emulator state")

    # -- the behaviour simulator -----------------------------------------------------------------------------------

    def simulation_start(
        self, *, seed: int, rate: float, corp_id: str = "", mix: Mix | None = None
    ) -> BackgroundSimulation:
        """Run the simulator at `rate` actions per second in the background, replacing one already running."""
        from siyu.emulator.simulator import BackgroundSimulation, Simulator

        simulator = Simulator(seed, self, corp_id=corp_id, mix=mix, max_records=10_000)
        self.simulation_stop()
        self.simulation = BackgroundSimulation(simulator, rate).start()
        return self.simulation

    def simulation_stop(self) -> None:
        if self.simulation is not None:
            self.simulation.stop()

    # -- WeCom's own time-driven changes --------------------------------------------------------------------------

    def settle(self, now: float) -> list[int]:
        """Complete what WeCom completes by itself once its time has come (transfers after their 24 hours, group
        inheritance) and deliver the resulting events. The caller holds the state lock. Every API and admin request
        settles first, so a client never sees a state that should already have moved on; a background thread
        settles too, so the events also come when nobody calls."""
        events: list[Event] = []
        for corp in self.corps.values():
            if corp.next_due() <= now:
                events += settle_transfers(corp, now, member_limit=self.config.member_customer_limit)
                self._dirty = True
        return self.emit(events) if events else []

    def _settle_loop(self) -> None:
        while not self._stop.wait(self.config.settle_interval):
            try:
                with self.lock:
                    self.settle(self.clock.now())
            except Exception:  # a bug must not stop transfers from ever completing
                log.exception("settling the emulator state failed")

    # -- events --------------------------------------------------------------------------------------------------

    def emit(self, events: Iterable[Event]) -> list[int]:
        """Queue events for delivery to their corp's callback URL; returns the delivery ids."""
        ids = []
        for event in events:
            corp = self.corps[event.corp_id]
            ids.append(self.callbacks.submit(event, corp.callback).id)
        return ids

    # -- WSGI ----------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        request = _read_request(environ)
        try:
            if request.path.startswith("/emulator/") or request.path == "/emulator":
                from siyu.emulator.admin import handle_admin

                response = handle_admin(self, request)
            elif request.path.startswith("/cgi-bin/"):
                response = self._cgi(request)
            else:
                response = Response.json({"error": "not found"}, 404)
        except Exception:
            log.exception("emulator error on %s %s", request.method, request.path)
            response = Response.json({"errcode": -1, "errmsg": "system busy"}, 200)
        start_response(
            _STATUS.get(response.status, f"{response.status} Status"),
            [("Content-Type", response.content_type), ("Content-Length", str(len(response.body)))],
        )
        return [response.body]

    def _cgi(self, request: Request) -> Response:
        route = self.routes.get(request.path)
        if route is None and request.path != "/cgi-bin/gettoken":
            return Response.json({"errcode": 404, "errmsg": f"the emulator has no API {request.path}"}, 404)
        decision = self.faults.draw(request.path)
        if decision.latency_s:
            time.sleep(decision.latency_s)  # a slow network, not WeCom bookkeeping: real time
        if decision.http_5xx:
            self.faults.record("http_5xx")
            page = b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
            return Response(503, page, "text/html")
        with self.lock:
            now = self.clock.now()
            self.settle(now)
            try:
                if route is None:  # gettoken: the one call without an access_token
                    data = self._gettoken(request, now, decision.errcode_45009)
                else:
                    data = self._call(route, request, now, decision.errcode_45009, decision.errcode_42001)
                payload: dict[str, Any] = {"errcode": 0, "errmsg": "ok", **data}
            except ApiError as error:
                payload = {"errcode": int(error.code), "errmsg": self._errmsg(error, request), **error.extra}
            # Encoded under the lock: the payload may share lists with the live state another call could change.
            response = Response.json(payload)
        if decision.truncate:
            self.faults.record("truncate")
            response.body = response.body[: len(response.body) // 2]
        return response

    def _errmsg(self, error: ApiError, request: Request) -> str:
        # The shape of real error messages (wecom-api.md §1); clients must branch on errcode, never on this text.
        self._hints += 1
        text = MESSAGES.get(error.code, "error")
        if error.detail:
            text = f"{text}: {error.detail}"
        hint = f"{int(self.clock.now())}{self._hints:06d}"
        return (
            f"{text}, hint: [{hint}], from ip: {request.remote_addr}, "
            f"more info at https://open.work.weixin.qq.com/devtool/query?e={int(error.code)}"
        )

    def _limit(self, corp_id: str, api: str, now: float, injected: bool) -> None:
        if not self.limiter.hit(corp_id, api, now):
            raise ApiError(ErrCode.FREQUENCY_LIMIT)
        if injected:
            self.faults.record("errcode_45009")
            raise ApiError(ErrCode.FREQUENCY_LIMIT, "injected")

    def _gettoken(self, request: Request, now: float, inject_45009: bool) -> dict[str, Any]:
        corp_id = request.query.get("corpid", "")
        secret = request.query.get("corpsecret", "")
        if not corp_id:
            raise ApiError(ErrCode.MISSING_CORPID)
        if not secret:
            raise ApiError(ErrCode.MISSING_SECRET)
        corp = self.corps.get(corp_id)
        if corp is None:
            raise ApiError(ErrCode.INVALID_CORPID)
        self._limit(corp_id, request.path, now, inject_45009)
        app = corp.app_by_secret(secret)
        if app is None:
            other_corp = any(c.app_by_secret(secret) for c in self.corps.values() if c is not corp)
            raise ApiError(ErrCode.SECRET_OF_OTHER_CORP if other_corp else ErrCode.INVALID_SECRET)
        # Within its validity the same token is returned again (wecom-api.md §1); expires_in is what remains.
        current = next(
            (
                t
                for t in self.tokens.values()
                if t.corp_id == corp_id and t.agentid == app.agentid and t.expires_at > now
            ),
            None,
        )
        if current is None:
            self._forget_expired(now)
            current = Token(secrets.token_urlsafe(96), corp_id, app.agentid, now + self.config.token_ttl)
            self.tokens[current.token] = current
            self._dirty = True
        return {"access_token": current.token, "expires_in": max(1, int(current.expires_at - now))}

    def _forget_expired(self, now: float) -> None:
        # Expired tokens are kept a day so a late caller gets 42001 (expired) rather than 40014 (unknown).
        for token in [t for t in self.tokens.values() if t.expires_at < now - 86_400]:
            del self.tokens[token.token]

    def _authenticate(self, request: Request, now: float) -> tuple[Corp, App, Token]:
        value = request.query.get("access_token", "")
        if not value:
            raise ApiError(ErrCode.MISSING_ACCESS_TOKEN)
        token = self.tokens.get(value)
        corp = self.corps.get(token.corp_id) if token else None
        app = corp.app_by_agentid(token.agentid) if corp and token else None
        if token is None or corp is None or app is None:
            raise ApiError(ErrCode.INVALID_ACCESS_TOKEN)
        if token.expires_at <= now:
            raise ApiError(ErrCode.ACCESS_TOKEN_EXPIRED)
        return corp, app, token

    def _call(
        self, route: Route, request: Request, now: float, inject_45009: bool, inject_42001: bool
    ) -> dict[str, Any]:
        corp, app, token = self._authenticate(request, now)
        if route.contact_api and not app.customer_contact:
            raise ApiError(ErrCode.API_NOT_PERMITTED, "configure the app in 客户联系 → 可调用接口的应用")
        self._limit(corp.corp_id, route.path, now, inject_45009)
        if inject_42001:
            # WeCom may invalidate a token early; the client must fetch a new one (gettoken then issues one).
            token.expires_at = now
            self._dirty = True
            self.faults.record("errcode_42001")
            raise ApiError(ErrCode.ACCESS_TOKEN_EXPIRED, "injected")
        if request.method not in route.methods:
            raise ApiError(ErrCode.PARAMETER_EMPTY, f"use {'/'.join(route.methods)}")
        body = request.json() if request.method == "POST" and not route.raw_body else {}
        call = Call(corp=corp, app=app, query=request.query, body=body, now=now, config=self.config, raw=request.body)
        data = route.handler(call)
        if route.writes:
            self._dirty = True
        return data


def _read_request(environ: dict[str, Any]) -> Request:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    query = {
        k: v[-1] for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()
    }
    # PEP 3333 hands PATH_INFO over as latin-1; WeCom paths are ASCII, so this is only for odd requests.
    path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace")
    return Request(environ["REQUEST_METHOD"].upper(), path, query, body, environ.get("REMOTE_ADDR", ""))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
