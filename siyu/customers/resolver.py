"""Bulk identity resolution (批量身份归并): many source records at once → customers, for imports.

A record is what one source row says about one person: its identities, e.g. a WeCom contact (external_userid,
unionid), a member (member number, verified phone, unionid), a shop order (buyer id, an unverified phone). The
resolver applies the OneID rules of siyu.customers.identity to a whole batch in memory, then writes in bulk:

1. **Union-find over identity keys.** Records sharing an account id (any kind but phone) or a verified phone are
   one person; an unverified phone links nothing. The root of a cluster is its earliest record, so the outcome
   does not depend on hash order.
2. **Existing customers** of the brand holding any of the batch's keys (looked up per kind, 2,000 values a query;
   skipped when the brand has no identities yet) join their cluster: the cluster becomes that customer, and two
   existing customers linked by the batch merge (the older survives) like any other merge.
3. **Bulk writes** in one transaction: new Customer rows (ids reserved up front, so Identity rows can name them),
   then their `customer.created` events in one INSERT…SELECT from those rows, and the Identity rows; COPY on
   PostgreSQL, batches of rows sent as one JSON text each and unpacked by json_each on SQLite.
4. **Unverified phones** go to whichever cluster holds the phone verified, else to the first record's cluster; any
   other cluster carrying it is proposed for review with its holder (at most MAX_MATCHES clusters per phone: a phone
   shared more widely, such as a masked one, says nothing).

Values are taken as stored (phones as their keyed hash, see siyu.customers.cleaning.identity_value): the import
that parses a file cleans and hashes, the resolver only decides who is whom.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from siyu.analytics.models import Event
from siyu.core.errors import PermissionDenied, ValidationFailed
from siyu.core.scopes import Actor
from siyu.core.services import audit_record
from siyu.customers import identity as oneid
from siyu.customers.cleaning import MAX_IDENTITY
from siyu.customers.models import Customer, CustomerMerge, Identity, LifecycleStage, MergeCandidate

# (kind, value as stored, verified): verified matters for phones only.
IdentityKey = tuple[str, str, bool]
Record = Sequence[IdentityKey]

_PHONE = Identity.Kind.PHONE.value
_LINKING_KINDS = tuple(k for k in Identity.Kind.values if k != _PHONE)
_LOOKUP_CHUNK = 2000
_WRITE_BATCH = 5000
_SQLITE_CACHE_KIB = 512 * 1024


@dataclass
class ResolveResult:
    """What a batch did. `customer_ids[i]` is the customer record i belongs to."""

    records: int = 0
    clusters: int = 0  # distinct people in the batch
    links: int = 0  # records folded into another record's cluster (records - clusters)
    customers_created: int = 0
    customers_matched: int = 0  # clusters that turned out to be an existing customer
    existing_merged: int = 0  # existing customers merged into another because the batch linked them
    identities_created: int = 0
    candidates: int = 0  # pairs proposed for review (shared unverified phones)
    customer_ids: list[int] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per phase, wall clock
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # per phase, this process's CPU (not the server's)


def _bad(i: int, message: str) -> ValidationFailed:
    return ValidationFailed(f"records[{i}]: {message}", field="records")


def _link(records: Sequence[Record]) -> tuple[list[int], int, dict[str, dict[str, int]], list[tuple[str, int]], int]:
    """Union-find over the batch. Returns (cluster number of each record, how many clusters, kind → value → first
    record holding it linkingly, unverified phone occurrences as (value, record), how many unions joined two sets).

    A set's root is its smallest record index and every parent pointer points down (parent[x] <= x), so one pass
    in index order numbers the clusters in the order of their first records.
    """
    n = len(records)
    parent = list(range(n))
    owners: dict[str, dict[str, int]] = {kind: {} for kind in (*_LINKING_KINDS, _PHONE)}
    unverified: list[tuple[str, int]] = []
    unions = 0
    for i, record in enumerate(records):
        for kind, value, verified in record:
            if type(value) is not str or not 0 < len(value) <= MAX_IDENTITY or "\x00" in value:
                raise _bad(i, f"identity values are 1 to {MAX_IDENTITY} characters without NUL")
            if kind == _PHONE and verified is not True:
                if verified is not False:
                    raise _bad(i, "verified must be true or false")
                unverified.append((value, i))
                continue
            by_value = owners.get(kind)
            if by_value is None:
                raise _bad(i, f"unknown identity kind {kind!r}")
            j = by_value.setdefault(value, i)
            if j == i:
                continue
            # The roots of i and j (halving j's path); the larger root then points at the smaller.
            a = i
            while parent[a] != a:
                a = parent[a]
            b = j
            while parent[b] != b:
                parent[b] = parent[parent[b]]
                b = parent[b]
            if a != b:
                parent[max(a, b)] = min(a, b)
                unions += 1
    cluster_of = [0] * n
    clusters = 0
    for i in range(n):
        up = parent[i]
        if up == i:
            cluster_of[i] = clusters
            clusters += 1
        else:
            cluster_of[i] = cluster_of[up]
    return cluster_of, clusters, owners, unverified, unions


def _existing(
    tenant_id: int, owners: dict[str, dict[str, int]], unverified: list[tuple[str, int]]
) -> dict[tuple[str, str], tuple[int, bool]]:
    """(kind, value) → (customer id, verified) for the batch's keys some customer of the brand already holds."""
    if not Identity.objects.filter(tenant_id=tenant_id).exists():
        return {}
    found: dict[tuple[str, str], tuple[int, bool]] = {}
    for kind, by_value in owners.items():
        values = list(by_value)
        if kind == _PHONE:
            values = sorted(set(values) | {v for v, _ in unverified})
        for start in range(0, len(values), _LOOKUP_CHUNK):
            rows = Identity.objects.filter(
                tenant_id=tenant_id, kind=kind, value__in=values[start : start + _LOOKUP_CHUNK]
            ).values_list("value", "customer_id", "verified")
            for value, customer_id, verified in rows:
                found[(kind, value)] = (customer_id, verified)
    return found


