"""Deterministic generation of the demo brand: pure functions from (seed, size, anchor) to plain data.

Nothing here touches the database. Every loader phase regenerates the plan it needs from the same inputs,
so a phase that crashed half-way is simply generated and written again, identically. Each plan draws from its
own `random.Random(f"{seed}:<plan>")` and its own seeded Faker, so the customers plan does not depend on
whether the org plan was generated in the same process.

Personal data (names, phones, addresses) is plain text here and is encrypted only when written.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import TypeVar
from zoneinfo import ZoneInfo

from faker import Faker
from faker.providers.person.zh_CN import Provider as ZhPersonProvider

from siyu.core.models import Guide
from siyu.customers.models import FollowRelation, Gender, Identity, LifecycleStage
from siyu.demo import reference as ref
from siyu.tags.models import TagSource

T = TypeVar("T")
TZ = ZoneInfo("Asia/Shanghai")
DAYS = 365
SECONDS_PER_DAY = 86_400


def local_midnight(moment: dt.datetime) -> dt.datetime:
    """The demo's time anchor: local midnight of `moment`'s day (so one day's loads are identical)."""
    local = moment.astimezone(TZ)
    return dt.datetime(local.year, local.month, local.day, tzinfo=TZ)


def _rng(seed: int, plan: str) -> random.Random:
    return random.Random(f"{seed}:{plan}")


def _faker(seed: int, plan: str) -> Faker:
    fake = Faker("zh_CN")
    fake.seed_instance(f"{seed}:{plan}")
    return fake


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


class _Names:
    """Chinese names from Faker's zh_CN data (weighted surnames, given names by gender), drawn with `rng`.

    Faker's own `name_female()` draws exactly this way but costs ~40 µs a call through its provider machinery;
    sampling its tables directly is 20 times faster, which matters for 50,000 customers.
    """

    def __init__(self) -> None:
        self.surnames = list(ZhPersonProvider.last_names)
        self.surname_cum = _cumulative(list(ZhPersonProvider.last_names.values()))
        self.female = list(ZhPersonProvider.first_names_female)
        self.male = list(ZhPersonProvider.first_names_male)

    def draw(self, rng: random.Random, gender: int) -> str:
        given = self.male if gender == Gender.MALE or (gender == Gender.UNKNOWN and rng.random() < 0.5) else self.female
        return _pick(rng, self.surnames, self.surname_cum) + rng.choice(given)


# --- calendar -------------------------------------------------------------------------------------------


def _campaign_lift(day: dt.date) -> float:
    lift = 1.0
    for m1, d1, m2, d2, value in ref.CAMPAIGNS:
        if (m1, d1) <= (day.month, day.day) <= (m2, d2):
            lift = max(lift, value)
    if day.weekday() >= 5:
        lift *= 1.15
    return lift


class Calendar:
    """The 365 days before the anchor, with weights that make adds grow and orders peak on campaign days.

    Days are local (Asia/Shanghai) days, but every datetime handed out is in UTC: the writer can then store
    it without a time-zone conversion per row.
    """

    def __init__(self, anchor: dt.datetime) -> None:
        self.anchor = anchor.astimezone(dt.UTC)
        local_anchor = anchor.astimezone(TZ)
        local_days = [local_anchor - dt.timedelta(days=DAYS - k) for k in range(DAYS)]  # Shanghai has no DST
        self.day_starts = [d.astimezone(dt.UTC) for d in local_days]
        self.day_labels = [f"{d:%Y%m%d}" for d in local_days]  # strftime per order would be slow
        lifts = [_campaign_lift(d.date()) for d in local_days]
        # The brand grows: a day at the end of the year brings about twice the adds of a day at its start.
        self.acquisition_cum = _cumulative([(0.6 + 0.8 * k / DAYS) * lift for k, lift in enumerate(lifts)])
        self.order_cum = _cumulative([(0.8 + 0.4 * k / DAYS) * lift**1.5 for k, lift in enumerate(lifts)])
        self.hour_cum = _cumulative(ref.HOUR_WEIGHTS)

    def day_of(self, moment: dt.datetime) -> int:
        return max(0, min(DAYS - 1, (moment - self.day_starts[0]).days))

    def day_between(self, rng: random.Random, cum: list[float], lo: int, hi: int = DAYS - 1) -> int:
        """A day in [lo, hi], drawn with the weights behind `cum` (rng.random() < 1 keeps it ≤ hi)."""
        low = cum[lo - 1] if lo > 0 else 0.0
        return bisect.bisect_right(cum, low + rng.random() * (cum[hi] - low))

    def moment(self, rng: random.Random, day: int) -> dt.datetime:
        hour = bisect.bisect_right(self.hour_cum, rng.random() * self.hour_cum[-1])
        return self.day_starts[day] + dt.timedelta(seconds=hour * 3600 + int(rng.random() * 3600))

    def moment_after(self, rng: random.Random, cum: list[float], start: dt.datetime) -> dt.datetime:
        """A weighted moment after `start` and before the anchor."""
        when = self.moment(rng, self.day_between(rng, cum, self.day_of(start)))
        if when <= start:
            when = start + dt.timedelta(seconds=60 + int(rng.random() * 7200))
        return when if when < self.anchor else self.anchor - dt.timedelta(seconds=1)

    def uniform_between(self, rng: random.Random, start: dt.datetime, end: dt.datetime) -> dt.datetime:
        return start + dt.timedelta(seconds=int(rng.random() * (end - start).total_seconds()))


# --- org ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreSpec:
    code: str
    name: str
    region_code: str
    franchisee_code: str | None
    city: str
    address: str
    latitude: Decimal
    longitude: Decimal
    opens_at: dt.time
    closes_at: dt.time
    weight: float


@dataclass(frozen=True)
class GuideSpec:
    index: int
    name: str
    wecom_userid: str
    store_code: str | None
    kind: str
    status: str
    joined_at: dt.datetime
    departed_at: dt.datetime | None


@dataclass(frozen=True)
class OrgPlan:
    stores: tuple[StoreSpec, ...]
    guides: tuple[GuideSpec, ...]  # the brand IP account is the last one

    @property
    def brand_ip(self) -> GuideSpec:
        return self.guides[-1]

    @cached_property
    def guides_by_store(self) -> dict[str, list[GuideSpec]]:
        result: dict[str, list[GuideSpec]] = {s.code: [] for s in self.stores}
        for guide in self.guides:
            if guide.store_code:
                result[guide.store_code].append(guide)
        return result

    @cached_property
    def store_by_code(self) -> dict[str, StoreSpec]:
        return {s.code: s for s in self.stores}


def _coordinate(rng: random.Random, centre: float) -> Decimal:
    # Malls sit within about 6 km of the city centre.
    return Decimal(f"{centre + rng.uniform(-0.055, 0.055):.6f}")


def org_plan(*, seed: int, anchor: dt.datetime) -> OrgPlan:
    """Stores with real city coordinates and opening hours, their guides, and the brand IP account."""
    rng = _rng(seed, "org")
    fake = _faker(seed, "org")
    stores = []
    for s in ref.STORES:
        city = ref.CITIES[s.city]
        opens_at, closes_at = rng.choice(ref.OPENING_HOURS)
        floor = rng.choice(("B1", "L1", "L1", "L2", "L2", "L3"))
        stores.append(
            StoreSpec(
                code=s.code,
                name=f"{ref.BRAND_NAME}·{s.city}{s.mall}店",
                region_code=s.region,
                franchisee_code=s.franchisee,
                city=s.city,
                address=f"{s.city}市{s.district}{s.mall}{floor}层{floor[-1]}{rng.randrange(10, 60):02d}号铺",
                latitude=_coordinate(rng, city.latitude),
                longitude=_coordinate(rng, city.longitude),
                opens_at=opens_at,
                closes_at=closes_at,
                weight=s.weight,
            )
        )
    guides: list[GuideSpec] = []
    for store in stores:
        for n in range(1, rng.randint(*ref.GUIDES_PER_STORE) + 1):
            # Joined before the demo's year starts, so no customer is added by a guide who was not there yet.
            tenure = dt.timedelta(days=rng.randrange(DAYS + 10, 1500), seconds=rng.randrange(SECONDS_PER_DAY))
            joined_at = anchor - tenure
            # The first guide of every store stays: it is the one the demo `guide` login is linked to.
            departed = n > 1 and rng.random() < 0.06
            guides.append(
                GuideSpec(
                    index=len(guides),
                    name=fake.name_female() if rng.random() < 0.85 else fake.name_male(),
                    wecom_userid=f"{store.code.lower()}-{n:02d}",
                    store_code=store.code,
                    kind=Guide.Kind.GUIDE,
                    status=Guide.Status.DEPARTED if departed else Guide.Status.ACTIVE,
                    joined_at=joined_at,
                    departed_at=anchor - dt.timedelta(days=rng.randrange(5, 60)) if departed else None,
                )
            )
    guides.append(
        GuideSpec(
            index=len(guides),
            name=ref.BRAND_IP_NAME,
            wecom_userid=ref.BRAND_IP_USERID,
            store_code=None,
            kind=Guide.Kind.BRAND_IP,
            status=Guide.Status.ACTIVE,
            joined_at=anchor - dt.timedelta(days=800),
            departed_at=None,
        )
    )
    return OrgPlan(stores=tuple(stores), guides=tuple(guides))


# --- customers ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class FollowSpec:
    guide: int  # index into OrgPlan.guides
    added_at: dt.datetime
    add_way: int
    state: str
    remark: str
    status: str = FollowRelation.Status.ACTIVE
    deleted_at: dt.datetime | None = None


@dataclass(slots=True)
class OrderSpec:
    number: int  # global order index: makes order numbers unique per shop
    customer: int
    shop: str
    order_no: str
    status: str
    amount_cents: int
    item_count: int
    series: str
    paid_at: dt.datetime
    refunded_at: dt.datetime | None
    guide: int | None
    store_code: str | None


@dataclass(slots=True)
class TagSpec:
    group: str
    name: str
    source: str
    rule: str
    guide: int | None
    at: dt.datetime


@dataclass(slots=True)
class CustomerSpec:
    index: int
    name: str
    phone: str
    address: str
    gender: int
    city: str
    source: str
    created_at: dt.datetime
    external_userid: str = ""
    lifecycle_stage: str = LifecycleStage.NEW
    intent_level: int = 0
    propensity: float = 0.0
    follows: list[FollowSpec] = field(default_factory=list)
    orders: list[OrderSpec] = field(default_factory=list)
    identities: list[tuple[str, str, dt.datetime]] = field(default_factory=list)  # phone: see services
    tags: list[TagSpec] = field(default_factory=list)
    is_member: bool = False

    @property
    def owner(self) -> int | None:
        """The owner guide is the guide who added the customer first (orders are attributed to it)."""
        return self.follows[0].guide if self.follows else None


@dataclass(frozen=True)
class CustomerPlan:
    org: OrgPlan
    calendar: Calendar
    customers: list[CustomerSpec]
    orders: list[OrderSpec]

    @property
    def follow_count(self) -> int:
        return sum(len(c.follows) for c in self.customers)

    @property
    def identity_count(self) -> int:
        return sum(len(c.identities) + (1 if c.phone else 0) for c in self.customers)

    @property
    def tag_count(self) -> int:
        return sum(len(c.tags) for c in self.customers)


_PHONE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155", "156",
    "157", "158", "159", "166", "176", "177", "178", "180", "181", "182", "183", "186", "187", "188",
    "189", "191", "198", "199",
)  # fmt: skip


