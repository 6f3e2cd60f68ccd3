"""Reads of the WeCom connector: connections (with their decrypted secrets) and the raw-callback log."""

from __future__ import annotations

import datetime as dt
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from django.conf import settings
from django.db import connections, router
from django.db.models import Q, QuerySet

from siyu.core import pii
from siyu.core.errors import NotFound, PermissionDenied
from siyu.core.scopes import Actor
from siyu.wecom.client import RetryPolicy, WeComClient
from siyu.wecom.crypto import CallbackCryptoError, WeComCrypto, parse_xml
from siyu.wecom.errors import WeComAPIError, WeComTransportError
from siyu.wecom.models import RawCallback, SyncRun, SyncSeen, WeComConnection

logger = logging.getLogger(__name__)

# Column names bound into each ciphertext (see siyu.core.pii), so a value copied to another column won't decrypt.
FIELD_CONTACT_SECRET = "wecom.contact_secret"  # noqa: S105 - a column name, not a secret
FIELD_APP_SECRET = "wecom.app_secret"  # noqa: S105
FIELD_CALLBACK_TOKEN = "wecom.callback_token"  # noqa: S105
FIELD_ENCODING_AES_KEY = "wecom.encoding_aes_key"


@dataclass(frozen=True)
class ConnectionSecrets:
    contact_secret: str
    app_secret: str
    callback_token: str
    encoding_aes_key: str

    def __repr__(self) -> str:
        # Never let a secret reach a log line or a traceback's locals through repr().
        return "ConnectionSecrets(<redacted>)"


def connection_secrets(connection: WeComConnection) -> ConnectionSecrets:
    """The connection's secrets in clear. For the client and the callback crypto, never for display."""
    return ConnectionSecrets(
        contact_secret=pii.decrypt(connection.contact_secret_enc, field=FIELD_CONTACT_SECRET),
        app_secret=pii.decrypt(connection.app_secret_enc, field=FIELD_APP_SECRET),
        callback_token=pii.decrypt(connection.callback_token_enc, field=FIELD_CALLBACK_TOKEN),
        encoding_aes_key=pii.decrypt(connection.encoding_aes_key_enc, field=FIELD_ENCODING_AES_KEY),
    )


@lru_cache(maxsize=256)
def _crypto(corp_id: str, token_enc: str, aes_key_enc: str) -> WeComCrypto:
    # Keyed by the ciphertexts: pii.encrypt uses a fresh nonce, so any change of token or key is a new entry.
    return WeComCrypto(
        pii.decrypt(token_enc, field=FIELD_CALLBACK_TOKEN),
        pii.decrypt(aes_key_enc, field=FIELD_ENCODING_AES_KEY),
        corp_id,
    )


def connection_crypto(connection: WeComConnection) -> WeComCrypto | None:
    """The callback crypto of a connection, or None while its token or EncodingAESKey is not configured.

    Cached per process: the callback endpoint would otherwise decrypt two secrets on every request.
    """
    if not connection.callback_token_enc or not connection.encoding_aes_key_enc:
        return None
    return _crypto(connection.corp_id, connection.callback_token_enc, connection.encoding_aes_key_enc)


def connection_client(
    connection: WeComConnection,
    *,
    app: Literal["contact", "app"] = "contact",
    timeout: float | None = None,
    retry: RetryPolicy | None = None,
) -> WeComClient:
    """A client for the connection's corp, with the customer-contact secret (default) or the app secret.

    Close it when done (`with connection_client(c) as client:`); tokens are cached beyond its life.
    `timeout` (default SIYU_WECOM_TIMEOUT) and `retry` are for callers that must answer quickly.
    """
    secrets = connection_secrets(connection)
    return WeComClient(
        connection.api_base_url,
        connection.corp_id,
        secrets.contact_secret if app == "contact" else secrets.app_secret,
        timeout=float(settings.SIYU_WECOM_TIMEOUT) if timeout is None else timeout,
        retry=retry,
    )