def _reserve_ids(n: int) -> list[int]:
    """n new Customer ids, for rows inserted with explicit ids (so Identity rows can name them before they exist)."""
    if n == 0:
        return []
    table = Customer._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, n])
            return [row[0] for row in cursor.fetchall()]
        # SQLite: take the write lock first (a write statement that changes nothing), so no other writer can insert
        # between reading the highest id and inserting above it; AUTOINCREMENT's sequence counts deleted ids too.
        quoted = connection.ops.quote_name(table)
        cursor.execute(f"UPDATE {quoted} SET id = id WHERE 0")  # noqa: S608 - the table name is the model's
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {quoted}")  # noqa: S608
        highest = cursor.fetchone()[0]
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        row = cursor.fetchone()
        start = max(highest, row[0] if row else 0) + 1
        return list(range(start, start + n))


@contextmanager
def _big_cache() -> Iterator[None]:
    """SQLite: a page cache big enough for the indexes a bulk insert touches, for this batch only.

    The default (2 MB) makes every insert into a large index with random keys (hashes, unionids) go to the OS for
    pages: several times slower. PostgreSQL has shared_buffers and needs nothing here.
    """
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        before = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA cache_size = {-_SQLITE_CACHE_KIB}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {int(before)}")


def _db_time() -> Any:
    """A function turning an aware datetime into the text the bulk writer sends, each distinct value once: for
    PostgreSQL's COPY its ISO form with the offset; for SQLite what Django stores (naive UTC, "YYYY-MM-DD HH:MM:SS")."""
    postgres = connection.vendor == "postgresql"
    cache: dict[dt.datetime, str] = {}

    def adapt(value: dt.datetime) -> str:
        text = cache.get(value)
        if text is None:
            text = cache[value] = str(value) if postgres else str(value.astimezone(dt.UTC))[:-6]
        return text

    return adapt


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    """`value` as a field of COPY's text format (only backslash, tab, newline and return need escaping)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _copy(table: str, columns: Sequence[str], lines: Iterable[str]) -> int:
    """PostgreSQL: append `lines` (COPY's text format) to `table` and return how many, sent from a thread of their
    own so that making lines here and storing them there overlap. `lines` must not query the database (the
    connection is busy with the COPY)."""
    from psycopg.copy import QueuedLibpqWriter

    quoted = connection.ops.quote_name(table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    count = 0
    iterator = iter(lines)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # type: ignore[attr-defined]
        with raw.copy(f"COPY {quoted} ({names}) FROM STDIN", writer=QueuedLibpqWriter(raw)) as copy:
            while batch := list(islice(iterator, _WRITE_BATCH)):
                copy.write("".join(batch))
                count += len(batch)
    return count


def _insert_json(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], constants: dict[str, Any]) -> int:
    """SQLite: append rows (values of `columns`, JSON-serialisable) to `table`, `constants` the same in every row,
    and return how many. Each batch goes as one JSON text unpacked by json_each in one INSERT…SELECT: executemany
    binds every value of every row from Python and steps the statement once a row, which cost about as much CPU as
    the B-tree work itself (siyu bench identity, 1M records: customers 11.3 → 5.4 s CPU, identities ~14.6 → 9.8 s)."""
    quoted = connection.ops.quote_name(table)
    names = ", ".join(connection.ops.quote_name(c) for c in (*columns, *constants))
    picks = [f"json_extract(value, '$[{k}]')" for k in range(len(columns))] + ["%s"] * len(constants)
    sql = f"INSERT INTO {quoted} ({names}) SELECT {', '.join(picks)} FROM json_each(%s)"  # noqa: S608
    fixed = list(constants.values())
    # ensure_ascii=False: text stays UTF-8 as executemany would bind it (and a lone surrogate fails the same way).
    encode = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":")).encode
    count = 0
    iterator = iter(rows)
    with connection.cursor() as cursor:
        while batch := list(islice(iterator, _WRITE_BATCH)):
            cursor.execute(sql, [*fixed, encode(batch)])
            count += len(batch)
    return count


def _id_runs(ids: Sequence[int]) -> Iterator[tuple[int, int]]:
    """Sorted distinct ids as maximal runs of consecutive ones (lowest, highest): one run when the ids were reserved
    at once, as they are unless another session took sequence values in between (PostgreSQL)."""
    ordered = sorted(ids)
    if ordered and ordered[-1] - ordered[0] + 1 == len(ordered):
        yield ordered[0], ordered[-1]  # the usual case, without a Python step per id
        return
    start = 0
    for k in range(1, len(ordered) + 1):
        if k == len(ordered) or ordered[k] != ordered[k - 1] + 1:
            yield ordered[start], ordered[k - 1]
            start = k


def _created_events(
    *, tenant_id: int, customer_ids: Sequence[int], actor_id: int | None, properties: str, recorded_at: dt.datetime
) -> int:
    """The `customer.created` events of the customers just inserted (`customer_ids`), one INSERT…SELECT per run of
    consecutive ids, in id order, each at its customer's created_at. The id ranges hold only these customers: ids
    are reserved for this batch (see _reserve_ids), so no other row can have an id inside a run of them."""
    postgres = connection.vendor == "postgresql"
    event = connection.ops.quote_name(Event._meta.db_table)
    customer = connection.ops.quote_name(Customer._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in _EVENT_COLUMNS)
    # PostgreSQL does not assign parameters of a SELECT list to the target columns' types: cast them. The unary plus
    # keeps SQLite on the primary key's range (a (tenant, …) index would read the brand's every customer).
    guide, actor, props, at = (
        ("CAST(NULL AS bigint)", "CAST(%s AS integer)", "CAST(%s AS jsonb)", "CAST(%s AS timestamp with time zone)")
        if postgres
        else ("NULL", "%s", "%s", "%s")
    )
    sql = (
        f"INSERT INTO {event} ({names}) SELECT tenant_id, id, {guide}, {actor}, 'customer.created', created_at, "  # noqa: S608
        f"{props}, {at} FROM {customer} WHERE id BETWEEN %s AND %s AND +tenant_id = %s ORDER BY id"
    )
    db_recorded_at = connection.ops.adapt_datetimefield_value(recorded_at)
    count = 0
    with connection.cursor() as cursor:
        for low, high in _id_runs(customer_ids):
            cursor.execute(sql, [actor_id, properties, db_recorded_at, low, high, tenant_id])
            count += cursor.rowcount
    return count


_CUSTOMER_COLUMNS = (
    "id",
    "tenant_id",
    "name_enc",
    "name_index",
    "phone_enc",
    "phone_hash",
    "address_enc",
    "gender",
    "city",
    "lifecycle_stage",
    "intent_level",
    "source",
    "owner_guide_id",
    "created_at",
    "updated_at",
    "match_name_city_phone",
    "match_name_address",
    "merged_into_id",
    "merged_at",
)
_IDENTITY_COLUMNS = ("tenant_id", "customer_id", "kind", "value", "created_at", "verified")
_EVENT_COLUMNS = (
    "tenant_id",
    "customer_id",
    "guide_id",
    "actor_id",
    "type",
    "occurred_at",
    "properties",
    "recorded_at",
)


def identities_resolve(
    *,
    actor: Actor,
    records: Sequence[Record],
    created_at: Sequence[dt.datetime] | dt.datetime | None = None,
    source: str = "import",
) -> ResolveResult:
    """Resolve a batch of records into customers (see the module docstring); HQ or a loader only; one audit row.

    `created_at` is when each record's person was first seen (one per record, or one for all; default now): a
    new customer is created at its cluster's earliest time.
    """
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ or a loader acting for the brand may import customers")
    if len(source) > 64:
        raise ValidationFailed("source is at most 64 characters", field="source")
    now = timezone.now()
    if created_at is not None and not isinstance(created_at, dt.datetime) and len(created_at) != len(records):
        raise ValidationFailed("created_at needs one time per record", field="created_at")
    result = ResolveResult(records=len(records))
    clock, cpu = time.perf_counter(), time.process_time()

    def lap(name: str) -> None:
        nonlocal clock, cpu
        result.seconds[name] = time.perf_counter() - clock
        result.cpu_seconds[name] = time.process_time() - cpu
        clock, cpu = time.perf_counter(), time.process_time()

    cluster_of, clusters, owners, unverified, unions = _link(records)
    result.clusters, result.links = clusters, unions
    lap("link")

    with transaction.atomic(), _big_cache():
        existing = _existing(actor.tenant_id, owners, unverified)
        customer_of = _match_existing(actor, existing, owners, cluster_of, result)
        lap("match")
        when = _first_seen(records, cluster_of, clusters, created_at, now)
        # New customers in the order they were first seen, ids ascending: the (created_at, id) indexes of customers
        # and events then grow at one end instead of everywhere.
        new_clusters = sorted((c for c in range(clusters) if customer_of[c] == 0), key=when.__getitem__)
        for c, customer_id in zip(new_clusters, _reserve_ids(len(new_clusters)), strict=True):
            customer_of[c] = customer_id
        db_time = _db_time()
        db_now = db_time(now)
        verified_phone = {cluster_of[i]: value for value, i in owners[_PHONE].items()}
        tenant_id, new, actor_id = actor.tenant_id, LifecycleStage.NEW.value, actor.user_id
        postgres = connection.vendor == "postgresql"
        if postgres:
            s_source = _copy_text(source)
            result.customers_created = _copy(
                Customer._meta.db_table,
                _CUSTOMER_COLUMNS,
                (
                    f"{customer_of[c]}\t{tenant_id}\t\t\t\t{_copy_text(verified_phone.get(c, ''))}\t\t0\t\t{new}\t0\t"
                    f"{s_source}\t\\N\t{db_time(when[c])}\t{db_now}\t\t\t\\N\t\\N\n"
                    for c in new_clusters
                ),
            )
        else:
            # Only id, phone hash and created_at differ between new customers; the rest is bound once a batch.
            blank = {"name_enc", "name_index", "phone_enc", "address_enc", "city", "match_name_city_phone",
                     "match_name_address"}  # fmt: skip
            constants: dict[str, Any] = {
                **dict.fromkeys(blank, ""),
                **dict.fromkeys(("owner_guide_id", "merged_into_id", "merged_at")),
                "tenant_id": tenant_id,
                "gender": 0,
                "lifecycle_stage": new,
                "intent_level": 0,
                "source": source,
                "updated_at": db_now,
            }
            # Rows as tuples zip makes, each distinct time converted once.
            db_when = {w: db_time(w) for w in set(when)}
            result.customers_created = _insert_json(
                Customer._meta.db_table,
                ("id", "phone_hash", "created_at"),
                zip(
                    [customer_of[c] for c in new_clusters],
                    [verified_phone.get(c, "") for c in new_clusters],
                    [db_when[when[c]] for c in new_clusters],
                    strict=True,
                ),
                constants,
            )
        lap("customers")
        # After the customers, from their rows: no event row is built in Python (analytics read these events).
        _created_events(
            tenant_id=tenant_id,
            customer_ids=[customer_of[c] for c in new_clusters],
            actor_id=actor_id,
            properties=json.dumps({"source": source}),
            recorded_at=now,
        )
        lap("events")
        plan = _identity_plan(owners, unverified, existing, cluster_of, customer_of)
        proposals = plan.pairs
        if existing:
            _verify_held(tenant_id, owners, existing, cluster_of, customer_of, proposals)
        lap("plan")
        if postgres:
            result.identities_created = _copy(
                Identity._meta.db_table,
                _IDENTITY_COLUMNS,
                (
                    f"{tenant_id}\t{customer_id}\t{kind}\t{_copy_text(value)}\t{db_now}\t{'t' if verified else 'f'}\n"
                    for kind, value, customer_id, verified in plan.rows
                ),
            )
        else:
            # The plan's rows are already (kind, value, customer id, verified): sent as they are.
            result.identities_created = _insert_json(
                Identity._meta.db_table,
                ("kind", "value", "customer_id", "verified"),
                plan.rows,
                {"tenant_id": tenant_id, "created_at": db_now},
            )
        lap("identities")
        result.candidates = _propose(actor.tenant_id, proposals, now)
        result.customer_ids = [customer_of[c] for c in cluster_of]
        audit_record(
            actor=actor,
            action="customer.import_identities",
            target_type="customer",
            detail={
                "source": source,
                "records": result.records,
                "customers_created": result.customers_created,
                "customers_matched": result.customers_matched,
                "existing_merged": result.existing_merged,
                "identities_created": result.identities_created,
                "candidates": result.candidates,
            },
        )
        lap("candidates")
    lap("commit")
    return result


def _match_existing(
    actor: Actor,
    existing: dict[tuple[str, str], tuple[int, bool]],
    owners: dict[str, dict[str, int]],
    cluster_of: list[int],
    result: ResolveResult,
) -> list[int]:
    """Cluster number → the existing customer it is (0: a new one); merges existing customers the batch links."""
    customer_of = [0] * (max(cluster_of) + 1 if cluster_of else 0)
    if not existing:
        return customer_of
    held_by: dict[int, set[int]] = {}
    for (kind, value), (customer_id, verified) in existing.items():
        i = owners[kind].get(value)
        if i is None or (kind == _PHONE and not verified):
            continue  # only an unverified occurrence in the batch, or held unverified: no link (see _identity_plan)
        held_by.setdefault(cluster_of[i], set()).add(customer_id)
    ids = sorted(set().union(*held_by.values()))
    created: dict[int, dt.datetime] = {}
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        created.update(
            Customer.objects.filter(tenant_id=actor.tenant_id, id__in=ids[start : start + _LOOKUP_CHUNK]).values_list(
                "id", "created_at"
            )
        )
    for c, customer_ids in sorted(held_by.items()):
        ordered = sorted(customer_ids, key=lambda customer_id: (created[customer_id], customer_id))
        survivor = ordered[0]
        for other in ordered[1:]:
            # Two customers the batch says are one person (rare): an ordinary merge, unless an operator said no.
            if oneid.pair_blocked(tenant_id=actor.tenant_id, a=survivor, b=other):
                continue
            oneid.merge_apply(actor=actor, survivor_id=survivor, merged_id=other, rule=CustomerMerge.Rule.IDENTITY)
            result.existing_merged += 1
        customer_of[c] = survivor
        result.customers_matched += 1
    return customer_of


def _first_seen(
    records: Sequence[Record],
    cluster_of: list[int],
    n: int,
    created_at: Sequence[dt.datetime] | dt.datetime | None,
    now: dt.datetime,
) -> list[dt.datetime]:
    if created_at is None or isinstance(created_at, dt.datetime):
        return [created_at or now] * n
    when: list[dt.datetime | None] = [None] * n
    for i, at in enumerate(created_at):
        c = cluster_of[i]
        current = when[c]
        if current is None or at < current:
            when[c] = at
    return [w or now for w in when]


@dataclass
class _IdentityPlan:
    """What to store of the batch's identities: rows (kind, value, customer id, verified) in the order of the unique
    (tenant, kind, value) index, and the customer pairs to review (shared unverified phones)."""

    rows: list[tuple[str, str, int, bool]]
    pairs: set[tuple[int, int]]


def _identity_plan(
    owners: dict[str, dict[str, int]],
    unverified: list[tuple[str, int]],
    existing: dict[tuple[str, str], tuple[int, bool]],
    cluster_of: list[int],
    customer_of: list[int],
) -> _IdentityPlan:
    """Where every identity of the batch goes (no database work)."""
    pairs: set[tuple[int, int]] = set()
    # Unverified phones: the holder is the cluster with the phone verified, else an existing holder, else the
    # first record's cluster; every other cluster carrying it is a candidate with the holder.
    verified_owner = owners[_PHONE]
    holder_of: dict[str, int] = {}
    others: dict[str, set[int]] = {}
    for value, i in unverified:
        customer_id = customer_of[cluster_of[i]]
        if value in verified_owner:
            holder = customer_of[cluster_of[verified_owner[value]]]
        elif (_PHONE, value) in existing:
            holder = existing[(_PHONE, value)][0]
        else:
            holder = holder_of.setdefault(value, customer_id)
        if holder != customer_id:
            others.setdefault(value, set()).add(customer_id)
            holder_of.setdefault(value, holder)
    for value, customer_ids in others.items():
        if len(customer_ids) <= oneid.MAX_MATCHES:
            holder = holder_of[value]
            pairs.update((min(holder, c), max(holder, c)) for c in customer_ids)
    # New rows by kind, each kind's values sorted (strings sort several times faster than tuples): the unique
    # (tenant, kind, value) index then grows at one end instead of everywhere.
    rows: list[tuple[str, str, int, bool]] = []
    for kind in sorted(owners):
        by_value = owners[kind]
        if kind != _PHONE:
            # One tuple per row and no dict in between: most of a batch's identities are these.
            values = sorted(by_value if not existing else (v for v in by_value if (kind, v) not in existing))
            rows += [(kind, value, customer_of[cluster_of[by_value[value]]], False) for value in values]
            continue
        held = {value: (customer_of[cluster_of[i]], True) for value, i in by_value.items()}
        held.update((v, (c, False)) for v, c in holder_of.items() if v not in verified_owner)
        if existing:
            held = {v: row for v, row in held.items() if (kind, v) not in existing}
        rows += [(kind, value, *held[value]) for value in sorted(held)]
    return _IdentityPlan(rows=rows, pairs=pairs)


def _verify_held(
    tenant_id: int,
    owners: dict[str, dict[str, int]],
    existing: dict[tuple[str, str], tuple[int, bool]],
    cluster_of: list[int],
    customer_of: list[int],
    proposals: set[tuple[int, int]],
) -> None:
    """Phones the batch saw verified that a customer already holds unverified: the same customer's phone becomes
    verified; another customer's is a candidate pair (the phone stays where it is)."""
    upgrade: list[str] = []
    for value, i in owners[_PHONE].items():
        held = existing.get((_PHONE, value))
        if held is None or held[1]:
            continue
        customer_id = customer_of[cluster_of[i]]
        if held[0] == customer_id:
            upgrade.append(value)
        else:
            proposals.add((min(held[0], customer_id), max(held[0], customer_id)))
    for start in range(0, len(upgrade), _LOOKUP_CHUNK):
        Identity.objects.filter(
            tenant_id=tenant_id, kind=_PHONE, value__in=upgrade[start : start + _LOOKUP_CHUNK]
        ).update(verified=True)


def _propose(tenant_id: int, pairs: set[tuple[int, int]], now: dt.datetime) -> int:
    """Bulk-propose candidate pairs (shared unverified phone); pairs already known, in any state, are skipped."""
    if not pairs:
        return 0
    reason = MergeCandidate.Reason.PHONE_UNVERIFIED
    known: set[tuple[int, int]] = set()
    lows = sorted({a for a, _ in pairs})
    for start in range(0, len(lows), _LOOKUP_CHUNK):
        known.update(
            MergeCandidate.objects.filter(
                tenant_id=tenant_id, customer_a_id__in=lows[start : start + _LOOKUP_CHUNK]
            ).values_list("customer_a_id", "customer_b_id")
        )
    new = [
        MergeCandidate(
            tenant_id=tenant_id,
            customer_a_id=a,
            customer_b_id=b,
            reason=reason,
            score=oneid.SCORES[reason],
            created_at=now,
        )
        for a, b in sorted(pairs - known)
    ]
    MergeCandidate.objects.bulk_create(new, batch_size=1000, ignore_conflicts=True)
    return len(new)
