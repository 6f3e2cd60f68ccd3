"""The behaviour simulator (issue 4 item 3): seeded customers doing what customers of a retail brand do in WeCom.

Each step is one thing a person does, carried out through the same `siyu.emulator.actions` the admin endpoints
use, so it changes the corp and fires the callbacks real WeCom would fire:

  add              a customer scans a 「联系我」 code (its `state` is the channel) and adds one of its members:
                   add_external_contact with State and WelcomeCode; new customers mostly, sometimes an existing one
                   adding a second guide (or re-adding one they had deleted)
  customer_delete  the customer deletes the guide: del_follow_user (a one-way relationship remains)
  member_delete    the guide deletes the customer: del_external_contact
  message          a one-to-one or group chat message; the text comes from a retail vocabulary (想买, 价格,
                   优惠券, 敏感肌, 补水, 退货, 会员, 门店 ...) so keyword tagging has something to find. No callback:
                   WeCom delivers chat content only through the session archive, which the emulator's message store
                   (GET /emulator/chat_messages) stands in for
  join / leave     a customer joins a guide's customer group (scanned its QR code, was invited, or scanned a
                   「加入群聊」 join way: its state is kept, a full way opens a new chat) or leaves one:
                   change_external_chat update add_member / del_member (and create for a new chat)
  open             a customer opens a material their guide shared; logged only (GET /emulator/material_opens)
  refuse_transfer  a customer refuses a waiting transfer to another guide (started through transfer_customer):
                   transfer_fail with FailReason customer_refused

Everything a run did is kept as a `GroundTruth` (who added whom with which state, who deleted whom, what was said,
who joined or left which group, who opened what) for tests and benchmarks to compare siyu's view against.

Determinism: choices come from `random.Random` seeded with the seed and depend only on the corp's state, which is
walked in insertion order (never in set order, which changes between processes). The same seed on the same
starting state gives the same sequence of actions, ids and event XML; with a frozen clock even CreateTime agrees.

A person does not act twice on the same relationship within one second: receivers de-duplicate callbacks by
(CreateTime, ChangeType, UserID, ExternalUserID, ChatId, MemChangeList, ...) as wecom-api.md §2.3 advises, so an
add, delete and re-add of one pair inside a second would look like a retry. The simulator skips such choices.

Two ways to run:
  Simulator(seed, emulator).run(steps=N)          N actions as fast as possible → GroundTruth (tests, benches)
  BackgroundSimulation(Simulator(...), rate=R)    R actions per second until stopped (the demo's live activity)
Both are reachable over HTTP (POST /emulator/simulate/run {steps|rate, seed}) and from `siyu emulator
--simulate-rate R`.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from siyu.emulator import actions
from siyu.emulator.errors import ApiError
from siyu.emulator.model import ContactWay, Corp, GroupChat, Material, to_jsonable
from siyu.emulator.seed import person_name

if TYPE_CHECKING:
    from siyu.emulator.core import Emulator

log = logging.getLogger(__name__)

# -- what people say ---------------------------------------------------------------------------------------------

# Words a keyword-tagging rule would look for. Every message's `keywords` in the ground truth are exactly the
# entries of this list that occur in its text (substring match), whatever template produced it.
KEYWORDS: tuple[str, ...] = (
    "想买",
    "价格",
    "多少钱",
    "优惠券",
    "满减",
    "折扣",
    "敏感肌",
    "干皮",
    "油皮",
    "过敏",
    "补水",
    "保湿",
    "美白",
    "抗老",
    "祛痘",
    "防晒",
    "退货",
    "退款",
    "换货",
    "会员",
    "积分",
    "生日礼",
    "门店",
    "预约",
    "发货",
    "快递",
    "小样",
    "试用装",
    "直播",
    "新品",
)

PRODUCTS = ("精华", "面霜", "水乳套装", "防晒霜", "面膜", "口红", "粉底液", "卸妆油", "眼霜", "洁面乳")
SKINS = ("敏感肌", "干皮", "油皮", "混油皮")
CONCERNS = ("补水", "保湿", "美白", "抗老", "祛痘", "控油")
PRICE_QUESTIONS = ("价格多少？", "多少钱呀？", "现在什么价格？", "会员价是多少？")

CUSTOMER_LINES = (
    "你好，我想买{product}，{price_q}",
    "这款{product}{price_q}",
    "{skin}能用这个{product}吗？",
    "我是敏感肌，最近脸上有点过敏，{product}会不会刺激？",
    "有没有{concern}效果好一点的{product}推荐？",
    "上次买的{product}不太适合，可以退货吗？",
    "快递到哪了？什么时候发货？",
    "色号不对，可以换货吗？",
    "退款什么时候到账？",
    "{product}最近有折扣吗？",
    "会员积分可以抵现吗？",
    "我的优惠券怎么用不了？",
    "周末想去门店试一下{product}，需要预约吗？",
    "生日礼什么时候发呀？",
    "直播间的{product}还有满减吗？",
    "能给我寄点{product}小样吗？",
    "{product}有新品吗？",
    "好的，谢谢",
    "收到",
    "嗯嗯，我再考虑一下",
)
MEMBER_LINES = (
    "亲，{product}现在会员价{price}元，还可以叠加优惠券哦",
    "您好，我是您的专属顾问{guide}，有任何护肤问题随时找我～",
    "本周门店有新品试用活动，欢迎到店体验",
    "已帮您登记，{product}明天发货，注意查收快递",
    "{skin}建议先用小样试一下，我给您寄一份试用装",
    "退货的话在小程序订单里申请就可以，我这边帮您跟进",
    "您的积分还有{price}分，可以兑换{product}小样",
    "今晚8点直播间有满减，记得来看哦",
    "这款{product}主打{concern}，很多老客户回购",
    "好的亲，有问题随时联系我",
)
GROUP_LINES = (
    "群里还有{product}的团购吗？",
    "今天的优惠券领到了，谢谢小姐姐",
    "{skin}姐妹们都用什么{product}？",
    "各位姐妹，今晚直播间福利多多，{product}满减",
    "门店周六有会员日，积分翻倍",
    "{product}{price_q}",
)


def keywords_in(text: str) -> tuple[str, ...]:
    return tuple(k for k in KEYWORDS if k in text)


def _line(rng: random.Random, templates: tuple[str, ...], guide: str) -> str:
    # Every slot is drawn whether or not the template uses it, so the number of draws per message is fixed.
    slots = {
        "product": rng.choice(PRODUCTS),
        "skin": rng.choice(SKINS),
        "concern": rng.choice(CONCERNS),
        "price_q": rng.choice(PRICE_QUESTIONS),
        "price": str(rng.randrange(99, 1000)),
        "guide": guide,
    }
    return rng.choice(templates).format(**slots)


# Shared when the corp has no materials of its own (the demo pushes siyu's through POST /emulator/materials).
DEFAULT_MATERIALS: tuple[Material, ...] = (
    Material("mat_sensitive_guide", "敏感肌护理指南", "https://h5.example.com/m/mat_sensitive_guide"),
    Material("mat_new_serum", "新品精华上市", "https://h5.example.com/m/mat_new_serum"),
    Material("mat_member_day", "会员日积分翻倍", "https://h5.example.com/m/mat_member_day"),
    Material("mat_sunscreen", "夏季防晒攻略", "https://h5.example.com/m/mat_sunscreen"),
    Material("mat_store_event", "门店新品试用活动", "https://h5.example.com/m/mat_store_event"),
)

# -- the mix of actions ------------------------------------------------------------------------------------------

KINDS = ("add", "customer_delete", "member_delete", "message", "join", "leave", "open", "refuse_transfer")


@dataclass(frozen=True)
class Mix:
    """Relative weights of the actions (normalised; 0 switches one off)."""

    add: float = 0.16
    customer_delete: float = 0.03
    member_delete: float = 0.02
    message: float = 0.50
    join: float = 0.08
    leave: float = 0.04
    open: float = 0.17
    refuse_transfer: float = 0.01  # only possible while a transfer waits; another action is drawn otherwise
    # Of the adds, the share made by an existing customer adding another guide (the rest are new customers).
    existing_customer: float = 0.25
    # Of the messages, the share said in a customer group rather than one-to-one.
    group_message: float = 0.15
    # Of the group joins, the share through a 「加入群聊」 join way (when the corp has any).
    join_way: float = 0.3

    def __post_init__(self) -> None:
        weights = self.weights()
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("mix weights must be >= 0 and not all 0")
        if not all(0 <= share <= 1 for share in (self.existing_customer, self.group_message, self.join_way)):
            raise ValueError("existing_customer, group_message and join_way are shares between 0 and 1")

    def weights(self) -> list[float]:
        return [float(getattr(self, kind)) for kind in KINDS]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Mix:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown mix keys: {', '.join(sorted(unknown))}")
        return cls(**{k: float(v) for k, v in data.items()})


# -- ground truth ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Added:
    step: int
    at: int
    userid: str
    external_userid: str
    state: str
    config_id: str
    welcome_code: str
    new_customer: bool


@dataclass(frozen=True)
class Deleted:
    step: int
    at: int
    userid: str
    external_userid: str
    by: str  # "customer": del_follow_user; "member": del_external_contact


@dataclass(frozen=True)
class Said:
    step: int
    at: int
    seq: int  # the message store's seq
    msgid: str
    sender: str
    tolist: tuple[str, ...]
    roomid: str
    content: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Joined:
    step: int
    at: int
    chat_id: str
    external_userid: str
    join_scene: int  # the callback's JoinScene: 0 invited by a member, 3 scanned the group QR code
    config_id: str = ""  # the 「加入群聊」 join way scanned, if any
    state: str = ""  # that way's state (groupchat/get shows it on the member)
    new_chat: bool = False  # the way's chats were full: a new chat was created first (a create event)


@dataclass(frozen=True)
class Left:
    step: int
    at: int
    chat_id: str
    external_userid: str
    quit_scene: int  # 0 left, 1 removed by the owner


@dataclass(frozen=True)
class Opened:
    step: int
    at: int
    seq: int
    userid: str
    external_userid: str
    material_id: str
    url: str


@dataclass(frozen=True)
class Refused:
    step: int
    at: int
    external_userid: str
    handover_userid: str
    takeover_userid: str  # transfer_fail's UserID


Record = Added | Deleted | Said | Joined | Left | Opened | Refused
_LISTS: dict[type, str] = {
    Added: "adds",
    Deleted: "deletes",
    Said: "messages",
    Joined: "joins",
    Left: "leaves",
    Opened: "opens",
    Refused: "refusals",
}


@dataclass
class GroundTruth:
    """What a simulation did, in step order. `counts` are exact even when `max_records` trimmed the lists."""

    seed: int
    corp_id: str
    steps: int = 0
    kinds: list[str] = field(default_factory=list)  # the action of each step, in order
    adds: list[Added] = field(default_factory=list)
    deletes: list[Deleted] = field(default_factory=list)
    messages: list[Said] = field(default_factory=list)
    joins: list[Joined] = field(default_factory=list)
    leaves: list[Left] = field(default_factory=list)
    opens: list[Opened] = field(default_factory=list)
    refusals: list[Refused] = field(default_factory=list)
    delivery_ids: list[int] = field(default_factory=list)  # the callbacks queued, in order (GET /emulator/callbacks)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys((*KINDS, "new_customers", "callbacks"), 0))
    keyword_counts: dict[str, int] = field(default_factory=dict)  # messages containing each keyword
    max_records: int | None = None
    truncated: bool = False

    def record(self, kind: str, record: Record, deliveries: list[int]) -> None:
        self.steps += 1
        self.counts[kind] += 1
        self.counts["callbacks"] += len(deliveries)
        if isinstance(record, Added) and record.new_customer:
            self.counts["new_customers"] += 1
        if isinstance(record, Said):
            for keyword in record.keywords:
                self.keyword_counts[keyword] = self.keyword_counts.get(keyword, 0) + 1
        records: list[Any] = getattr(self, _LISTS[type(record)])
        records.append(record)
        self.kinds.append(kind)
        self.delivery_ids += deliveries
        if self.max_records is not None:
            for name in ("kinds", "delivery_ids", *_LISTS.values()):
                items: list[Any] = getattr(self, name)
                if len(items) > self.max_records + max(1, self.max_records // 10):
                    del items[: len(items) - self.max_records]
                    self.truncated = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "corp_id": self.corp_id,
            "steps": self.steps,
            "counts": dict(self.counts),
            "keyword_counts": dict(self.keyword_counts),
            "truncated": self.truncated,
            "kinds": list(self.kinds),
            **{name: to_jsonable(getattr(self, name)) for name in _LISTS.values()},
            "delivery_ids": list(self.delivery_ids),
        }


# -- the simulator ----------------------------------------------------------------------------------------------

TRIES = 8  # random picks an action makes before it counts as impossible in the current state
KIND_TRIES = 24  # actions tried before a step gives up ("nothing to simulate")
JOIN_BY_QR = 0.65  # share of group joins by scanning the group QR code (JoinScene 3) rather than by invitation
REMOVED_BY_OWNER = 0.15  # share of group leaves where the owner removed the customer (QuitScene 1)
CUSTOMER_SPEAKS = 0.55  # share of one-to-one messages written by the customer


class Simulator:
    def __init__(
        self,
        seed: int,
        emulator: Emulator,
        *,
        corp_id: str = "",
        mix: Mix | None = None,
        seconds_per_step: float = 0.0,
        max_records: int | None = None,
    ) -> None:
        if seconds_per_step < 0:
            raise ValueError("seconds_per_step must not be negative")
        self.seed = seed
        self.emulator = emulator
        self.corp_id = corp_id or next(iter(emulator.corps), "")
        if self.corp_id not in emulator.corps:
            raise actions.SimulationError(f"unknown corp {self.corp_id!r}")
        self.mix = mix or Mix()
        self.seconds_per_step = seconds_per_step
        self.rng = random.Random(f"siyu-simulator:{seed}")  # noqa: S311 - a reproducible run, not secrets
        self.truth = GroundTruth(seed=seed, corp_id=self.corp_id, max_records=max_records)
        self._cumulative = list(itertools.accumulate(self.mix.weights()))
        self._handlers: dict[str, Callable[[Corp, float, int], tuple[Record, list[Any]] | None]] = {
            "add": self._add,
            "customer_delete": self._customer_delete,
            "member_delete": self._member_delete,
            "message": self._message,
            "join": self._join,
            "leave": self._leave,
            "open": self._open,
            "refuse_transfer": self._refuse,
        }
        self._corp: Corp | None = None
        self._customers: list[str] = []  # external_userids in the corp's insertion order (contacts are never removed)
        self._second = -1
        self._touched: set[tuple[str, str, str]] = set()

    # -- running -------------------------------------------------------------------------------------------------

    def run(self, steps: int) -> GroundTruth:
        """Perform `steps` actions as fast as the emulator takes them; the lock is released between steps so API
        calls interleave."""
        if steps < 0:
            raise ValueError("steps must not be negative")
        for _ in range(steps):
            self.step()
        return self.truth

    def step(self) -> str:
        """One action; returns its kind. Raises SimulationError when no action is possible in the current state."""
        emulator = self.emulator
        with emulator.lock:
            corp = emulator.corps.get(self.corp_id)
            if corp is None:
                raise actions.SimulationError(f"corp {self.corp_id!r} is gone")
            self._refresh(corp)
            now = emulator.clock.now()
            emulator.settle(now)
            if int(now) != self._second:
                self._second, self._touched = int(now), set()
            number = self.truth.steps + 1
            for _ in range(KIND_TRIES):
                kind = self.rng.choices(KINDS, cum_weights=self._cumulative)[0]
                done = self._handlers[kind](corp, now, number)
                if done is not None:
                    break
            else:
                raise actions.SimulationError("nothing to simulate: no contact way, customer or group to act on")
            record, events = done
            emulator.mark_dirty()
            deliveries = emulator.emit(events)
            self.truth.record(kind, record, deliveries)
        if self.seconds_per_step:
            emulator.clock.advance(self.seconds_per_step)
        return kind

    def _refresh(self, corp: Corp) -> None:
        if corp is not self._corp:  # first step, or the corp was replaced through POST /emulator/corps
            self._corp, self._customers = corp, list(corp.contacts)
        elif len(corp.contacts) != len(self._customers):
            # Contacts are only ever added, so the new ones are the dict's tail.
            self._customers.extend(itertools.islice(corp.contacts, len(self._customers), None))

    def _fresh(self, kind: str, one: str, other: str) -> bool:
        """True (and remembered) if nobody acted on this relationship within the current second."""
        key = (kind, one, other)
        if key in self._touched:
            return False
        self._touched.add(key)
        return True

    @property
    def _keep(self) -> int:
        return self.emulator.config.activity_log_max

    # -- the actions -----------------------------------------------------------------------------------------------

    def _way_members(self, corp: Corp, way: ContactWay) -> list[str]:
        if way.user:
            userids = way.user
        else:
            parties = set(way.party)
            userids = [m.userid for m in corp.members.values() if parties.intersection(m.department)]
        return [
            u for u in userids if u in corp.members and corp.members[u].customer_contact and corp.members[u].status == 1
        ]

    def _add(self, corp: Corp, now: float, number: int) -> tuple[Record, list[Any]] | None:
        ways = list(corp.contact_ways.values())
        if not ways:
            return None
        rng = self.rng
        for _ in range(TRIES):
            way = rng.choice(ways)
            members = self._way_members(corp, way)
            if not members:
                continue
            userid = rng.choice(members)
            external_userid: str | None = None
            if self._customers and rng.random() < self.mix.existing_customer:
                external_userid = rng.choice(self._customers)
                follow = corp.contacts[external_userid].follows.get(userid)
                if follow is not None and not follow.customer_deleted:
                    continue  # already their customer
            gender = 2 if rng.random() < 0.75 else 1
            name = person_name(rng, gender)
            if external_userid is not None and not self._fresh("contact", userid, external_userid):
                continue
            outcome = actions.contact_add(
                corp,
                now=now,
                userid=userid,
                external_userid=external_userid,
                name=name,
                gender=gender,
                config_id=way.config_id,
            )
            added = outcome.result["external_userid"]
            self._touched.add(("contact", userid, added))
            self._refresh(corp)
            record = Added(
                step=number,
                at=int(now),
                userid=userid,
                external_userid=added,
                state=way.state,
                config_id=way.config_id,
                welcome_code=outcome.result["welcome_code"],
                new_customer=external_userid is None,
            )
            return record, outcome.events
        return None

    def _pick_follow(self, corp: Corp, *, live: bool) -> tuple[str, str] | None:
        """A random (userid, external_userid) relationship; `live`: the customer has not deleted the member."""
        if not self._customers:
            return None
        rng = self.rng
        for _ in range(TRIES):
            customer = corp.contacts[rng.choice(self._customers)]
            followers = [
                u
                for u, f in customer.follows.items()
                if not (live and f.customer_deleted) and u in corp.members and corp.members[u].status == 1
            ]
            if followers:
                return rng.choice(followers), customer.external_userid
        return None

    def _delete(self, corp: Corp, now: float, number: int, by: str) -> tuple[Record, list[Any]] | None:
        for _ in range(TRIES):
            # A customer can only delete a guide they still have; a guide may delete a customer who deleted them.
            picked = self._pick_follow(corp, live=by == "customer")
            if picked is None:
                return None
            userid, external_userid = picked
            if not self._fresh("contact", userid, external_userid):
                continue
            outcome = actions.contact_delete(corp, now=now, userid=userid, external_userid=external_userid, by=by)
            return Deleted(number, int(now), userid, external_userid, by), outcome.events
        return None

    def _customer_delete(self, corp: Corp, now: float, number: int) -> tuple[Record, list[Any]] | None:
        return self._delete(corp, now, number, "customer")

    def _member_delete(self, corp: Corp, now: float, number: int) -> tuple[Record, list[Any]] | None:
        return self._delete(corp, now, number, "member")

    def _message(self, corp: Corp, now: float, number: int) -> tuple[Record, list[Any]] | None:
        rng = self.rng
        if corp.group_chats and rng.random() < self.mix.group_message:
            chat = rng.choice(list(corp.group_chats.values()))
            if len(chat.member_list) < 2:
                return None
            sender = rng.choice(chat.member_list).userid
            owner = corp.members.get(chat.owner)
            content = _line(rng, GROUP_LINES, owner.name if owner else "")
            return self._say(corp, now, number, sender=sender, chat_id=chat.chat_id, content=content)
        picked = self._pick_follow(corp, live=True)
        if picked is None:
            return None
        userid, external_userid = picked
        guide = corp.members[userid].name if userid in corp.members else userid
        if rng.random() < CUSTOMER_SPEAKS:
            content = _line(rng, CUSTOMER_LINES, guide)
            return self._say(corp, now, number, sender=external_userid, receiver=userid, content=content)
        content = _line(rng, MEMBER_LINES, guide)
        return self._say(corp, now, number, sender=userid, receiver=external_userid, content=content)

    def _say(
        self, corp: Corp, now: float, number: int, *, sender: str, content: str, receiver: str = "", chat_id: str = ""
    ) -> tuple[Record, list[Any]]:
        outcome = actions.message_send(
            corp, now=now, sender=sender, receiver=receiver, chat_id=chat_id, content=content, keep=self._keep
        )
        message = corp.chat_messages[-1]
        record = Said(
            step=number,
            at=int(now),
            seq=message.seq,
            msgid=message.msgid,
            sender=sender,
            tolist=tuple(message.tolist),
            roomid=chat_id,
            content=content,
            keywords=keywords_in(content),
        )
        return record, outcome.events

    def _join(self, corp: Corp, now: float, number: int) -> tuple[Record, list[Any]] | None:
        if not corp.group_chats or not self._customers:
            return None
        rng = self.rng
        if corp.join_ways and rng.random() < self.mix.join_way:
            return self._join_by_way(corp, now, number)
        chats = list(corp.group_chats.values())
        for _ in range(TRIES):
            chat = rng.choice(chats)
            present = {m.userid for m in chat.member_list}
            # Mostly the owner's own customers join their group; anyone with the QR code can, though.
            pool = list(corp.customers_of(chat.owner)) or self._customers
            external_userid = rng.choice(pool)
            if external_userid in present or not self._fresh("chat", chat.chat_id, external_userid):
                continue
            scene = 3 if rng.random() < JOIN_BY_QR else 0
            outcome = actions.chat_join(
                corp, now=now, chat_id=chat.chat_id, members=[external_userid], join_scene=scene
            )
            return Joined(number, int(now), chat.chat_id, external_userid, scene), outcome.events
        return None

    def _join_by_way(self, corp: Corp, now: float, number: int) -> tuple[Record, list[Any]] | None:
        rng = self.rng
        ways = list(corp.join_ways.values())
        limit = self.emulator.config.join_way_room_limit
        for _ in range(TRIES):
            way = rng.choice(ways)
            external_userid = rng.choice(self._customers)
            target = actions.join_way_target(corp, way, external_userid, room_limit=limit)
            if target is None or (target and not self._fresh("chat", target, external_userid)):
                continue
            outcome = actions.join_way_scan(
                corp, now=now, config_id=way.config_id, external_userid=external_userid, room_limit=limit
            )
            chat_id = outcome.result["chat_id"]
            self._touched.add(("chat", chat_id, external_userid))
            record = Joined(
                number, int(now), chat_id, external_userid, 3, way.config_id, way.state, outcome.result["created"]
            )
            return record, outcome.events
        return None

    def _leave(self, corp: Corp, now: float, number: int) -> tuple[Record, list[Any]] | None:
        chats: list[GroupChat] = [c for c in corp.group_chats.values() if any(m.type == 2 for m in c.member_list)]
        if not chats:
            return None
        rng = self.rng
        for _ in range(TRIES):
            chat = rng.choice(chats)
            external_userid = rng.choice([m.userid for m in chat.member_list if m.type == 2])
            if not self._fresh("chat", chat.chat_id, external_userid):
                continue
            scene = 1 if rng.random() < REMOVED_BY_OWNER else 0
            outcome = actions.chat_leave(
                corp, now=now, chat_id=chat.chat_id, members=[external_userid], quit_scene=scene
            )
            return Left(number, int(now), chat.chat_id, external_userid, scene), outcome.events
        return None

    def _open(self, corp: Corp, now: float, number: int) -> tuple[Record, list[Any]] | None:
        picked = self._pick_follow(corp, live=True)
        if picked is None:
            return None
        userid, external_userid = picked
        material = self.rng.choice(corp.materials or DEFAULT_MATERIALS)
        outcome = actions.material_open(
            corp,
            now=now,
            external_userid=external_userid,
            userid=userid,
            material_id=material.material_id,
            url=material.url,
            keep=self._keep,
        )
        record = Opened(
            number, int(now), outcome.result["seq"], userid, external_userid, material.material_id, material.url
        )
        return record, outcome.events

    def _refuse(self, corp: Corp, now: float, number: int) -> tuple[Record, list[Any]] | None:
        waiting = [t for t in corp.transfers if t.status == 2 and t.takeover_at > now]
        if not waiting:
            return None
        transfer = self.rng.choice(waiting)
        if not self._fresh("refuse", transfer.takeover_userid, transfer.external_userid):
            return None
        outcome = actions.transfer_refuse(corp, now=now, external_userid=transfer.external_userid)
        record = Refused(number, int(now), transfer.external_userid, transfer.handover_userid, transfer.takeover_userid)
        return record, outcome.events


# -- in the background, at a rate -------------------------------------------------------------------------------


class BackgroundSimulation:
    """Runs a simulator at `rate` actions per second in a daemon thread until stopped (the demo's live activity).

    Steps are scheduled on a fixed grid (1/rate apart); when the emulator is slower than the grid for more than a
    second the schedule is reset rather than made up for with a burst.
    """

    def __init__(self, simulator: Simulator, rate: float) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        self.simulator = simulator
        self.rate = rate
        self.error = ""
        self.started_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emulator-simulator", daemon=True)

    def start(self) -> BackgroundSimulation:
        self.started_at = time.monotonic()
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def _run(self) -> None:
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.simulator.step()
                self.error = ""
            except (actions.SimulationError, ApiError) as exc:
                # Nothing to act on yet (an empty corp, the corp replaced): try again a little later.
                self.error = str(exc)
                if self._stop.wait(1.0):
                    return
                next_at = time.monotonic()
                continue
            except Exception as exc:  # a bug must not end the demo's activity silently
                log.exception("simulator step failed")
                self.error = f"{type(exc).__name__}: {exc}"
            next_at += interval
            delay = next_at - time.monotonic()
            if delay < -1.0:
                next_at = time.monotonic()
            elif delay > 0 and self._stop.wait(delay):
                return

    def status(self) -> dict[str, Any]:
        truth = self.simulator.truth
        return {
            "running": self.running,
            "rate": self.rate,
            "seed": self.simulator.seed,
            "corp_id": self.simulator.corp_id,
            "steps": truth.steps,
            "counts": dict(truth.counts),
            "seconds": round(time.monotonic() - self.started_at, 3) if self.started_at else 0.0,
            "error": self.error,
        }