class _Unique:
    """Draws identifiers and re-draws on the (rare) collision, so unique constraints can never fail."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def take(self, rng: random.Random, make: Callable[[random.Random], str]) -> str:
        while True:
            value = make(rng)
            if value not in self.seen:
                self.seen.add(value)
                return value


def _token(rng: random.Random, length: int) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(length)).decode()[:length]


def _pick(rng: random.Random, items: Sequence[T], cum: list[float]) -> T:
    """One of `items`, drawn with the weights behind the cumulative `cum` (faster than rng.choices)."""
    return items[min(len(items) - 1, bisect.bisect_right(cum, rng.uniform(0, cum[-1])))]


def customer_plan(*, org: OrgPlan, seed: int, customers: int, anchor: dt.datetime) -> CustomerPlan:
    """Every customer with follows, identities, orders and tags, consistent with each other in time.

    Three passes: (1) who each customer is and how they arrived, (2) a fixed number of orders spread over
    the buyers by propensity, (3) what follows from the orders: lifecycle stage, tiers, RFM, tags.
    """
    rng = _rng(seed, "customers")
    fake = _faker(seed, "customers")
    cal = Calendar(anchor)
    streets = [fake.street_name() for _ in range(400)]
    names = _Names()
    channel_cum = _cumulative([c.weight for c in ref.CHANNELS])
    store_cum = _cumulative([s.weight for s in org.stores])
    city_names = list(ref.CITIES)
    city_cum = _cumulative([c.weight for c in ref.CITIES.values()])
    guide_cum = {code: _cumulative([_guide_weight(g) for g in guides]) for code, guides in org.guides_by_store.items()}
    phones, ext_ids, unionids = _Unique(), _Unique(), _Unique()
    brand_ip = org.brand_ip.index

    result: list[CustomerSpec] = []
    for i in range(customers):
        channel = _pick(rng, ref.CHANNELS, channel_cum)
        created_day = cal.day_between(rng, cal.acquisition_cum, 0)
        created_at = cal.moment(rng, created_day)
        roll = rng.random()
        gender = Gender.FEMALE if roll < 0.8 else (Gender.MALE if roll < 0.96 else Gender.UNKNOWN)
        name = names.draw(rng, gender)
        store: StoreSpec | None = None
        guide: int | None = None
        if channel.add_way is not None:
            if not channel.online or rng.random() < 0.62:
                store = _pick(rng, org.stores, store_cum)
                in_store = org.guides_by_store[store.code]
                picked = _pick(rng, in_store, guide_cum[store.code]).index
                # A lead through a channel's live code reaches one of the code's guides: the store's lead guide
                # (the draw is made all the same, so the rest of the plan does not depend on the codes).
                guide = in_store[0].index if channel.leads else picked
            else:
                guide = brand_ip
        city = store.city if store and rng.random() < 0.85 else _pick(rng, city_names, city_cum)
        has_phone = channel.add_way is None or rng.random() < 0.93
        phone = phones.take(rng, _phone) if has_phone else ""
        spec = CustomerSpec(
            index=i, name=name, phone=phone, address="", gender=gender, city=city,
            source=channel.source, created_at=created_at,
        )  # fmt: skip
        if guide is not None:
            shop = "tmall" if rng.random() < 0.7 else "jd"
            day = cal.day_labels[created_day]
            state = channel.state and channel.state.format(
                store=store.code if store else "", yymm=day[2:6], mmdd=day[4:], shop=shop
            )
            spec.external_userid = ext_ids.take(rng, lambda r: "wm" + _token(r, 30))
            spec.follows.append(
                FollowSpec(guide=guide, added_at=created_at, add_way=int(channel.add_way or 0), state=state,
                           remark=_remark(rng, name, gender))
            )  # fmt: skip
            if channel.tag:
                tag = channel.tag.format(shop_tag="天猫" if shop == "tmall" else "京东")
                spec.tags.append(TagSpec("渠道", tag, TagSource.CHANNEL, state or channel.source, None, created_at))
        elif channel.tag:
            spec.tags.append(TagSpec("渠道", channel.tag, TagSource.CHANNEL, channel.source, None, created_at))
        # About 60% of the customers ever buy; shop imports are buyers by definition.
        if channel.add_way is None or rng.random() < 0.6:
            tenure = (anchor - created_at).total_seconds() / (DAYS * SECONDS_PER_DAY)
            spec.propensity = rng.paretovariate(2.2) * (0.2 + 0.8 * tenure)
        if rng.random() < 0.85:
            spec.identities.append(
                (Identity.Kind.UNIONID, unionids.take(rng, lambda r: "o" + _token(r, 27)), created_at)
            )
        result.append(spec)

    orders = _orders_plan(rng, cal, org, result, round(customers * ref.ORDERS_PER_CUSTOMER))
    members = itertools.count(10_000_001)
    shop_ids = {kind: _Unique() for kind in ("tmall", "jd", "youzan", "xiaoe")}
    for spec in result:
        _follow_up(rng, cal, org, spec, streets)
        _identities(rng, spec, members, shop_ids)
        _tags(rng, cal, spec)
    return CustomerPlan(org=org, calendar=cal, customers=result, orders=orders)


def _guide_weight(guide: GuideSpec) -> float:
    # Store leads (the -01 guides) add the most customers; departed guides added a few before leaving.
    if guide.status == Guide.Status.DEPARTED:
        return 0.4
    return 2.0 if guide.wecom_userid.endswith("-01") else 1.0


def _phone(rng: random.Random) -> str:
    return _PHONE_PREFIXES[int(rng.random() * len(_PHONE_PREFIXES))] + f"{int(rng.random() * 10**8):08d}"


def _remark(rng: random.Random, name: str, gender: int) -> str:
    if rng.random() >= 0.6:
        return ""
    title = "先生" if gender == Gender.MALE else "女士"
    return f"{name[0]}{title}{rng.choice(ref.REMARK_SUFFIXES)}"[:40]


_SHOP_IMPORT = {"tmall_import": "tmall", "jd_import": "jd"}
_ORDER_NO: dict[str, Callable[[int, str, random.Random], str]] = {
    # (global order number, paid day as YYYYMMDD, rng) → an order number shaped like the shop's own
    "tmall": lambda n, day, r: f"{day[2:]}{n:08d}{int(r.random() * 1000):03d}",
    "jd": lambda n, day, r: f"{300_000_000_000 + n * 97 + int(r.random() * 97)}",
    "youzan": lambda n, day, r: f"E{day}{n:08d}",
    "xiaoe": lambda n, day, r: f"o_{day[2:]}{n:08d}",
    "store": lambda n, day, r: f"POS{day[2:]}{n:08d}",
    "mall": lambda n, day, r: f"M{day}{n:08d}",
}


def _orders_plan(
    rng: random.Random, cal: Calendar, org: OrgPlan, customers: list[CustomerSpec], total: int
) -> list[OrderSpec]:
    buyers = [c for c in customers if c.propensity > 0]
    if not buyers:
        return []
    owners = rng.choices(buyers, weights=[c.propensity for c in buyers], k=total)
    shops = [s for s, _, _ in ref.SHOPS]
    guide_shop_cum = _cumulative([w for _, w, _ in ref.SHOPS])
    ip_shop_cum = _cumulative([w for _, _, w in ref.SHOPS])
    product_cum = _cumulative([p.weight for p in ref.PRODUCTS])
    brand_ip = org.brand_ip.index
    orders = []
    for number, customer in enumerate(owners):
        owner = customer.owner
        if owner is None:
            shop = _SHOP_IMPORT[customer.source]
        else:
            shop = _pick(rng, shops, ip_shop_cum if owner == brand_ip else guide_shop_cum)
        product = ref.COURSE if shop == "xiaoe" else _pick(rng, ref.PRODUCTS, product_cum)
        qty = 1 if rng.random() < 0.7 else rng.randint(2, 3)
        gross = product.price_yuan * 100 * qty
        amount = max(990, round(gross * rng.choice(ref.DISCOUNTS)) - rng.choice(ref.COUPONS_CENTS))
        paid_at = cal.moment_after(rng, cal.order_cum, customer.created_at)
        age_days = (cal.anchor - paid_at).days
        roll = rng.random()
        refunded_at = None
        if roll < 0.07:
            status = "refunded"
            refunded_at = min(paid_at + dt.timedelta(hours=rng.randrange(2, 168)), cal.anchor - dt.timedelta(seconds=1))
        elif roll < 0.10:
            status = "closed"
        else:
            status = "paid" if age_days < 10 else "completed"
        guide = owner
        store_code = org.guides[owner].store_code if owner is not None else None
        order_no = _ORDER_NO[shop](number, cal.day_labels[cal.day_of(paid_at)], rng)
        order = OrderSpec(
            number=number, customer=customer.index, shop=shop, order_no=order_no,
            status=status, amount_cents=amount, item_count=qty, series=product.series, paid_at=paid_at,
            refunded_at=refunded_at, guide=guide, store_code=store_code,
        )  # fmt: skip
        customer.orders.append(order)
        orders.append(order)
    return orders


def _follow_up(rng: random.Random, cal: Calendar, org: OrgPlan, spec: CustomerSpec, streets: list[str]) -> None:
    """Second guides, deleted friendships, address, lifecycle stage and intent: all after the fact."""
    spec.orders.sort(key=lambda o: o.paid_at)
    if spec.follows:
        first = spec.follows[0]
        first_guide = org.guides[first.guide]
        if rng.random() < 0.12:
            colleagues = org.guides_by_store.get(first_guide.store_code or "", [])
            others = [g.index for g in colleagues if g.index != first.guide and g.status == Guide.Status.ACTIVE]
            second = rng.choice(others) if others and rng.random() < 0.6 else org.brand_ip.index
            if second != first.guide:
                added_at = cal.moment_after(rng, cal.acquisition_cum, first.added_at)
                spec.follows.append(
                    FollowSpec(guide=second, added_at=added_at, add_way=FollowRelation.AddWay.MEMBER_SHARE,
                               state="", remark=_remark(rng, spec.name, spec.gender))
                )  # fmt: skip
        for follow in spec.follows:
            roll = rng.random()
            if roll < 0.11:
                follow.status = (
                    FollowRelation.Status.DELETED_BY_CUSTOMER if roll < 0.09 else FollowRelation.Status.DELETED_BY_GUIDE
                )
                follow.deleted_at = cal.moment_after(rng, cal.acquisition_cum, follow.added_at)
    online_buyer = any(o.shop not in ("store", "xiaoe") for o in spec.orders)
    if online_buyer or rng.random() < 0.15:
        city = ref.CITIES[spec.city]
        spec.address = (
            f"{spec.city}市{rng.choice(city.districts)}{rng.choice(streets)}{rng.randrange(1, 999)}号"
            f"{rng.randrange(1, 30)}栋{rng.randrange(1, 33)}{rng.randrange(1, 5):02d}室"
        )
    spent = [o for o in spec.orders if o.status != "closed"]
    if spec.follows and all(f.status != FollowRelation.Status.ACTIVE for f in spec.follows):
        spec.lifecycle_stage, spec.intent_level = LifecycleStage.LOST, 0
    elif spent:
        recent = (cal.anchor - spent[-1].paid_at).days <= 180
        if not recent:
            spec.lifecycle_stage, spec.intent_level = LifecycleStage.DORMANT, rng.randint(0, 1)
        elif len(spent) >= 2:
            spec.lifecycle_stage, spec.intent_level = LifecycleStage.REPEAT, rng.randint(3, 5)
        else:
            spec.lifecycle_stage, spec.intent_level = LifecycleStage.FIRST_PURCHASE, rng.randint(2, 4)
    elif (cal.anchor - spec.created_at).days <= 30:
        spec.lifecycle_stage, spec.intent_level = LifecycleStage.NEW, rng.randint(0, 2)
    elif spec.follows and rng.random() < 0.6:
        spec.lifecycle_stage, spec.intent_level = LifecycleStage.ENGAGED, rng.randint(1, 3)
    else:
        spec.lifecycle_stage, spec.intent_level = LifecycleStage.DORMANT, rng.randint(0, 1)
    spec.is_member = any(o.shop in ("store", "mall", "youzan") for o in spec.orders) or (
        bool(spec.follows) and rng.random() < 0.15
    )


_SHOP_IDENTITY = {
    "tmall": (Identity.Kind.TMALL_BUYER, lambda r: "AAH" + _token(r, 21)),
    "jd": (Identity.Kind.JD_BUYER, lambda r: "jd_" + r.randbytes(6).hex()),
    "youzan": (Identity.Kind.YOUZAN_BUYER, lambda r: str(r.randrange(10**9, 10**10))),
    "xiaoe": (Identity.Kind.XIAOE_USER, lambda r: "u_" + r.randbytes(7).hex()[:13]),
}


def _identities(rng: random.Random, spec: CustomerSpec, members: Iterator[int], shop_ids: dict[str, _Unique]) -> None:
    """WeCom external id, member number and one buyer id per shop the customer bought in (phone: services)."""
    if spec.external_userid:
        spec.identities.append((Identity.Kind.WECOM_EXTERNAL_USERID, spec.external_userid, spec.follows[0].added_at))
    if spec.is_member:
        first_member_order = next((o for o in spec.orders if o.shop in ("store", "mall", "youzan")), None)
        since = first_member_order.paid_at if first_member_order else spec.created_at
        spec.identities.append((Identity.Kind.MEMBER_NO, f"CG{next(members)}", since))
    seen: set[str] = set()
    for order in spec.orders:
        if order.shop in _SHOP_IDENTITY and order.shop not in seen:
            seen.add(order.shop)
            kind, make = _SHOP_IDENTITY[order.shop]
            spec.identities.append((kind, shop_ids[order.shop].take(rng, make), order.paid_at))


_CATEGORY = {p.series: p.category_tag for p in ref.PRODUCTS}


def _tags(rng: random.Random, cal: Calendar, spec: CustomerSpec) -> None:
    """Tags whose source matches how a real brand would have applied them (guide, keyword, order, job)."""
    owner = spec.owner
    if spec.follows:
        if rng.random() < 0.3:
            for name in rng.sample(("护肤", "彩妆", "香氛", "身体护理", "抗老", "成分党"), rng.randint(1, 2)):
                at = cal.moment_after(rng, cal.acquisition_cum, spec.created_at)
                spec.tags.append(TagSpec("兴趣", name, TagSource.MANUAL, "", owner, at))
        if rng.random() < 0.3:
            skin = rng.choice(("干皮", "油皮", "混合皮", "敏感肌", "敏感肌", "中性皮"))
            at = cal.moment_after(rng, cal.acquisition_cum, spec.created_at)
            if rng.random() < 0.3:
                spec.tags.append(TagSpec("肤质", skin, TagSource.KEYWORD, f"keyword:{skin[:2]}", None, at))
            else:
                spec.tags.append(TagSpec("肤质", skin, TagSource.MANUAL, "", owner, at))
        if rng.random() < 0.12:
            at = cal.moment_after(rng, cal.acquisition_cum, spec.created_at)
            spec.tags.append(TagSpec("意向", "咨询价格", TagSource.KEYWORD, "keyword:多少钱", None, at))
        if rng.random() < 0.08:
            at = cal.moment_after(rng, cal.acquisition_cum, spec.created_at)
            spec.tags.append(TagSpec("意向", "询问成分", TagSource.KEYWORD, "keyword:成分", None, at))
        if spec.intent_level >= 4:
            at = cal.moment_after(rng, cal.acquisition_cum, spec.created_at)
            spec.tags.append(TagSpec("意向", "高意向", TagSource.BEHAVIOUR, "behaviour:intent", None, at))
        if not spec.orders and rng.random() < 0.2:
            at = cal.moment_after(rng, cal.acquisition_cum, spec.created_at)
            spec.tags.append(TagSpec("意向", "浏览未购", TagSource.BEHAVIOUR, "behaviour:material", None, at))
    spent = [o for o in spec.orders if o.status != "closed"]
    total = sum(o.amount_cents for o in spent if o.status != "refunded")
    if spec.is_member:
        tier = next(name for floor, name in ref.TIERS if total >= floor)
        at = spent[0].paid_at if spent else spec.created_at
        spec.tags.append(TagSpec("会员等级", tier, TagSource.TIER, "tier:v1", None, at))
    # The purchase job tags the category a customer bought most often (two for customers with three orders
    # or more), dated when first bought.
    first_bought: dict[str, dt.datetime] = {}
    bought: dict[str, int] = {}
    for order in spent:
        category = _CATEGORY.get(order.series, "")
        if category:
            first_bought.setdefault(category, order.paid_at)
            bought[category] = bought.get(category, 0) + 1
    top = sorted(bought, key=lambda name: (-bought[name], first_bought[name]))[: 1 + (len(spent) >= 3)]
    spec.tags.extend(
        TagSpec("购买品类", name, TagSource.PURCHASE, "order:" + name, None, first_bought[name]) for name in top
    )
    if spent:
        # The nightly RFM job ran at 02:00 on the anchor's day.
        key = ((cal.anchor - spent[-1].paid_at).days <= 90, len(spent) >= 2, total >= 100_000)
        rfm_at = max(cal.anchor - dt.timedelta(hours=22), spec.created_at)
        spec.tags.append(TagSpec("RFM分层", ref.RFM_SEGMENTS[key], TagSource.RFM, "rfm:v1", None, rfm_at))


# --- activity -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActivitySpec:
    customer: int
    type: str
    guide: int | None
    occurred_at: dt.datetime
    properties: dict[str, object]


def activity_plan(*, plan: CustomerPlan, seed: int) -> list[ActivitySpec]:
    """Messages, opened materials, joined groups, check-ins and profile edits while a friendship is active."""
    rng = _rng(seed, "activity")
    cal = plan.calendar
    end = cal.anchor - dt.timedelta(seconds=1)
    result: list[ActivitySpec] = []
    append = result.append
    for spec in plan.customers:
        for n, follow in enumerate(spec.follows):
            until = follow.deleted_at or end
            messages = int(rng.random() * (1 + spec.intent_level)) // (n + 1)
            if n == 0 and spec.lifecycle_stage == LifecycleStage.ENGAGED:
                messages = max(messages, 1)
            for _ in range(messages):
                at = cal.uniform_between(rng, follow.added_at, until)
                # guide_id goes into the properties when written: it is a database id, unknown here.
                append(ActivitySpec(spec.index, "message.received", follow.guide, at, {}))
            if n == 0:
                for _ in range((rng.random() < 0.3) + (spec.intent_level >= 3)):
                    at = cal.uniform_between(rng, follow.added_at, until)
                    material = rng.choice(ref.MATERIALS)
                    append(ActivitySpec(spec.index, "material.opened", follow.guide, at, {"material": material}))
                if rng.random() < 0.22:
                    at = cal.uniform_between(rng, follow.added_at, until)
                    group = ref.GROUP_NAME.format(city=spec.city, number=rng.randint(1, 5))
                    append(ActivitySpec(spec.index, "group.joined", None, at, {"group": group}))
        if spec.is_member and rng.random() < 0.25:
            for _ in range(rng.randint(1, 3)):
                at = cal.uniform_between(rng, spec.created_at, end)
                append(ActivitySpec(spec.index, "checkin.done", None, at, {"points": 5}))
        if spec.follows and rng.random() < 0.08:
            at = cal.uniform_between(rng, spec.created_at, end)
            fields = rng.choice((["city"], ["intent_level"], ["gender", "city"]))
            append(ActivitySpec(spec.index, "customer.updated", spec.owner, at, {"fields": fields}))
    return result


# --- customer groups ------------------------------------------------------------------------------------


# WeCom's ceiling for a customer group (客户群): joins beyond it are refused.
GROUP_MEMBER_MAX = 500


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """A customer group (客户群) of the demo: the city member groups customers join in the timeline activity."""

    index: int
    name: str
    owner: int  # guide index: an active guide of a store in the group's city (the brand IP where there is none)
    created_at: dt.datetime
    members: tuple[tuple[int, dt.datetime], ...]  # (customer index, join time), earliest first


def group_plan(*, org: OrgPlan, plan: CustomerPlan, activity: Sequence[ActivitySpec], seed: int) -> list[GroupSpec]:
    """The groups named by the activity's `group.joined` entries, each with an owner and the customers who joined.

    A customer who joined a group twice counts once; a full group takes nobody more (WeCom refuses them too).
    """
    rng = _rng(seed, "groups")
    joins: dict[str, dict[int, dt.datetime]] = {}
    for a in activity:
        if a.type == "group.joined":
            members = joins.setdefault(str(a.properties["group"]), {})
            if a.customer not in members or a.occurred_at < members[a.customer]:
                members[a.customer] = a.occurred_at
    city_of = {s.code: s.city for s in org.stores}
    owners_by_city: dict[str, list[GuideSpec]] = {}
    for guide in org.guides:
        if guide.store_code and guide.status == Guide.Status.ACTIVE and guide.kind == Guide.Kind.GUIDE:
            owners_by_city.setdefault(city_of[guide.store_code], []).append(guide)
    groups: list[GroupSpec] = []
    for name in sorted(joins):
        # Every member of a city's group lives in that city (see activity_plan).
        city = plan.customers[next(iter(joins[name]))].city
        owner = rng.choice(owners_by_city[city]) if city in owners_by_city else org.brand_ip
        members = sorted(joins[name].items(), key=lambda item: (item[1], item[0]))[: GROUP_MEMBER_MAX - 1]
        first_join = members[0][1]
        created_at = max(owner.joined_at, first_join - dt.timedelta(days=rng.randrange(1, 20), hours=rng.randrange(24)))
        groups.append(GroupSpec(len(groups), name, owner.index, created_at, tuple(members)))
    return groups


# --- the fission campaign -------------------------------------------------------------------------------------

# Of the campaign's joiners: who scans the campaign's own poster rather than a participant's, and who shares.
FISSION_ENTRY_SHARE = 0.3
FISSION_SHARER_SHARE = 0.45


@dataclass(frozen=True, slots=True)
class FissionJoin:
    """One customer joining the fission campaign by adding its host (the brand IP) through a campaign code."""

    customer: int  # plan index; the add is the customer's first follow
    at: dt.datetime
    inviter: int | None  # the join (index in FissionPlan.joins) whose poster they scanned; None: the campaign's
    shared_at: dt.datetime | None  # when they opened their page and got their own poster; None: never did
    # Devices (numbers) that opened the inviter's landing before this add; a sharer's own phone is its join index.
    visits: tuple[int, ...]


@dataclass(frozen=True)
class FissionPlan:
    starts_at: dt.datetime
    ends_at: dt.datetime
    joins: tuple[FissionJoin, ...]


def fission_plan(*, plan: CustomerPlan, seed: int) -> FissionPlan:
    """The running fission campaign's participants, drawn from the timeline: the referral adds of the brand IP
    since the campaign began came through it, in time order.

    Each joins through the campaign's poster or through the poster of an earlier participant who shares (posters
    reach very different numbers of friends: a few participants bring most of them). A landing device
    opens the inviter's page before each invite. Two inviters cheat, so the anti-fraud review has something to show:
    one opens their own landing with their own phone (inviter_device), one with few devices, several times each
    (device_reuse, few_devices).
    """
    rng = _rng(seed, "fission")
    cal = plan.calendar
    first_day = (cal.anchor.astimezone(TZ) - dt.timedelta(days=ref.FISSION_STARTED_DAYS)).date()
    starts_at = dt.datetime.combine(first_day, ref.FISSION_STARTS_AT, tzinfo=TZ).astimezone(dt.UTC)
    ends_at = starts_at + dt.timedelta(days=ref.FISSION_DAYS)
    brand_ip = plan.org.brand_ip.index
    adds = sorted(
        (c.follows[0].added_at, c.index)
        for c in plan.customers
        if c.source == "referral" and c.follows and c.follows[0].guide == brand_ip
        and starts_at <= c.follows[0].added_at < cal.anchor
    )  # fmt: skip
    joins: list[FissionJoin] = []
    invites: dict[int, int] = {}
    # Sharers: when they shared, and how many friends their poster reaches (most a few, some many).
    reach: dict[int, tuple[dt.datetime, float]] = {}
    for at, customer in adds:
        sharers = [j for j, (since, _) in reach.items() if since < at]
        inviter = None
        if sharers and rng.random() >= FISSION_ENTRY_SHARE:
            inviter = rng.choices(sharers, weights=[reach[j][1] for j in sharers])[0]
            invites[inviter] = invites.get(inviter, 0) + 1
        shared_at = None
        if rng.random() < FISSION_SHARER_SHARE:
            shared_at = at + dt.timedelta(minutes=rng.randrange(5, 240))
            if shared_at < cal.anchor:  # else they share once the demo's time is over
                reach[len(joins)] = (shared_at, rng.paretovariate(1.3))
            else:
                shared_at = None
        joins.append(FissionJoin(customer, at, inviter, shared_at, ()))
    # Landing devices: a fresh phone per invite, numbered after the participants' own phones.
    device = itertools.count(len(joins))
    visits = {j: (next(device),) for j, join in enumerate(joins) if join.inviter is not None}
    ranked = sorted(invites, key=lambda j: (-invites[j], j))
    reuser = next((j for j in ranked[1:] if invites[j] >= 4), None)
    if reuser is not None:
        # One phone opens the landing before every friend "adds", often twice: the friends are one person.
        phone = next(device)
        for j, join in enumerate(joins):
            if join.inviter == reuser:
                visits[j] = (phone, phone) if rng.random() < 0.6 else (phone,)
    self_visitor = next((j for j in ranked[2:] if j != reuser and rng.random() < 0.5), None)
    if self_visitor is not None:
        first = next(j for j, join in enumerate(joins) if join.inviter == self_visitor)
        visits[first] = (self_visitor, *visits[first])
    return FissionPlan(
        starts_at=starts_at,
        ends_at=ends_at,
        joins=tuple(
            FissionJoin(join.customer, join.at, join.inviter, join.shared_at, visits.get(j, ()))
            for j, join in enumerate(joins)
        ),
    )
