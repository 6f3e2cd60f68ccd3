"""`siyu bench identity`: the bulk OneID resolver (siyu.customers.resolver) on 1M identity records.

The bench creates a database of its own (a SQLite file under VAR_DIR, or `--database postgres`: a fresh PostgreSQL
database `siyu_bench_identity` it drops afterwards), migrates it and makes a throwaway brand. Its generator invents
people and what the brand's sources say about them, seeded, before the clock starts:

- ~60 % as many people as records; 75 % have a WeChat unionid, 60 % are WeCom contacts (external_userid), 35 % are
  members (member number and a phone they verified), 25 / 12 / 8 / 5 % have a Tmall / JD / Youzan / 小鹅通 account;
- every person gets one record, the rest of the records go to people at random (so some have several): a WeCom
  contact record (external_userid, unionid when known), a mini-program record (unionid), a member record (member
  number, verified phone, unionid when known; half of them with a shop account bound, 会员通), or a shop order
  (buyer id and an unverified phone, 5 % of the time a relative's number).

Timed: `identities_resolve` on all records (union-find, lookups, bulk writes of customers, their created events
and identities, candidate pairs; one transaction). Then the bench checks the result against the generator's
ground truth, which it computes its own way (per person, from what the generator knows about who is who): the
records of one customer are exactly one person's records that share an account id or a verified phone (a
relative's phone never joins two people), every identity row names the right customer with the right verified
flag, the customer and event counts, and the exact set of review pairs (shared unverified phones). A wrong answer
fails the bench (exit status 1) with what differed. `--size` S / M / L: 1M / 3M / 10M records.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.core.management import call_command
from rich.console import Console
from rich.table import Table

from siyu.analytics.models import Event
from siyu.core import pii
from siyu.core import services as core_services
from siyu.core.models import Role
from siyu.core.scopes import Actor
from siyu.core.stack import (
    StackError,
    bench_keys,
    redacted,
    scratch_database,
    scratch_folder,
    scratch_postgres_url,
    using_database,
)
from siyu.customers.identity import MAX_MATCHES
from siyu.customers.models import Customer, Identity, MergeCandidate
from siyu.customers.resolver import IdentityKey, ResolveResult, identities_resolve

SIZES = {"S": 1_000_000, "M": 3_000_000, "L": 10_000_000}
TARGET_SECONDS = 20.0
K = Identity.Kind
_SHOPS = ((K.TMALL_BUYER, 0.25), (K.JD_BUYER, 0.12), (K.YOUZAN_BUYER, 0.08), (K.XIAOE_USER, 0.05))
_START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@dataclass
class Person:
    phone: str  # keyed hash, as stored
    unionid: str = ""
    external_userid: str = ""
    member_no: str = ""
    shops: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Workload:
    records: list[list[IdentityKey]]
    person_of: list[int]  # record → person
    created_at: list[dt.datetime]
    people: int


def generate(count: int, seed: int = 7) -> Workload:
    """`count` records over about 0.6 × count people (see the module docstring)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    n_people = max(1, round(count * 0.6))
    people: list[Person] = []
    for p in range(n_people):
        person = Person(phone=pii.lookup_hash(f"1{3 + p % 7}{p:09d}", kind="phone"))
        if rng.random() < 0.75:
            person.unionid = f"o{p:011d}bench{rng.getrandbits(40):010x}"
        if rng.random() < 0.60:
            person.external_userid = f"wm{p:012d}{rng.getrandbits(56):014x}"
        if rng.random() < 0.35:
            person.member_no = f"CG{p:010d}"
        for kind, share in _SHOPS:
            if rng.random() < share:
                person.shops.append((kind, f"{kind[:2]}{p:010d}{rng.getrandbits(24):06x}"))
        people.append(person)
    owners = list(range(n_people)) + [rng.randrange(n_people) for _ in range(count - n_people)]
    rng.shuffle(owners)
    records: list[list[IdentityKey]] = []
    days = [_START + dt.timedelta(days=d) for d in range(730)]
    created_at = [days[rng.randrange(730)] for _ in range(count)]
    for p in owners:
        person = people[p]
        sources = []
        if person.external_userid:
            sources.append("wecom")
        if person.unionid:
            sources.append("mini")
        if person.member_no:
            sources.append("member")
        if person.shops:
            sources.append("shop")
        if not sources:  # nobody is known to the brand through nothing: a lone WeCom contact
            person.external_userid = f"wm{p:012d}solo"
            sources.append("wecom")
        source = rng.choice(sources)
        record: list[IdentityKey] = []
        if source == "wecom":
            record.append((K.WECOM_EXTERNAL_USERID, person.external_userid, False))
            if person.unionid:
                record.append((K.UNIONID, person.unionid, False))
        elif source == "mini":
            record.append((K.UNIONID, person.unionid, False))
        elif source == "member":
            record += [(K.MEMBER_NO, person.member_no, False), (K.PHONE, person.phone, True)]
            if person.unionid:
                record.append((K.UNIONID, person.unionid, False))
            if person.shops and rng.random() < 0.5:
                record.append((*rng.choice(person.shops), False))
        else:
            kind, buyer = rng.choice(person.shops)
            phone = person.phone if rng.random() >= 0.05 else people[rng.randrange(n_people)].phone
            record += [(kind, buyer, False), (K.PHONE, phone, False)]
        records.append(record)
    return Workload(records=records, person_of=owners, created_at=created_at, people=n_people)