def connection_for_callback(*, key: str) -> WeComConnection | None:
    """The connection a callback URL names, by numeric id or by corp id (corp ids never are all digits)."""
    qs = WeComConnection.objects.all()
    if key.isdigit():
        return qs.filter(id=int(key)).first()
    return qs.filter(corp_id=key).first()


def connection_get(*, actor: Actor) -> WeComConnection | None:
    """The actor's brand's connection, if one is set up."""
    return WeComConnection.objects.filter(tenant_id=actor.tenant_id).first()


def connection_for_tenant(*, tenant_id: int) -> WeComConnection | None:
    """For jobs, which run as the system and know only the tenant."""
    return WeComConnection.objects.filter(tenant_id=tenant_id).first()


# -- the settings page: hints instead of secrets, and the connection test --------------------------------------

SECRET_FIELDS = ("contact_secret", "app_secret", "callback_token", "encoding_aes_key")


def _require_brand_wide(actor: Actor) -> None:
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ admins may see the WeCom connection")


def secret_hint(value: str) -> str:
    """"••••1234" for a stored secret, "" when none is stored: enough to tell which one is set, never the secret.

    Only long values show their last four characters, so a short test secret is not mostly given away.
    """
    if not value:
        return ""
    return "••••" + value[-4:] if len(value) >= 16 else "••••"


@dataclass(frozen=True)
class ConnectionSettings:
    """The brand's connection as the settings page shows it: the plain fields, and per secret only a hint."""

    id: int
    corp_id: str
    agent_id: str
    api_base_url: str
    hints: dict[str, str]  # secret field → secret_hint(value), "" when not set
    updated_at: dt.datetime


def connection_settings(*, actor: Actor) -> ConnectionSettings | None:
    """The brand's connection for the settings page (HQ only), or None before it is set up."""
    _require_brand_wide(actor)
    connection = connection_get(actor=actor)
    if connection is None:
        return None
    secrets = connection_secrets(connection)
    return ConnectionSettings(
        id=connection.id,
        corp_id=connection.corp_id,
        agent_id=connection.agent_id,
        api_base_url=connection.api_base_url,
        hints={name: secret_hint(getattr(secrets, name)) for name in SECRET_FIELDS},
        updated_at=connection.updated_at,
    )


# The "test connection" button must answer while the admin waits: a short timeout and one quick retry.
CONNECTION_TEST_TIMEOUT = 3.0
CONNECTION_TEST_RETRY = RetryPolicy(attempts=2, base_delay=0.2, max_delay=0.5)

# errcode → what is wrong, as a stable code the console puts in words (wecom-api.md §1 and §5).
_PROBLEMS = {
    -1: "wecom_busy",
    40001: "bad_secret",
    40091: "bad_secret",
    41004: "bad_secret",
    40013: "bad_corp_id",
    41002: "bad_corp_id",
    48002: "not_permitted",
    50003: "not_permitted",
    84074: "not_permitted",
    60011: "not_visible",
    60020: "ip_not_allowed",
    45009: "rate_limited",
    45033: "rate_limited",
}


@dataclass(frozen=True)
class ConnectionCheck:
    """One step of the connection test: one endpoint called with one of the secrets, and what came back.

    `problem` is "" on success, else a stable code: not_configured, bad_secret, bad_corp_id, not_permitted,
    not_visible, ip_not_allowed, rate_limited, wecom_busy, wecom_error (another errcode), unreachable, timeout,
    http_error, bad_response or unexpected.
    """

    secret: str  # "contact" | "app"
    endpoint: str
    ok: bool
    elapsed_ms: int = 0
    errcode: int = 0
    errmsg: str = ""
    problem: str = ""
    count: int | None = None  # how many rows the read returned (departments, members with customer contact)


@dataclass(frozen=True)
class ConnectionTestResult:
    """The connection test (连接测试): every step tried, in order; the test passed when each one did."""

    corp_id: str
    api_base_url: str
    checks: tuple[ConnectionCheck, ...]
    tested_at: dt.datetime

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


