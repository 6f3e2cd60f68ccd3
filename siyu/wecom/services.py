"""Writes of the WeCom connector: the connection, the raw-callback store and callback processing.

Processing maps each WeCom event onto the services of the context that owns the data (customers, tags); the
connector itself never writes another context's tables.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import fcntl
import functools
import json
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Q
from django.utils import timezone

from siyu.core import pii
from siyu.core import services as core_services
from siyu.core.errors import Conflict, NotFound, PermissionDenied, SiyuError, ValidationFailed
from siyu.core.jobs import enqueue_on_commit, pending_job_calls
from siyu.core.models import Guide, Role, Tenant
from siyu.core.scopes import Actor
from siyu.core.selectors import guide_list
from siyu.core.services import audit_record
from siyu.customers import services as customer_services
from siyu.customers.models import FollowRelation, Identity
from siyu.customers.selectors import customer_by_identity, follow_relation_list
from siyu.groups import services as group_services
from siyu.groups.selectors import group_by_chat_id
from siyu.tags import services as tag_services
from siyu.wecom import transport
from siyu.wecom.client import ContactDetail, CorpTagGroup, GroupChat, WeComClient
from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.errors import CallbackRejected, WeComAPIError
from siyu.wecom.models import DEFAULT_API_BASE_URL, RawCallback, SyncRun, SyncSeen, WeComConnection
from siyu.wecom.selectors import (
    FIELD_APP_SECRET,
    FIELD_CALLBACK_TOKEN,
    FIELD_CONTACT_SECRET,
    FIELD_ENCODING_AES_KEY,
    SYNC_LEASE,
    callback_nonces_seen,
    connection_client,
)
from siyu.wecom.webhooks import VerifiedCallback, receivers_forget

logger = logging.getLogger(__name__)

# -- the connection ------------------------------------------------------------------------------------------------

_CORP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOKEN = re.compile(r"^[A-Za-z0-9]{1,32}$")  # WeCom's admin console allows letters and digits, at most 32
_SECRETS = {
    "contact_secret": ("contact_secret_enc", FIELD_CONTACT_SECRET),
    "app_secret": ("app_secret_enc", FIELD_APP_SECRET),
    "callback_token": ("callback_token_enc", FIELD_CALLBACK_TOKEN),
    "encoding_aes_key": ("encoding_aes_key_enc", FIELD_ENCODING_AES_KEY),
}
CONNECTION_FIELDS = ("corp_id", "agent_id", "api_base_url", *_SECRETS)


def _require_hq(actor: Actor) -> None:
    if actor.role != Role.HQ_ADMIN:
        raise PermissionDenied("only HQ admins may configure the WeCom connection")


def _clean_connection_value(field: str, value: str) -> str:
    value = value.strip()
    if field == "corp_id" and (not _CORP_ID.match(value) or value.isdigit()):
        # All digits would read as a connection id in the callback URL; real corp ids start with "ww"/"wx".
        raise ValidationFailed("corp_id must be 1 to 64 letters, digits, '-' or '_', not only digits", field=field)
    if field == "agent_id" and value and not value.isdigit():
        raise ValidationFailed("agent_id must be digits", field=field)
    if field == "callback_token" and value and not _TOKEN.match(value):
        raise ValidationFailed("the callback token must be 1 to 32 letters or digits", field=field)
    if field == "encoding_aes_key" and value:
        try:
            WeComCrypto("t", value, "c")
        except ValueError as exc:
            raise ValidationFailed(str(exc), field=field) from exc
    if field in ("contact_secret", "app_secret") and len(value) > 128:
        raise ValidationFailed(f"{field} is longer than 128 characters", field=field)
    if field == "api_base_url":
        if not re.match(r"^https?://[^\s/]+(/[^\s]*)?$", value):
            raise ValidationFailed("api_base_url must be an http(s) URL", field=field)
        # The client joins paths onto it ("gettoken", "externalcontact/list"): the trailing slash matters.
        value = value if value.endswith("/") else value + "/"
    return value


def _apply(connection: WeComConnection, changes: dict[str, str]) -> list[str]:
    changed = []
    for field, raw in changes.items():
        value = _clean_connection_value(field, raw)
        if field in _SECRETS:
            column, bound = _SECRETS[field]
            setattr(connection, column, pii.encrypt(value, field=bound))
        else:
            setattr(connection, field, value)
        changed.append(field)
    return changed


@transaction.atomic
def connection_create(
    *,
    actor: Actor,
    corp_id: str,
    callback_token: str,
    encoding_aes_key: str,
    agent_id: str = "",
    contact_secret: str = "",
    app_secret: str = "",
    api_base_url: str = DEFAULT_API_BASE_URL,
) -> WeComConnection:
    """Connect the actor's brand to its WeCom corp. Secrets are stored encrypted; the audit row names no value."""
    _require_hq(actor)
    if WeComConnection.objects.filter(tenant_id=actor.tenant_id).exists():
        raise Conflict("this brand already has a WeCom connection", field="corp_id")
    connection = WeComConnection(tenant_id=actor.tenant_id)
    changed = _apply(
        connection,
        {
            "corp_id": corp_id,
            "agent_id": agent_id,
            "api_base_url": api_base_url,
            "contact_secret": contact_secret,
            "app_secret": app_secret,
            "callback_token": callback_token,
            "encoding_aes_key": encoding_aes_key,
        },
    )
    if WeComConnection.objects.filter(corp_id=connection.corp_id).exists():
        raise Conflict("another brand is connected to this corp", field="corp_id")
    connection.save()
    receivers_forget()  # the callback endpoint's cached connections (a re-created corp id gets a new row)
    audit_record(
        actor=actor,
        action="wecom_connection.create",
        target_type="wecom_connection",
        target_id=connection.id,
        detail={"corp_id": connection.corp_id, "fields": changed},
    )
    return connection


@transaction.atomic
def connection_update(*, actor: Actor, changes: dict[str, str]) -> WeComConnection:
    """Change some fields of the brand's connection (only the keys given; a secret given as "" is cleared)."""
    _require_hq(actor)
    unknown = sorted(set(changes) - set(CONNECTION_FIELDS))
    if unknown:
        raise ValidationFailed(f"cannot update {', '.join(unknown)}", field=unknown[0])
    connection = WeComConnection.objects.select_for_update().filter(tenant_id=actor.tenant_id).first()
    if connection is None:
        raise ValidationFailed("this brand has no WeCom connection yet", field="corp_id")
    changed = _apply(connection, changes)
    if (
        "corp_id" in changes
        and WeComConnection.objects.filter(corp_id=connection.corp_id).exclude(id=connection.id).exists()
    ):
        raise Conflict("another brand is connected to this corp", field="corp_id")
    connection.save()
    receivers_forget()  # a new token or key counts at once in this process, within seconds in the others
    audit_record(
        actor=actor,
        action="wecom_connection.update",
        target_type="wecom_connection",
        target_id=connection.id,
        detail={"fields": changed},
    )
    return connection


# -- storing callbacks -------------------------------------------------------------------------------------------