# -- the ground truth ----------------------------------------------------------------------------------------------


@dataclass
class Truth:
    group_of: list[int]  # record → expected customer (a number)
    groups: int
    identities: dict[tuple[str, str], tuple[int, bool]]  # (kind, value) → (group, verified)
    pairs: set[tuple[int, int]]  # expected review pairs, as groups


def truth(work: Workload) -> Truth:
    """What the resolver must find, computed per person: only one person's own records can be one customer."""
    by_person: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(work.person_of):
        by_person[p].append(i)
    group_of = [-1] * len(work.records)
    groups = 0
    for p in sorted(by_person, key=lambda p: by_person[p][0]):
        mine = by_person[p]
        # Breadth-first over this person's records: two are joined by a shared account id or verified phone.
        holders: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i in mine:
            for kind, value, verified in work.records[i]:
                if kind != K.PHONE or verified:
                    holders[(kind, value)].append(i)
        for start in mine:
            if group_of[start] >= 0:
                continue
            group_of[start] = groups
            queue = [start]
            while queue:
                i = queue.pop()
                for kind, value, verified in work.records[i]:
                    if kind != K.PHONE or verified:
                        for j in holders[(kind, value)]:
                            if group_of[j] < 0:
                                group_of[j] = groups
                                queue.append(j)
            groups += 1
    # Linking keys belong to their group; a phone to the group that has it verified, else its first record's group.
    identities: dict[tuple[str, str], tuple[int, bool]] = {}
    first_unverified: dict[str, int] = {}
    carriers: dict[str, set[int]] = defaultdict(set)
    for i, record in enumerate(work.records):
        for kind, value, verified in record:
            if kind == K.PHONE and not verified:
                first_unverified.setdefault(value, group_of[i])
                carriers[value].add(group_of[i])
            else:
                identities[(kind, value)] = (group_of[i], kind == K.PHONE)
    pairs: set[tuple[int, int]] = set()
    for value, first in first_unverified.items():
        holder = identities[(K.PHONE, value)][0] if (K.PHONE, value) in identities else first
        identities.setdefault((K.PHONE, value), (holder, False))
        others = carriers[value] - {holder}
        if len(others) <= MAX_MATCHES:
            pairs.update((holder, g) for g in others)
    return Truth(group_of=group_of, groups=groups, identities=identities, pairs=pairs)


def check(work: Workload, expected: Truth, result: ResolveResult, tenant_id: int) -> list[str]:
    """Every way the result differs from the truth (empty: correct)."""
    problems: list[str] = []
    customer_of_group: dict[int, int] = {}
    group_of_customer: dict[int, int] = {}
    for i, customer_id in enumerate(result.customer_ids):
        group = expected.group_of[i]
        if customer_of_group.setdefault(group, customer_id) != customer_id:
            problems.append(f"person {work.person_of[i]}: records of one customer split over several customers")
        if group_of_customer.setdefault(customer_id, group) != group:
            problems.append(f"customer {customer_id}: records of different customers (or people) merged")
        if len(problems) > 20:
            return problems
    customers = Customer.objects.filter(tenant_id=tenant_id).count()
    if (result.clusters, result.customers_created, customers) != (expected.groups,) * 3:
        problems.append(
            f"customers: {result.clusters} clusters, {result.customers_created} created, {customers} stored; "
            f"expected {expected.groups}"
        )
    events = Event.objects.filter(tenant_id=tenant_id, type="customer.created").count()
    if events != expected.groups:
        problems.append(f"customer.created events: {events}, expected {expected.groups}")
    stored = Identity.objects.filter(tenant_id=tenant_id).values_list("kind", "value", "customer_id", "verified")
    seen = 0
    for kind, value, customer_id, verified in stored.iterator(chunk_size=20_000):
        seen += 1
        want = expected.identities.get((kind, value))
        if want is None:
            problems.append(f"identity {kind} {value}: not in any record")
        elif (group_of_customer.get(customer_id), verified) != want:
            problems.append(f"identity {kind} {value}: customer {customer_id} verified={verified}, expected {want}")
        if len(problems) > 20:
            return problems
    if seen != len(expected.identities):
        problems.append(f"identities: {seen} stored, expected {len(expected.identities)}")
    found = {
        tuple(sorted((group_of_customer.get(a, -1), group_of_customer.get(b, -1))))
        for a, b in MergeCandidate.objects.filter(tenant_id=tenant_id).values_list("customer_a_id", "customer_b_id")
    }
    wanted = {tuple(sorted(pair)) for pair in expected.pairs}
    if found != wanted:
        problems.append(
            f"review pairs: {len(found)} found, {len(wanted)} expected, {len(found ^ wanted)} differ "
            f"(e.g. {sorted(found ^ wanted)[:3]})"
        )
    return problems