def _problem(exc: WeComAPIError) -> str:
    if isinstance(exc, WeComTransportError):
        # The client names transport failures by kind (see WeComClient._exchange), never with URLs or secrets.
        if exc.errmsg.startswith("cannot connect"):
            return "unreachable"
        if "Timeout" in exc.errmsg:
            return "timeout"
        if exc.errmsg.startswith("HTTP "):
            return "http_error"
        return "bad_response"
    return _PROBLEMS.get(exc.errcode, "wecom_error")


def _check(secret: str, endpoint: str, call: Callable[[], Any]) -> ConnectionCheck:
    started = time.monotonic()
    try:
        value = call()
    except WeComAPIError as exc:
        elapsed = round((time.monotonic() - started) * 1000)
        return ConnectionCheck(
            secret, exc.endpoint or endpoint, ok=False, elapsed_ms=elapsed, errcode=exc.errcode,
            errmsg=exc.errmsg[:500], problem=_problem(exc),
        )
    except Exception as exc:
        # Whatever else goes wrong (a URL httpx cannot use, a bug) must still come back as an answer on the page.
        logger.exception("connection test: %s failed", endpoint)
        elapsed = round((time.monotonic() - started) * 1000)
        return ConnectionCheck(
            secret, endpoint, ok=False, elapsed_ms=elapsed, errcode=-2, errmsg=type(exc).__name__, problem="unexpected"
        )
    elapsed = round((time.monotonic() - started) * 1000)
    return ConnectionCheck(
        secret, endpoint, ok=True, elapsed_ms=elapsed, count=len(value) if isinstance(value, list) else None
    )


def connection_test(
    *,
    actor: Actor,
    timeout: float = CONNECTION_TEST_TIMEOUT,
    retry: RetryPolicy = CONNECTION_TEST_RETRY,
) -> ConnectionTestResult:
    """Try the brand's saved connection the way the sync uses it (HQ only); calls WeCom, changes nothing.

    With the customer-contact secret: gettoken, department/list and externalcontact/get_follow_user_list (the
    reads a sync starts with); with the app secret, when one is set: gettoken and department/list. A step that
    fails ends its secret's chain. A token WeCom issued earlier for the same secret is reused from the cache,
    and the read after it proves it still works.
    """
    _require_brand_wide(actor)
    connection = connection_get(actor=actor)
    if connection is None:
        raise NotFound("this brand has no WeCom connection yet", field="corp_id")
    secrets = connection_secrets(connection)
    checks: list[ConnectionCheck] = []
    chains: list[tuple[Literal["contact", "app"], str, list[str]]] = [
        ("contact", secrets.contact_secret, ["department/list", "externalcontact/get_follow_user_list"]),
    ]
    if secrets.app_secret:
        chains.append(("app", secrets.app_secret, ["department/list"]))
    for app, secret, reads in chains:
        if not secret:
            checks.append(ConnectionCheck(app, "gettoken", ok=False, problem="not_configured"))
            continue
        with connection_client(connection, app=app, timeout=timeout, retry=retry) as client:
            calls: dict[str, Callable[[], Any]] = {
                "gettoken": client.access_token,
                "department/list": client.department_list,
                "externalcontact/get_follow_user_list": client.follow_user_list,
            }
            for endpoint in ["gettoken", *reads]:
                check = _check(app, endpoint, calls[endpoint])
                checks.append(check)
                if not check.ok:
                    break
    return ConnectionTestResult(
        corp_id=connection.corp_id,
        api_base_url=connection.api_base_url,
        checks=tuple(checks),
        tested_at=dt.datetime.now(tz=dt.UTC),
    )


