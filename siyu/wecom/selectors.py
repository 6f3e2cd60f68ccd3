"""Reads of the WeCom connector: connections (with their decrypted secrets) and the raw-callback log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from django.conf import settings
from django.db.models import QuerySet

from siyu.core import pii
from siyu.core.errors import NotFound
from siyu.core.scopes import Actor
from siyu.wecom.client import WeComClient
from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.models import RawCallback, SyncRun, SyncSeen, WeComConnection

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


def connection_client(connection: WeComConnection, *, app: Literal["contact", "app"] = "contact") -> WeComClient:
    """A client for the connection's corp, with the customer-contact secret (default) or the app secret.

    Close it when done (`with connection_client(c) as client:`); tokens are cached beyond its life.
    """
    secrets = connection_secrets(connection)
    return WeComClient(
        connection.api_base_url,
        connection.corp_id,
        secrets.contact_secret if app == "contact" else secrets.app_secret,
        timeout=float(settings.SIYU_WECOM_TIMEOUT),
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


def callback_nonce_reused(*, connection_id: int, nonce: str, msg_signature: str, since: dt.datetime) -> bool:
    """Whether another request (another signature) already used this nonce since `since`.

    The same nonce with the same signature is the same request again: a retry, answered as a duplicate.
    """
    return (
        RawCallback.objects.filter(connection_id=connection_id, nonce=nonce, received_at__gte=since)
        .exclude(msg_signature=msg_signature)
        .exists()
    )


def raw_callback_list(
    *, actor: Actor, status: str = "", event_type: str = "", change_type: str = ""
) -> QuerySet[RawCallback]:
    """The brand's callback log, newest first. HQ only: raw callbacks name customers of every store."""
    if not actor.is_brand_wide:
        return RawCallback.objects.none()
    qs = RawCallback.objects.filter(tenant_id=actor.tenant_id)
    if status:
        qs = qs.filter(status=status)
    if event_type:
        qs = qs.filter(event_type=event_type)
    if change_type:
        qs = qs.filter(change_type=change_type)
    return qs.order_by("-received_at", "-id")


def access_raw_callback(*, actor: Actor, raw_callback_id: int) -> RawCallback:
    row = raw_callback_list(actor=actor).filter(id=raw_callback_id).first()
    if row is None:
        raise NotFound(f"callback {raw_callback_id} not found", field="raw_callback_id")
    return row


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