# -- the run -------------------------------------------------------------------------------------------------------


@dataclass
class Report:
    database: str
    records: int
    occurrences: int  # identities over all records (an identity in two records counts twice)
    people: int
    result: ResolveResult
    elapsed: float
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def rate(self) -> float:
        return self.records / self.elapsed if self.elapsed else 0.0


def measure(*, records: int, seed: int = 7, label: str = "", progress: Any = print) -> Report:
    """Generate, resolve (timed) and check, in the current default database (which should be empty)."""
    tenant = core_services.tenant_create(name="Bench identity", slug="bench-identity")
    actor = Actor(user_id=None, tenant_id=tenant.id, role=Role.HQ_ADMIN)
    progress(f"generating {records:,} records")
    work = generate(records, seed=seed)
    progress(f"resolving {records:,} records over {work.people:,} people")
    started = time.perf_counter()
    result = identities_resolve(actor=actor, records=work.records, created_at=work.created_at, source="bench")
    elapsed = time.perf_counter() - started
    progress("checking against the ground truth")
    problems = check(work, truth(work), result, tenant.id)
    occurrences = sum(len(record) for record in work.records)
    return Report(
        database=label,
        records=records,
        occurrences=occurrences,
        people=work.people,
        result=result,
        elapsed=elapsed,
        problems=problems,
    )


def run(options: dict[str, Any], console: Console) -> None:
    records = SIZES[options["size"]]
    postgres = options["database"] == "postgres"
    keep = bool(options["keep"])
    url = options.get("database_url") or scratch_postgres_url("siyu_bench_identity")
    try:
        with (
            bench_keys(),
            scratch_folder("bench-identity-", keep=keep) as folder,
            scratch_database(folder, postgres=postgres, url=url, keep=keep) as database,
        ):
            console.print(f"bench database: {database.label} ({redacted(database.url)})")
            with using_database(database.url):
                call_command("migrate", verbosity=0, interactive=False)
                report = measure(records=records, label=database.label, progress=console.print)
            if keep:
                console.print(f"kept the bench database: {redacted(database.url)}")
    except StackError as exc:
        raise LookupError(str(exc)) from exc
    _print(console, report)
    if not report.ok:
        raise LookupError("the resolver's customers differ from the ground truth:\n" + "\n".join(report.problems))


def _print(console: Console, report: Report) -> None:
    r = report.result
    table = Table(title=f"identity resolution, {report.database}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in (
        ("records", f"{report.records:,}"),
        ("identities in the records", f"{report.occurrences:,}"),
        ("people (generator)", f"{report.people:,}"),
        ("clusters = customers created", f"{r.clusters:,}"),
        ("merges (records joined to another's cluster)", f"{r.links:,}"),
        ("identities stored", f"{r.identities_created:,}"),
        ("review pairs (shared unverified phones)", f"{r.candidates:,}"),
        ("elapsed", f"{report.elapsed:.1f} s"),
        ("records/s", f"{report.rate:,.0f}"),
        ("CPU of this process", f"{sum(r.cpu_seconds.values()):.1f} s"),
        *(
            (f"  {phase}", f"{seconds:.1f} s (CPU {r.cpu_seconds[phase]:.1f} s)")
            for phase, seconds in r.seconds.items()
        ),
        ("ground truth", "match" if report.ok else f"{len(report.problems)} problems"),
    ):
        table.add_row(name, value)
    console.print(table)
    verdict = "within" if report.elapsed <= TARGET_SECONDS else "OVER"
    console.print(
        f"identity: {report.records} records, {r.clusters} clusters, {r.links} merges, {report.elapsed:.1f} s "
        f"({report.rate:,.0f} records/s, {verdict} the {TARGET_SECONDS:.0f} s target), {report.database}, "
        f"{'correct' if report.ok else 'WRONG'}",
        markup=False,
        highlight=False,
    )