class StoreOutcome(enum.Enum):
    STORED = "stored"  # a new row
    DUPLICATE = "duplicate"  # the event is stored already (a retry): nothing new, nothing enqueued
    NONCE_REUSED = "nonce_reused"  # another request used this nonce within the window: refused, nothing stored


@dataclass(frozen=True)
class Stored:
    """What storing one callback did; `raw_callback_id` is the row holding the event (None when refused)."""

    outcome: StoreOutcome
    raw_callback_id: int | None = None


class _SQLiteWriterTurn:
    """Takes turns between the processes that store callbacks in one SQLite file.

    SQLite lets one writer in at a time and makes the others poll with growing sleeps (1, 2, 5, 10 ms...), so
    several server processes committing groups side by side mostly wait for nothing. An exclusive flock on a file
    next to the database hands the turn over the moment it is free, and the waiting process's next group grows
    meanwhile. Only the callback store and its enqueues take it; other writers (jobs, the console) still rely on
    SQLite's own lock and busy timeout. A no-op on PostgreSQL, whose writers do not exclude each other, and on
    in-memory databases.
    """

    def __init__(self) -> None:
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int | None:
        db = connections[router.db_for_write(RawCallback)]
        name = str(db.settings_dict.get("NAME") or "")
        if db.vendor != "sqlite" or not name or name == ":memory:" or name.startswith("file:"):
            return None
        if self._fd is None or self._pid != os.getpid():  # a forked server worker opens its own
            try:
                self._fd = os.open(f"{name}.intake-lock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                return None  # a read-only directory: SQLite's own lock still keeps writers apart
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def held(self) -> Iterator[None]:
        fd = self._file()
        if fd is None:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


_writer_turn = _SQLiteWriterTurn()

# The columns of a new callback row, in insert order (the model's defaults included: the database has none).
_STORE_COLUMNS = (
    "tenant",
    "connection",
    "received_at",
    "msg_signature",
    "timestamp",
    "nonce",
    "xml",
    "event",
    "event_type",
    "change_type",
    "created_at",
    "dedupe_key",
    "status",
    "attempts",
    "error",
    "processed_at",
)


def _row_values(v: VerifiedCallback, db: BaseDatabaseWrapper) -> tuple[Any, ...]:
    """One row's values, converted for the database as the ORM would (the backend's datetime and JSON adapters;
    the datetimes are aware already, so the fields' checks are skipped)."""
    datetime = db.ops.adapt_datetimefield_value
    return (
        v.connection.tenant_id,
        v.connection.id,
        datetime(v.received_at),
        v.msg_signature,
        v.timestamp,
        v.nonce,
        v.xml,
        RawCallback._meta.get_field("event").get_db_prep_value(v.parsed.fields, connection=db),
        v.parsed.event_type,
        v.parsed.change_type,
        datetime(v.parsed.created_at) if v.parsed.created_at is not None else None,
        v.dedupe_key,
        RawCallback.Status.RECEIVED.value,
        0,
        "",
        None,
    )


def _insert_new(db: BaseDatabaseWrapper, rows: Sequence[tuple[Any, ...]]) -> dict[str, int]:
    """Insert the rows whose dedupe key is not stored yet, in one statement; returns {dedupe_key: id} of new rows.

    `INSERT .. ON CONFLICT (dedupe_key) DO NOTHING` (PostgreSQL, SQLite ≥ 3.35): a retry, or two deliveries of
    one event in the same group, is skipped by the unique index itself, never by a look-up first. The ORM's
    bulk_create cannot say which rows were new, hence the SQL. PostgreSQL returns the new rows' ids
    (RETURNING). On SQLite, reading RETURNING rows costs a round of the GIL per row, in the one transaction
    every server thread waits for; the ids of a statement that inserted every row follow from the last one
    (AUTOINCREMENT numbers a statement's rows consecutively, under the write lock), and only a group that met a
    duplicate reads them back.
    """
    meta = RawCallback._meta
    quote = db.ops.quote_name
    table, key, pk = quote(meta.db_table), quote(meta.get_field("dedupe_key").column), quote(meta.pk.column)
    names = ", ".join(quote(meta.get_field(name).column) for name in _STORE_COLUMNS)
    values = ", ".join(["(" + ", ".join(["%s"] * len(_STORE_COLUMNS)) + ")"] * len(rows))
    keys = [row[_STORE_COLUMNS.index("dedupe_key")] for row in rows]
    # Only quoted model names and placeholders are formatted in; every value is a bound parameter.
    sql = f"INSERT INTO {table} ({names}) VALUES {values} ON CONFLICT ({key}) DO NOTHING"  # noqa: S608
    with db.cursor() as cursor:
        if db.vendor != "sqlite":
            cursor.execute(f"{sql} RETURNING {pk}, {key}", [value for row in rows for value in row])
            return {dedupe_key: row_id for row_id, dedupe_key in cursor.fetchall()}
        cursor.execute(sql, [value for row in rows for value in row])
        inserted, last = cursor.rowcount, cursor.lastrowid
    if inserted <= 0:
        return {}  # (and lastrowid is some earlier statement's)
    if inserted == len(rows):
        return {dedupe_key: last - inserted + 1 + index for index, dedupe_key in enumerate(keys)}
    # Some were stored already: the new rows are the ones numbered by this statement.
    found = RawCallback.objects.filter(dedupe_key__in=keys).values_list("dedupe_key", "id")
    return {dedupe_key: row_id for dedupe_key, row_id in found if last - inserted < row_id <= last}


# One statement stores a group on PostgreSQL: the nonce check and the insert, in one round trip and, outside a
# transaction, one implicit commit. The group travels as one JSON document (json.dumps is C; psycopg's array
# dumpers escape element by element in Python), so the statement's text does not depend on the group's size: each
# server connection prepares it once and PostgreSQL plans it once.
_PG_STORE_SQL = """
WITH v AS (
    SELECT * FROM ROWS FROM (json_to_recordset(%s::json) AS (
        tenant_id bigint, connection_id bigint, received_at timestamptz, msg_signature text, ts text, nonce text,
        xml text, event jsonb, event_type text, change_type text, created_at timestamptz, dedupe_key text,
        since timestamptz
    )) WITH ORDINALITY AS v(
        tenant_id, connection_id, received_at, msg_signature, ts, nonce, xml, event, event_type, change_type,
        created_at, dedupe_key, since, ord
    )
),
reused AS (
    SELECT v.ord FROM v WHERE EXISTS (
        SELECT 1 FROM {table} r
        WHERE r.{connection} = v.connection_id AND r.{nonce} = v.nonce AND r.{received} >= v.since
          AND r.{signature} <> v.msg_signature
    )
),
ins AS (
    INSERT INTO {table} ({columns})
    SELECT v.tenant_id, v.connection_id, v.received_at, v.msg_signature, v.ts, v.nonce, v.xml, v.event,
           v.event_type, v.change_type, v.created_at, v.dedupe_key, %s, 0, '', NULL
    FROM v WHERE v.ord NOT IN (SELECT ord FROM reused) ORDER BY v.ord
    ON CONFLICT ({dedupe_key}) DO NOTHING
    RETURNING {pk}, {dedupe_key}, {nonce}
)
SELECT {pk}, {dedupe_key}, {nonce} FROM ins UNION ALL SELECT -ord, NULL, NULL FROM reused
"""


@functools.cache
def _pg_store_sql(vendor_quote: Callable[[str], str]) -> str:
    meta = RawCallback._meta
    column = {name: vendor_quote(meta.get_field(name).column) for name in _STORE_COLUMNS}
    # Only quoted model names are formatted in; every value is a bound parameter.
    return _PG_STORE_SQL.format(
        table=vendor_quote(meta.db_table),
        columns=", ".join(column.values()),
        connection=column["connection"],
        nonce=column["nonce"],
        received=column["received_at"],
        signature=column["msg_signature"],
        dedupe_key=column["dedupe_key"],
        pk=vendor_quote(meta.pk.column),
    )


def _store_postgres(db: BaseDatabaseWrapper, verified: Sequence[VerifiedCallback]) -> list[Stored]:
    """raw_callbacks_store on PostgreSQL: one prepared statement per group (see _PG_STORE_SQL).

    A nonce reused inside the group (same nonce, another signature, after an earlier request of the group) is
    refused here; one reused against stored rows, by the statement. The first accepted delivery of each event is
    stored; later ones (and events stored before) are duplicates.
    """
    import psycopg  # the PostgreSQL backend's driver; only this path needs it directly

    refused: set[int] = set()
    first_signature: dict[tuple[int, str], str] = {}
    for index, v in enumerate(verified):
        signature = first_signature.setdefault((v.connection.id, v.nonce), v.msg_signature)
        if signature != v.msg_signature:
            refused.add(index)
    positions = [index for index in range(len(verified)) if index not in refused]  # statement's ord - 1 → index
    rows = [verified[index] for index in positions]
    group = [
        {
            "tenant_id": v.connection.tenant_id,
            "connection_id": v.connection.id,
            "received_at": v.received_at.isoformat(),
            "msg_signature": v.msg_signature,
            "ts": v.timestamp,
            "nonce": v.nonce,
            "xml": v.xml,
            "event": v.parsed.fields,
            "event_type": v.parsed.event_type,
            "change_type": v.parsed.change_type,
            "created_at": v.parsed.created_at.isoformat() if v.parsed.created_at is not None else None,
            "dedupe_key": v.dedupe_key,
            "since": v.nonce_window_start.isoformat(),
        }
        for v in rows
    ]
    params = [json.dumps(group, ensure_ascii=False), RawCallback.Status.RECEIVED.value]
    db.ensure_connection()
    # Server-side binding (Django's own cursors bind on the client), so the statement is prepared once per connection.
    with psycopg.Cursor(db.connection) as cursor:
        cursor.execute(_pg_store_sql(db.ops.quote_name), params, prepare=True)
        answer = cursor.fetchall()
    stored: dict[tuple[str, str], int] = {}
    for row_id, dedupe_key, nonce in answer:
        if row_id < 0:
            refused.add(positions[-row_id - 1])
        else:
            stored[(dedupe_key, nonce)] = row_id
    new_ids = {key: row_id for (key, _), row_id in stored.items()}
    missing = {v.dedupe_key for index, v in enumerate(verified) if index not in refused} - new_ids.keys()
    stored_before = (
        dict(RawCallback.objects.filter(dedupe_key__in=missing).values_list("dedupe_key", "id")) if missing else {}
    )
    results: list[Stored] = []
    for index, v in enumerate(verified):
        if index in refused:
            results.append(Stored(StoreOutcome.NONCE_REUSED))
        elif stored.pop((v.dedupe_key, v.nonce), None) is not None:
            results.append(Stored(StoreOutcome.STORED, new_ids[v.dedupe_key]))
        else:
            results.append(Stored(StoreOutcome.DUPLICATE, new_ids.get(v.dedupe_key) or stored_before.get(v.dedupe_key)))
    return results


def raw_callbacks_store(*, verified: Sequence[VerifiedCallback], enqueue: bool = True) -> list[Stored]:
    """Store callbacks that arrived together, in one transaction (a group commit); one `Stored` per callback.

    Each callback's nonce is checked first, in one query for the group: one used since the window start by a
    request with another signature is refused (NONCE_REUSED); the same nonce with the same signature is the same
    request again and counts as a duplicate. New events are inserted in one statement; a retried event (same
    dedupe key, stored earlier or earlier in the group) stores nothing (DUPLICATE). With `enqueue`, the new rows'
    processing is one job, enqueued after commit; without, the caller enqueues it (raw_callbacks_enqueue) —
    the endpoint does, for several groups at once.

    The hot path of the callback endpoint: everything that needs no database is done before the transaction
    (values converted, dedupe keys hashed), which holds SQLite's single write lock.
    """
    from siyu.wecom.tasks import raw_callback_run  # tasks import this module: import late, no cycle

    if not verified:
        return []
    db = connections[router.db_for_write(RawCallback)]
    if db.vendor == "postgresql":
        with transaction.atomic(using=db.alias) if enqueue else contextlib.nullcontext():
            results = _store_postgres(db, verified)
            new = sorted({r.raw_callback_id for r in results if r.outcome is StoreOutcome.STORED} - {None})
            if enqueue and new:
                enqueue_on_commit(raw_callback_run, *new)
        return results
    values = [_row_values(v, db) for v in verified]
    windows: dict[int, dt.datetime] = {}
    for v in verified:
        start = v.nonce_window_start
        windows[v.connection.id] = min(start, windows.get(v.connection.id, start))
    refused: set[int] = set()
    with _writer_turn.held(), transaction.atomic(using=db.alias):
        # The nonces used so far, per connection: what is stored, then what this group adds, in arrival order.
        used = {
            connection_id: callback_nonces_seen(
                connection_id=connection_id,
                nonces={v.nonce for v in verified if v.connection.id == connection_id},
                since=since,
            )
            for connection_id, since in windows.items()
        }
        for index, v in enumerate(verified):
            pairs = used[v.connection.id]
            if any(nonce == v.nonce and signature != v.msg_signature for nonce, signature in pairs):
                refused.add(index)
            else:
                pairs.add((v.nonce, v.msg_signature))
        firsts: dict[str, tuple[Any, ...]] = {}
        for index, v in enumerate(verified):
            if index not in refused:
                firsts.setdefault(v.dedupe_key, values[index])
        new = _insert_new(db, list(firsts.values())) if firsts else {}
        missing = [key for key in firsts if key not in new]
        stored_before = (
            dict(RawCallback.objects.filter(dedupe_key__in=missing).values_list("dedupe_key", "id")) if missing else {}
        )
        if enqueue and new:
            # One job for the group: a job per callback would double the writes of the busiest path.
            enqueue_on_commit(raw_callback_run, *sorted(new.values()))
    results: list[Stored] = []
    first_seen: set[str] = set()
    for index, v in enumerate(verified):
        key = v.dedupe_key
        if index in refused:
            results.append(Stored(StoreOutcome.NONCE_REUSED))
        elif key in new and key not in first_seen:
            first_seen.add(key)
            results.append(Stored(StoreOutcome.STORED, new[key]))
        else:
            results.append(Stored(StoreOutcome.DUPLICATE, new.get(key) or stored_before.get(key)))
    return results


def raw_callbacks_enqueue(*, raw_callback_ids: Sequence[int]) -> None:
    """Enqueue the processing of stored callbacks: one job per 500 rows, in the order given.

    For callers of raw_callbacks_store(enqueue=False), outside their transaction: the endpoint collects the new
    rows of every group it committed in the last few milliseconds into one job. Should the process die before
    this runs, the rows stay `received` and the worker's requeue sweep (raw_callback_requeue) enqueues them.
    """
    from siyu.wecom.tasks import raw_callback_run

    ids = list(raw_callback_ids)
    with _writer_turn.held():
        for start in range(0, len(ids), 500):
            enqueue_on_commit(raw_callback_run, *ids[start : start + 500])


def raw_callback_store(*, verified: VerifiedCallback) -> tuple[RawCallback, bool]:
    """Store one verified callback (see raw_callbacks_store); returns (row, created).

    A retried delivery of an event already stored returns the stored row and enqueues nothing; a reused nonce
    raises CallbackRejected("nonce_reused").
    """
    (stored,) = raw_callbacks_store(verified=[verified])
    if stored.outcome is StoreOutcome.NONCE_REUSED or stored.raw_callback_id is None:
        raise CallbackRejected("nonce_reused", verified.nonce)
    return RawCallback.objects.get(id=stored.raw_callback_id), stored.outcome is StoreOutcome.STORED


# -- processing callbacks ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What processing a callback did: its final status and, for anything but a plain success, why."""

    status: str
    note: str = ""


def _processed(note: str = "") -> Outcome:
    return Outcome(RawCallback.Status.PROCESSED, note)


def _ignored(note: str) -> Outcome:
    return Outcome(RawCallback.Status.IGNORED, note)


class BadEvent(SiyuError):
    """The event lacks what its type requires; retrying cannot help."""


def _field(event: dict[str, Any], name: str) -> str:
    value = event.get(name)
    if not isinstance(value, str) or not value:
        raise BadEvent(f"the event has no {name}", field=name)
    return value


def _when(row: RawCallback) -> dt.datetime:
    # CreateTime is when it happened in WeCom; without one, when we heard of it is the best we know.
    return row.created_at or row.received_at


def _guide(actor: Actor, tenant: Tenant, userid: str, *, create: bool) -> Guide | None:
    """The guide who is WeCom member `userid`; with `create`, a placeholder named after the userid if unknown.

    A callback proves the member exists; the member sync later fills in the name and store. Two jobs creating
    the same placeholder race on the (tenant, wecom_userid) constraint and the loser reads the winner's row.
    """
    guide = guide_list(actor=actor).filter(wecom_userid=userid).first()
    if guide is not None or not create:
        return guide
    try:
        with transaction.atomic():
            return core_services.guide_create(tenant=tenant, name=userid, wecom_userid=userid)
    except IntegrityError:
        return guide_list(actor=actor).get(wecom_userid=userid)


def _relation(actor: Actor, customer_id: int, guide_id: int) -> FollowRelation | None:
    return follow_relation_list(actor=actor).filter(customer_id=customer_id, guide_id=guide_id).first()


# Errcodes of externalcontact/get for a customer with no relationship to the corp any more, or an unknown id.
CONTACT_GONE = frozenset({84061, 40096})


def _fetch_contact(row: RawCallback, client: WeComClient) -> ContactDetail | None:
    """The customer and their followers as WeCom has them now (name, gender, unionid, remark, add_way, tags):
    the callback itself carries only ids. None when WeCom no longer knows the relationship."""
    try:
        return client.external_contact_get(_field(row.event, "ExternalUserID"))
    except WeComAPIError as exc:
        if exc.errcode in CONTACT_GONE:
            return None
        raise


@dataclass(frozen=True)
class Unread:
    """WeCom could not be asked (down, rate-limited): an add is applied from the callback alone and its details
    are read later by a job, so a WeCom outage never holds up a new customer (or their welcome message)."""

    reason: str


def _fetch_contact_for_add(row: RawCallback, client: WeComClient) -> ContactDetail | Unread | None:
    try:
        return _fetch_contact(row, client)
    except WeComAPIError as exc:
        logger.warning("callback %s: customer details not read, applying the add without them: %s", row.id, exc)
        return Unread(str(exc)[:200])


def _apply_contact_detail(actor: Actor, customer_id: int, detail: ContactDetail, *, add_only: bool) -> None:
    """The corp tags the customer's followers gave them. `add_only` when WeCom listed only some followers."""
    tag_services.customer_tags_sync_wecom(
        actor=actor,
        desired={customer_id: transport.contact_detail_tags(detail)},
        add_only=[customer_id] if add_only else [],
    )


def _contact_added(row: RawCallback, actor: Actor, fetched: ContactDetail | Unread | None) -> Outcome:
    """add_external_contact / add_half_external_contact: the customer (created if new) now follows the guide,
    with their name, unionid (OneID), the guide's remark, add_way and the follower's tags read from WeCom."""
    userid = _field(row.event, "UserID")
    external_userid = _field(row.event, "ExternalUserID")
    when = _when(row)
    guide = _guide(actor, row.tenant, userid, create=True)
    assert guide is not None  # noqa: S101 - create=True always returns a guide
    known = customer_by_identity(actor=actor, kind=Identity.Kind.WECOM_EXTERNAL_USERID, value=external_userid)
    relation = _relation(actor, known.id, guide.id) if known is not None else None
    if relation is not None and relation.status == FollowRelation.Status.ACTIVE:
        # add_half_external_contact then add_external_contact for one friendship, or a sync that got here first.
        if row.event.get("WelcomeCode"):
            _live_code_added(row, actor, relation.id)  # the welcome code is still good for a welcome message
        return _processed("already following")
    if relation is not None and relation.deleted_at is not None and relation.deleted_at > when:
        return _ignored("stale: the relation was deleted after this add")
    detail = fetched if isinstance(fetched, dict) else None
    data = transport.contact_detail_input(detail, userid, guide.id) if detail is not None else None
    if detail is not None and data is not None:
        # One path with the sync: a customer known by unionid (mini-program, shop) gets this external_userid too.
        result = customer_services.follow_relations_sync_wecom(actor=actor, contacts=[data])
        customer_id = result.customer_ids[external_userid]
        created = result.customers_created > 0
        _apply_contact_detail(actor, customer_id, detail, add_only=bool(detail.get("next_cursor")))
    else:
        customer, created = customer_services.customer_get_or_create_by_identity(
            actor=actor,
            kind=Identity.Kind.WECOM_EXTERNAL_USERID,
            value=external_userid,
            source="wecom",
            created_at=when,
            owner_guide_id=guide.id,
        )
        customer_id = customer.id
        customer_services.follow_relation_add(
            actor=actor,
            customer_id=customer_id,
            guide_id=guide.id,
            external_userid=external_userid,
            added_at=when,
            # Without WeCom's current view (the relationship already ended there) the add_way stays unknown.
            add_way=FollowRelation.AddWay.UNKNOWN,
            state=str(row.event.get("State") or "")[:30],
        )
    # Groups the customer sat in before siyu knew them now show on their timeline.
    group_services.group_members_link_customer(actor=actor, external_userid=external_userid, customer_id=customer_id)
    applied = _relation(actor, customer_id, guide.id)
    if applied is not None:
        _live_code_added(row, actor, applied.id)
    note = "new customer" if created else ""
    if isinstance(fetched, Unread):
        from siyu.wecom.tasks import contact_refresh_run  # tasks import this module: import late, no cycle

        enqueue_on_commit(contact_refresh_run, row.id)
        note = f"{note}; details to be read later ({fetched.reason})".lstrip("; ")
    return _processed(note)


def _live_code_added(row: RawCallback, actor: Actor, follow_relation_id: int) -> None:
    """Acquisition: attribute the add to its live code (by state), apply its tags, send the welcome message."""
    from siyu.channels.services import live_code_contact_added  # channels reads wecom: import late, no cycle

    live_code_contact_added(
        actor=actor,
        follow_relation_id=follow_relation_id,
        state=str(row.event.get("State") or "")[:30],
        welcome_code=str(row.event.get("WelcomeCode") or ""),
        userid=_field(row.event, "UserID"),
        external_userid=_field(row.event, "ExternalUserID"),
        received_at=row.received_at,
    )


def contact_refresh(*, raw_callback_id: int, client_factory: ClientFactory | None = None) -> str:
    """Read from WeCom what an add could not (see Unread) and apply it, as an edit would; idempotent."""
    row = RawCallback.objects.select_related("connection", "tenant").filter(id=raw_callback_id).first()
    if row is None:
        return "missing"
    with (client_factory or connection_client)(row.connection) as client:
        detail = _fetch_contact(row, client)
    with transaction.atomic():
        return _contact_edited(row, Actor.system(row.tenant_id), detail).note or "refreshed"


def _contact_edited(row: RawCallback, actor: Actor, detail: ContactDetail | None) -> Outcome:
    """edit_external_contact: the guide changed the remark, description or tags; WeCom's view replaces ours."""
    userid = _field(row.event, "UserID")
    external_userid = _field(row.event, "ExternalUserID")
    if detail is None:
        return _ignored("WeCom no longer knows this customer")
    guide = _guide(actor, row.tenant, userid, create=False)
    customer = customer_by_identity(actor=actor, kind=Identity.Kind.WECOM_EXTERNAL_USERID, value=external_userid)
    if guide is None or customer is None:
        return _ignored("unknown member or customer: the next sync brings them")
    relation = _relation(actor, customer.id, guide.id)
    data = transport.contact_detail_input(detail, userid, guide.id)
    if relation is None or relation.status != FollowRelation.Status.ACTIVE or data is None:
        return _ignored("no active follow relation between this guide and customer")
    customer_services.follow_relations_sync_wecom(actor=actor, contacts=[data])
    _apply_contact_detail(actor, customer.id, detail, add_only=bool(detail.get("next_cursor")))
    return _processed()


def _contact_deleted(row: RawCallback, actor: Actor, *, by_customer: bool) -> Outcome:
    """del_follow_user (the customer deleted the guide) / del_external_contact (the guide deleted the customer)."""
    userid = _field(row.event, "UserID")
    external_userid = _field(row.event, "ExternalUserID")
    when = _when(row)
    guide = _guide(actor, row.tenant, userid, create=False)
    if guide is None:
        return _ignored(f"unknown member {userid}")
    customer = customer_by_identity(actor=actor, kind=Identity.Kind.WECOM_EXTERNAL_USERID, value=external_userid)
    if customer is None:
        return _ignored("unknown customer")
    relation = _relation(actor, customer.id, guide.id)
    if relation is None:
        return _ignored("no follow relation between this guide and customer")
    if relation.status != FollowRelation.Status.ACTIVE:
        return _processed("already deleted")
    if relation.added_at > when:
        return _ignored("stale: the relation was re-added after this delete")
    customer_services.follow_relation_delete(
        actor=actor, customer_id=customer.id, guide_id=guide.id, by_customer=by_customer, at=when
    )
    return _processed()


def _transfer_failed(row: RawCallback, actor: Actor, _: object) -> Outcome:
    """transfer_fail: a customer refused a transfer (or the takeover member is full): poll the transfer now."""
    from siyu.inheritance.services import transfer_failed_heard  # inheritance uses this module: import late

    ids = transfer_failed_heard(
        tenant_id=actor.tenant_id,
        takeover_userid=_field(row.event, "UserID"),
        external_userid=_field(row.event, "ExternalUserID"),
    )
    if not ids:
        return _ignored("no transfer of this customer to this member is waiting")
    return _processed("status asked for transfer " + ", ".join(f"#{i}" for i in ids))


def _fetch_corp_tags(row: RawCallback, client: WeComClient) -> list[CorpTagGroup]:
    """The tag (with its group) or the group (with all its tags) the event names, as WeCom has it now."""
    wecom_id = _field(row.event, "Id")
    if row.event.get("TagType") == "tag_group":
        return client.corp_tag_list(group_ids=[wecom_id])
    return client.corp_tag_list(tag_ids=[wecom_id])


def _corp_tag_changed(row: RawCallback, actor: Actor, groups: list[CorpTagGroup]) -> Outcome:
    """change_external_tag create/update: mirror the tag or group as WeCom reports it now.

    The event carries only the id; the names come from get_corp_tag_list, fetched before this transaction.
    Reading the current state (not replaying the event) makes late or repeated events harmless.
    """
    wecom_id = _field(row.event, "Id")
    is_group = row.event.get("TagType") == "tag_group"
    mirrored = False
    for group in groups:
        if group.get("deleted"):
            continue
        tags = [
            tag_services.WeComTagInput(wecom_tag_id=t["id"], name=t["name"], order=int(t.get("order", 0)))
            for t in group.get("tag", [])
            if not t.get("deleted")
        ]
        if is_group and group["group_id"] != wecom_id:
            continue
        if not is_group and wecom_id not in {t.wecom_tag_id for t in tags}:
            continue
        tag_services.tag_group_upsert_wecom(
            actor=actor,
            wecom_group_id=group["group_id"],
            name=group["group_name"],
            order=int(group.get("order", 0)),
            tags=tags,
        )
        mirrored = True
    return _processed() if mirrored else _ignored("no longer in WeCom's tag library")


def _corp_tag_deleted(row: RawCallback, actor: Actor, _: object) -> Outcome:
    wecom_id = _field(row.event, "Id")
    if row.event.get("TagType") == "tag_group":
        deleted = tag_services.tag_group_delete_wecom(actor=actor, wecom_group_id=wecom_id)
    else:
        deleted = tag_services.tag_delete_wecom(actor=actor, wecom_tag_id=wecom_id)
    return _processed() if deleted else _ignored("not in the tag catalogue")


# Errcodes of groupchat/get for a chat that is not (any more) a customer group of the corp: dismissed, or never one.
CHAT_GONE = frozenset({40050, 90501})


def _fetch_chat(row: RawCallback, client: WeComClient) -> GroupChat | None:
    """The group as WeCom has it now: its events are not reliable increments (wecom-api.md §3.2), so every
    create/update is applied by re-reading the whole group rather than by replaying the event."""
    try:
        return client.groupchat_get(_field(row.event, "ChatId"))
    except WeComAPIError as exc:
        if exc.errcode in CHAT_GONE:
            return None
        raise


def _chat_changed(row: RawCallback, actor: Actor, chat: GroupChat | None) -> Outcome:
    """change_external_chat create/update (any UpdateDetail): mirror the group's current state.

    Who joined or left is worked out from the member lists, so a lost, repeated or late event changes nothing
    the next one would not; members gone since the last look left at the event's CreateTime.
    """
    if chat is None:
        return _ignored("the group is no longer in WeCom (dismissed since)")
    owner = _guide(actor, row.tenant, chat["owner"], create=True)
    assert owner is not None  # noqa: S101 - create=True always returns a guide
    result = group_services.group_upsert(actor=actor, data=transport.group_input(chat, owner.id), at=_when(row))
    if result.created:
        return _processed("new group")
    if not result.changed:
        return _processed("unchanged")
    return _processed(f"{result.joined} joined, {result.left} left" if result.joined or result.left else "")


def _chat_dismissed(row: RawCallback, actor: Actor, _: object) -> Outcome:
    chat_id = _field(row.event, "ChatId")
    if group_services.group_dismiss(actor=actor, chat_id=chat_id, at=_when(row)):
        return _processed()
    if group_by_chat_id(actor=actor, chat_id=chat_id) is None:
        return _ignored("unknown group")
    return _processed("already dismissed")


@dataclass(frozen=True)
class Handler:
    """How one kind of event is applied: an optional read from WeCom first (outside any transaction, so no lock
    is held during an HTTP call), then `apply` inside the processing transaction with what was read."""

    apply: Callable[[RawCallback, Actor, Any], Outcome]
    fetch: Callable[[RawCallback, WeComClient], Any] | None = None


HANDLERS: dict[tuple[str, str], Handler] = {
    ("change_external_contact", "add_external_contact"): Handler(_contact_added, fetch=_fetch_contact_for_add),
    ("change_external_contact", "add_half_external_contact"): Handler(_contact_added, fetch=_fetch_contact_for_add),
    ("change_external_contact", "edit_external_contact"): Handler(_contact_edited, fetch=_fetch_contact),
    ("change_external_contact", "transfer_fail"): Handler(_transfer_failed),
    ("change_external_contact", "del_external_contact"): Handler(
        lambda row, actor, _: _contact_deleted(row, actor, by_customer=False)
    ),
    ("change_external_contact", "del_follow_user"): Handler(
        lambda row, actor, _: _contact_deleted(row, actor, by_customer=True)
    ),
    ("change_external_tag", "create"): Handler(_corp_tag_changed, fetch=_fetch_corp_tags),
    ("change_external_tag", "update"): Handler(_corp_tag_changed, fetch=_fetch_corp_tags),
    ("change_external_tag", "delete"): Handler(_corp_tag_deleted),
    ("change_external_chat", "create"): Handler(_chat_changed, fetch=_fetch_chat),
    ("change_external_chat", "update"): Handler(_chat_changed, fetch=_fetch_chat),
    ("change_external_chat", "dismiss"): Handler(_chat_dismissed),
}

# Known events nothing consumes yet, with the reason stored on the row (the callback log shows it).
DEFERRED: dict[tuple[str, str], str] = {
    ("change_external_contact", "msg_audit_approved"): "chat archiving is not supported",
    ("change_external_tag", "shuffle"): "tag order is refreshed by the tag sync",
}
DEFERRED_EVENTS: dict[str, str] = {}


def _handler(row: RawCallback) -> Handler | str:
    key = (row.event_type, row.change_type)
    if key in HANDLERS:
        return HANDLERS[key]
    return DEFERRED.get(key) or DEFERRED_EVENTS.get(row.event_type) or f"unsupported event {row.event_type}"


_DONE = (RawCallback.Status.PROCESSED, RawCallback.Status.IGNORED)

ClientFactory = Callable[[WeComConnection], WeComClient]


# At most this many earlier callbacks about one customer are applied ahead of a later one in one go.
_EARLIER_MAX = 100


def _earlier_unprocessed(row: RawCallback) -> list[int]:
    """Callbacks about the same customer (ExternalUserID) that arrived before `row` and are not processed yet,
    oldest first. Found through the (tenant, status, received_at) index: only unprocessed rows are scanned."""
    external_userid = row.event.get("ExternalUserID")
    if not isinstance(external_userid, str) or not external_userid:
        return []
    return list(
        RawCallback.objects.filter(
            tenant_id=row.tenant_id,
            status=RawCallback.Status.RECEIVED,
            received_at__lte=row.received_at,
            event__ExternalUserID=external_userid,
        )
        .filter(Q(received_at__lt=row.received_at) | Q(id__lt=row.id))
        .order_by("received_at", "id")
        .values_list("id", flat=True)[:_EARLIER_MAX]
    )


def raw_callback_process(
    *, raw_callback_id: int, client_factory: ClientFactory = connection_client
) -> RawCallback | None:
    """Apply one stored callback to the domain, exactly once, after any earlier one about the same customer.

    The domain changes and the row's new status commit in one transaction under a row lock, so a job run twice
    (or by two workers, or again after a crash) applies the event once: a later run finds it processed and
    stops. Events that need WeCom's current data read it first, outside the transaction. An error rolls the
    changes back and marks the row failed with the error, to be retried. Returns None when there is no such row.
    `client_factory` builds the WeCom client for the row's connection (tests pass one on a fake transport).

    Jobs do not run in the order callbacks arrived: each web process enqueues its own rows, a recovered job runs
    after newer ones, several workers run side by side. A delete applied before the add it follows would be
    ignored ("unknown customer") and the add then revive the relation, so callbacks about the same customer that
    arrived earlier and are still unprocessed are applied first, each exactly once as above.
    """
    row = RawCallback.objects.select_related("connection").filter(id=raw_callback_id).first()
    if row is None:
        return None
    if row.status in _DONE:
        return row
    for earlier_id in _earlier_unprocessed(row):
        _raw_callback_apply(earlier_id, client_factory)
    return _raw_callback_apply(raw_callback_id, client_factory)


def _raw_callback_apply(raw_callback_id: int, client_factory: ClientFactory) -> RawCallback | None:
    """The exactly-once application of one callback (see raw_callback_process), whatever came before it."""
    row = RawCallback.objects.select_related("connection").filter(id=raw_callback_id).first()
    if row is None:
        return None
    if row.status in _DONE:
        return row
    try:
        handler = _handler(row)
        fetched: Any = None
        if isinstance(handler, Handler) and handler.fetch is not None:
            with client_factory(row.connection) as client:
                fetched = handler.fetch(row, client)
        with transaction.atomic():
            row = RawCallback.objects.select_for_update().select_related("tenant").get(id=raw_callback_id)
            if row.status in _DONE:
                return row
            actor = Actor.system(row.tenant_id)
            outcome = _ignored(handler) if isinstance(handler, str) else handler.apply(row, actor, fetched)
            row.status = outcome.status
            row.error = outcome.note
            row.attempts += 1
            row.processed_at = timezone.now()
            row.save(update_fields=["status", "error", "attempts", "processed_at"])
    except Exception as exc:
        # Bad data (BadEvent, validation) will fail again; WeCom errors and anything else may be transient. All
        # are recorded on the row and stay re-processable; nothing is re-raised, so the worker moves on.
        expected = isinstance(exc, SiyuError | WeComAPIError)
        logger.log(
            logging.WARNING if expected else logging.ERROR,
            "callback %s failed: %s",
            raw_callback_id,
            exc,
            exc_info=not expected,
        )
        RawCallback.objects.filter(id=raw_callback_id).exclude(status__in=_DONE).update(
            status=RawCallback.Status.FAILED,
            attempts=F("attempts") + 1,
            error=f"{type(exc).__name__}: {exc}"[:2000],
            processed_at=timezone.now(),
        )
        row.refresh_from_db()
    return row


def raw_callback_requeue(
    *, older_than: dt.timedelta = dt.timedelta(minutes=5), max_attempts: int = 5, limit: int = 1_000
) -> int:
    """Enqueue processing again for callbacks whose job was lost, and retry failed ones; returns how many.

    The worker's periodic sweep (`siyu worker`). A row is lost when it is still `received` after `older_than`
    and no job for it is waiting or running (started within `older_than`): its worker was killed mid-job, or the
    process that stored it died between commit and enqueue. A `failed` row is retried with backoff: after
    `older_than` × 2^(attempts-1) since its last attempt. Rows with a job on its way are skipped, so a sweep
    during a long backlog enqueues nothing twice; `limit` caps one sweep. Several workers sweeping at once may
    both enqueue a row: harmless, processing is exactly-once (see raw_callback_process). Each lost row counts
    an attempt and says why it was queued again, so the callback log shows it and `max_attempts` ends a row
    whose processing keeps killing its worker.
    """
    from siyu.wecom.tasks import raw_callback_run

    now = timezone.now()
    cutoff = now - older_than
    unfinished = RawCallback.objects.filter(
        status__in=(RawCallback.Status.RECEIVED, RawCallback.Status.FAILED),
        received_at__lt=cutoff,
        attempts__lt=max_attempts,
    )
    if not unfinished.exists():
        return 0  # the usual case: the job queue is not even looked at
    # The jobs first, the rows second: a job that finishes in between has left its row processed, so a row still
    # unfinished below either had a job in this list or has none.
    pending = pending_job_calls(raw_callback_run, running_since=cutoff)
    due = [
        (raw_callback_id, status)
        for raw_callback_id, status, attempts, last_attempt in unfinished.order_by("id").values_list(
            "id", "status", "attempts", "processed_at"
        )[:50_000]
        if status == RawCallback.Status.RECEIVED
        or last_attempt is None
        or last_attempt < now - older_than * 2 ** max(0, min(attempts - 1, 10))
    ]
    if pending is not None:
        # A job names one row, or (the endpoint's group jobs) several: every id it carries is on its way.
        on_the_way = {row_id for args, kwargs in pending for row_id in (args or [kwargs.get("raw_callback_id")])}
        due = [(raw_callback_id, status) for raw_callback_id, status in due if raw_callback_id not in on_the_way]
    due = due[:limit]
    lost = [raw_callback_id for raw_callback_id, status in due if status == RawCallback.Status.RECEIVED]
    with transaction.atomic():
        # Only rows still received: one processed since we looked keeps its outcome.
        RawCallback.objects.filter(id__in=lost, status=RawCallback.Status.RECEIVED).update(
            attempts=F("attempts") + 1, error="queued again: its job was lost"
        )
        for raw_callback_id, _ in due:
            enqueue_on_commit(raw_callback_run, raw_callback_id)
    if due:
        logger.warning("re-enqueued %d callbacks (%d lost, %d failed)", len(due), len(lost), len(due) - len(lost))
    return len(due)


@transaction.atomic
def raw_callback_retry(*, actor: Actor, raw_callback_id: int) -> RawCallback:
    """Process a failed callback again (the callback log's "retry"); HQ only, audited.

    The row goes back to received and its job is enqueued after commit; processing stays exactly-once, because
    the job re-checks the status under a row lock. Only failed rows qualify: a processed or ignored event is
    final, and a received one already has a job on its way (two clicks enqueue one retry).
    """
    from siyu.wecom.tasks import raw_callback_run

    _require_hq(actor)
    row = (
        RawCallback.objects.select_for_update()
        .filter(tenant_id=actor.tenant_id, id=raw_callback_id)
        .first()
    )
    if row is None:
        raise NotFound(f"callback {raw_callback_id} not found", field="raw_callback_id")
    if row.status != RawCallback.Status.FAILED:
        raise Conflict(f"only failed callbacks can be retried; this one is {row.status}", field="status")
    previous_error = row.error
    # Attempts stay: they count every processing attempt, the retried ones included.
    row.status = RawCallback.Status.RECEIVED
    row.error = ""
    row.processed_at = None
    row.save(update_fields=["status", "error", "processed_at"])
    audit_record(
        actor=actor,
        action="wecom_callback.retry",
        target_type="raw_callback",
        target_id=row.id,
        detail={"event": row.event_type, "change_type": row.change_type, "error": previous_error[:500]},
    )
    enqueue_on_commit(raw_callback_run, row.id)
    return row


# -- sync runs (see siyu.wecom.sync) ----------------------------------------------------------------------------

SYNC_PHASES = ("members", "tags", "contacts", "groups")  # the order they run in: each feeds the next


class SyncBusy(Conflict):
    """Another sync of this brand is running (its heartbeat is recent)."""


class SyncTakenOver(Conflict):
    """This process's run was resumed by another process (it took this one for dead): stop writing."""


def _sync_phases(phases: Sequence[str]) -> list[str]:
    unknown = sorted(set(phases) - set(SYNC_PHASES))
    if unknown or not phases:
        raise ValidationFailed(
            f"unknown sync phase {unknown[0]!r}" if unknown else "name at least one phase", field="only"
        )
    return [p for p in SYNC_PHASES if p in phases]


def _sync_actor(run: SyncRun) -> Actor:
    return Actor(user_id=run.requested_by_id, tenant_id=run.tenant_id, role=Role.HQ_ADMIN)


@transaction.atomic
def sync_run_open(
    *,
    tenant_id: int,
    phases: Sequence[str] = SYNC_PHASES,
    restart: bool = False,
    force: bool = False,
    requested_by: int | None = None,
) -> tuple[SyncRun, bool]:
    """Start a sync run of the brand, or resume its unfinished one; returns (run, resumed).

    The unfinished run (failed, or running with a stale heartbeat) is resumed from its checkpoint when it has
    the same phases and `restart` is not asked for; otherwise it is abandoned and a new run starts. A run
    that is still alive makes this raise SyncBusy, unless `force` (for an operator who knows it is dead).
    The connection row is locked meanwhile, so two starters never both win.
    """
    wanted = _sync_phases(phases)
    connection = WeComConnection.objects.select_for_update().filter(tenant_id=tenant_id).first()
    if connection is None:
        raise ValidationFailed("this brand has no WeCom connection", field="tenant")
    now = timezone.now()
    unfinished = (
        SyncRun.objects.filter(tenant_id=tenant_id, status__in=(SyncRun.Status.RUNNING, SyncRun.Status.FAILED))
        .order_by("-started_at", "-id")
        .first()
    )
    if unfinished is not None:
        alive = unfinished.status == SyncRun.Status.RUNNING and unfinished.heartbeat_at > now - SYNC_LEASE
        if alive and not force:
            raise SyncBusy(f"sync #{unfinished.id} of this brand is running", field="tenant")
        if not restart and unfinished.phases == wanted:
            unfinished.status = SyncRun.Status.RUNNING
            unfinished.heartbeat_at = now
            unfinished.attempts += 1
            unfinished.save(update_fields=["status", "heartbeat_at", "attempts"])
            audit_record(
                actor=_sync_actor(unfinished),
                action="wecom_sync.resume",
                target_type="sync_run",
                target_id=unfinished.id,
                detail={"phase": unfinished.phase, "pages": unfinished.pages},
            )
            return unfinished, True
        unfinished.status = SyncRun.Status.ABANDONED
        unfinished.finished_at = now
        unfinished.save(update_fields=["status", "finished_at"])
        SyncSeen.objects.filter(run=unfinished).delete()
    run = SyncRun.objects.create(
        tenant_id=tenant_id,
        connection=connection,
        phases=wanted,
        phase=wanted[0],
        requested_by_id=requested_by,
        started_at=now,
        heartbeat_at=now,
    )
    audit_record(
        actor=_sync_actor(run), action="wecom_sync.start", target_type="sync_run", target_id=run.id,
        detail={"phases": wanted},
    )
    return run, False


@transaction.atomic
def sync_run_progress(
    *,
    run: SyncRun,
    phase: str,
    checkpoint: dict[str, Any],
    counts: Mapping[str, int] | None = None,
    seen: Sequence[tuple[str, str, dict[str, Any]]] = (),
) -> SyncRun:
    """Record a committed page: the phase's new checkpoint, what the page did, and what it saw (kind, key, data).

    Call it inside the transaction that wrote the page's data, so the data and the position to resume from
    commit together: a run killed anywhere resumes exactly after its last committed page.
    """
    phase_counts = dict(run.counts.get(phase, {}))
    for key, value in (counts or {}).items():
        phase_counts[key] = phase_counts.get(key, 0) + int(value)
    run.counts = {**run.counts, phase: phase_counts}
    run.checkpoint = {**run.checkpoint, phase: checkpoint}
    run.phase = phase
    run.pages += 1
    run.heartbeat_at = timezone.now()
    SyncSeen.objects.bulk_create(
        [SyncSeen(run=run, kind=kind, key=key, data=data) for kind, key, data in seen], ignore_conflicts=True
    )
    # Conditional on the attempt: if another process resumed the run meanwhile, this page must not land.
    saved = SyncRun.objects.filter(id=run.id, attempts=run.attempts, status=SyncRun.Status.RUNNING).update(
        counts=run.counts, checkpoint=run.checkpoint, phase=phase, pages=run.pages, heartbeat_at=run.heartbeat_at
    )
    if not saved:
        raise SyncTakenOver(f"sync #{run.id} was resumed elsewhere; this attempt stops", field="tenant")
    return run


def sync_run_beat(*, run: SyncRun) -> None:
    """Keep the run's heartbeat fresh while it waits (e.g. out a rate limit), so nobody takes it for dead."""
    run.heartbeat_at = timezone.now()
    SyncRun.objects.filter(id=run.id, attempts=run.attempts, status=SyncRun.Status.RUNNING).update(
        heartbeat_at=run.heartbeat_at
    )


@transaction.atomic
def sync_run_finish(*, run: SyncRun) -> SyncRun:
    """Mark the run succeeded and drop its scratch rows."""
    if not SyncRun.objects.filter(id=run.id, attempts=run.attempts, status=SyncRun.Status.RUNNING).exists():
        raise SyncTakenOver(f"sync #{run.id} was resumed elsewhere; this attempt stops", field="tenant")
    run.status = SyncRun.Status.SUCCEEDED
    run.finished_at = run.heartbeat_at = timezone.now()
    run.error = ""
    run.save(update_fields=["status", "finished_at", "heartbeat_at", "error"])
    SyncSeen.objects.filter(run=run).delete()
    audit_record(
        actor=_sync_actor(run), action="wecom_sync.finish", target_type="sync_run", target_id=run.id,
        detail={"counts": run.counts, "pages": run.pages, "attempts": run.attempts},
    )
    return run


@transaction.atomic
def sync_run_fail(*, run: SyncRun, error: str) -> SyncRun:
    """Mark the run failed with `error`; its checkpoint (as last committed) stays for the resume."""
    attempt = run.attempts
    run.refresh_from_db()  # what the interrupted page left in memory never committed
    if run.attempts != attempt or run.status != SyncRun.Status.RUNNING:
        return run  # resumed by another process meanwhile: the run is theirs now, leave it be
    now = timezone.now()
    run.status = SyncRun.Status.FAILED
    run.error = error[:2000]
    run.errors = [*run.errors, {"at": now.isoformat(), "phase": run.phase, "error": error[:500]}][-50:]
    run.heartbeat_at = now
    run.save(update_fields=["status", "error", "errors", "heartbeat_at"])
    audit_record(
        actor=_sync_actor(run), action="wecom_sync.fail", target_type="sync_run", target_id=run.id,
        detail={"phase": run.phase, "error": error[:500]},
    )
    return run


def sync_request(*, actor: Actor, phases: Sequence[str] = SYNC_PHASES) -> None:
    """Ask for a sync of the actor's brand in the background (the console's "sync now"); HQ only.

    Raises SyncBusy while a sync of the brand is alive (its heartbeat is recent).
    """
    from siyu.wecom.tasks import sync_run_job

    _require_hq(actor)
    wanted = _sync_phases(phases)
    if not WeComConnection.objects.filter(tenant_id=actor.tenant_id).exists():
        raise ValidationFailed("this brand has no WeCom connection yet", field="corp_id")
    running = (
        SyncRun.objects.filter(
            tenant_id=actor.tenant_id,
            status=SyncRun.Status.RUNNING,
            heartbeat_at__gt=timezone.now() - SYNC_LEASE,
        )
        .order_by("-started_at")
        .first()
    )
    if running is not None:
        # The job would find it busy and do nothing; say so now rather than queue a job that will not run.
        raise SyncBusy(f"sync #{running.id} of this brand is running", field="tenant")
    with transaction.atomic():
        audit_record(actor=actor, action="wecom_sync.request", target_type="tenant", target_id=actor.tenant_id,
                     detail={"phases": wanted})
        enqueue_on_commit(sync_run_job, actor.tenant_id, wanted, actor.user_id)