def callback_nonces_seen(*, connection_id: int, nonces: Collection[str], since: dt.datetime) -> set[tuple[str, str]]:
    """The (nonce, msg_signature) pairs among `nonces` that the connection's stored callbacks used since `since`.

    One query for a whole group of callbacks (the endpoint stores them in groups), on the (connection, nonce)
    index. A nonce seen with the same signature is the same request again (a retry); with another signature it
    is a reused nonce. Written in SQL: it runs for every group on the endpoint's hot path, where building the
    ORM query would cost several times the query itself.
    """
    wanted = sorted(set(nonces))
    if not wanted:
        return set()
    db = connections[router.db_for_read(RawCallback)]
    meta = RawCallback._meta
    quote = db.ops.quote_name
    table = quote(meta.db_table)
    connection_col, nonce_col, signature_col, received_col = (
        quote(meta.get_field(name).column) for name in ("connection", "nonce", "msg_signature", "received_at")
    )
    placeholders = ", ".join(["%s"] * len(wanted))
    # Quoted model names and placeholders only; every value is a bound parameter.
    where = f"{connection_col} = %s AND {nonce_col} IN ({placeholders}) AND {received_col} >= %s"
    sql = f"SELECT {nonce_col}, {signature_col} FROM {table} WHERE {where}"  # noqa: S608
    received_at = meta.get_field("received_at")
    params = [connection_id, *wanted, received_at.get_db_prep_value(since, connection=db)]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return {(nonce, signature) for nonce, signature in cursor.fetchall()}


# The ids a callback log search looks for, by their field names in the event.
SEARCHABLE_EVENT_FIELDS = ("ExternalUserID", "UserID", "ChatId")


def raw_callback_list(
    *,
    actor: Actor,
    status: str = "",
    event_type: str = "",
    change_type: str = "",
    received_from: dt.datetime | None = None,
    received_before: dt.datetime | None = None,
    search: str = "",
) -> QuerySet[RawCallback]:
    """The brand's callback log, newest first. HQ only: raw callbacks name customers of every store.

    `search` is one external user id, member user id or chat id, matched exactly in the event. The indexed
    columns (tenant, status, received_at) and the denormalised event and change types narrow the rows first;
    the JSON look-up only runs on what they leave.
    """
    if not actor.is_brand_wide:
        return RawCallback.objects.none()
    qs = RawCallback.objects.filter(tenant_id=actor.tenant_id)
    if status:
        qs = qs.filter(status=status)
    if received_from is not None:
        qs = qs.filter(received_at__gte=received_from)
    if received_before is not None:
        qs = qs.filter(received_at__lt=received_before)
    if event_type:
        qs = qs.filter(event_type=event_type)
    if change_type:
        qs = qs.filter(change_type=change_type)
    if search:
        match = Q()
        for name in SEARCHABLE_EVENT_FIELDS:
            match |= Q(**{f"event__{name}": search})
        qs = qs.filter(match)
    return qs.order_by("-received_at", "-id")


def access_raw_callback(*, actor: Actor, raw_callback_id: int) -> RawCallback:
    row = raw_callback_list(actor=actor).filter(id=raw_callback_id).first()
    if row is None:
        raise NotFound(f"callback {raw_callback_id} not found", field="raw_callback_id")
    return row


@dataclass(frozen=True)
class RawCallbackDetail:
    """One logged callback for its detail page: the row, its XML indented for reading, its fields in order."""

    row: RawCallback
    pretty_xml: str
    fields: list[tuple[str, str]]


def _pretty_xml(xml: str) -> str:
    try:
        root = parse_xml(xml.encode("utf-8"))
    except CallbackCryptoError:
        return xml  # stored as received; show it as it is rather than nothing
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode")


def raw_callback_detail(*, actor: Actor, raw_callback_id: int) -> RawCallbackDetail:
    row = access_raw_callback(actor=actor, raw_callback_id=raw_callback_id)
    fields = [
        (name, ", ".join(str(v) for v in value) if isinstance(value, list) else str(value))
        for name, value in row.event.items()
    ]
    return RawCallbackDetail(row=row, pretty_xml=_pretty_xml(row.xml), fields=fields)


# -- sync runs -------------------------------------------------------------------------------------------------

COUNT_KEYS = ("created", "updated", "unchanged", "deleted")
# A running run whose heartbeat is older than this is taken to be dead (its process killed) and may be resumed.
SYNC_LEASE = dt.timedelta(minutes=2)


@dataclass(frozen=True)
class SyncRunSummary:
    """A sync run for the console's status and history: totals over phases, per-phase counts, errors."""

    id: int
    status: str
    phases: list[str]
    phase: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    heartbeat_at: dt.datetime
    duration_seconds: float
    pages: int
    attempts: int
    totals: dict[str, int]  # created/updated/unchanged/deleted summed over the phases
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    error: str = ""
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return self.totals["created"] + self.totals["updated"] + self.totals["deleted"]


def sync_run_summary(run: SyncRun) -> SyncRunSummary:
    end = run.finished_at or run.heartbeat_at
    return SyncRunSummary(
        id=run.id,
        status=run.status,
        phases=list(run.phases),
        phase=run.phase,
        started_at=run.started_at,
        finished_at=run.finished_at,
        heartbeat_at=run.heartbeat_at,
        duration_seconds=round((end - run.started_at).total_seconds(), 3),
        pages=run.pages,
        attempts=run.attempts,
        totals={key: sum(int(c.get(key, 0)) for c in run.counts.values()) for key in COUNT_KEYS},
        counts={phase: dict(c) for phase, c in run.counts.items()},
        error=run.error,
        errors=list(run.errors),
    )


def sync_run_list(*, actor: Actor, status: str = "") -> QuerySet[SyncRun]:
    """The brand's sync runs, newest first. HQ only, like the connection they belong to."""
    if not actor.is_brand_wide:
        return SyncRun.objects.none()
    qs = SyncRun.objects.filter(tenant_id=actor.tenant_id)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-started_at", "-id")


def sync_history(*, actor: Actor, limit: int = 20) -> list[SyncRunSummary]:
    """The last `limit` runs with their counts and errors (the console's sync history)."""
    return [sync_run_summary(run) for run in sync_run_list(actor=actor)[:limit]]


def access_sync_run(*, actor: Actor, sync_run_id: int) -> SyncRun:
    run = sync_run_list(actor=actor).filter(id=sync_run_id).first()
    if run is None:
        raise NotFound(f"sync run {sync_run_id} not found", field="sync_run_id")
    return run


@dataclass(frozen=True)
class SyncStatus:
    """Where the brand's sync stands: the latest run, the last successful one, whether one is running now."""

    latest: SyncRunSummary | None
    last_success: SyncRunSummary | None
    running: bool


def sync_status(*, actor: Actor) -> SyncStatus:
    runs = sync_run_list(actor=actor)
    latest = runs.first()
    success = runs.filter(status=SyncRun.Status.SUCCEEDED).first()
    now = dt.datetime.now(tz=dt.UTC)
    running = latest is not None and latest.status == SyncRun.Status.RUNNING and latest.heartbeat_at > now - SYNC_LEASE
    return SyncStatus(
        latest=sync_run_summary(latest) if latest else None,
        last_success=sync_run_summary(success) if success else None,
        running=running,
    )


def sync_seen(*, run_id: int, kind: str, keys: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
    """What a run has seen so far of one kind (key → data); only the `keys` asked for when given."""
    qs = SyncSeen.objects.filter(run_id=run_id, kind=kind)
    if keys is None:
        return dict(qs.values_list("key", "data"))
    wanted = sorted(set(keys))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        found.update(qs.filter(key__in=wanted[start : start + 500]).values_list("key", "data"))
    return found


def sync_targets(*, slug: str = "") -> list[WeComConnection]:
    """The connections `siyu sync` works on: the brand named by `slug`, or every connected brand."""
    qs = WeComConnection.objects.select_related("tenant").order_by("tenant__slug")
    if slug:
        qs = qs.filter(tenant__slug=slug)
    return list(qs)


def emulator_in_use(*, emulator_url: str | None = None) -> bool:
    """Whether some brand's connection talks to the offline emulator at `emulator_url` (SIYU_EMULATOR_URL)."""
    from django.conf import settings

    base = (emulator_url or settings.SIYU_EMULATOR_URL).rstrip("/") + "/"
    return WeComConnection.objects.filter(api_base_url__startswith=base).exists()
