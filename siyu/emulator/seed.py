"""Deterministic corps for the emulator: the same (seed, sizes, anchor) always gives the same corp.

The shape mirrors a retail brand on WeCom: a root department with regions and stores, guides (导购) in stores,
a brand IP account (品牌IP号) at HQ, an HQ admin without customer-contact permission, corp tag groups,
「联系我」 ways per store (state = channel key) and for campaigns, customers with one to three followers
(tags, remarks, state, add_way), and customer groups owned by guides.

The demo can instead push its own brand into the emulator (POST /emulator/corps with the snapshot format of
`siyu.emulator.model`), so both sides describe the same people.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from faker.providers.person.zh_CN import Provider as _ZhNames

from siyu.emulator import ids
from siyu.emulator.model import (
    App,
    CallbackConfig,
    ContactWay,
    Corp,
    Department,
    ExternalContact,
    Follow,
    GroupChat,
    GroupChatMember,
    Member,
    Tag,
    TagGroup,
)

TZ = ZoneInfo("Asia/Shanghai")
CONTACT_AGENTID = 1000002  # the self-built app configured in 「客户联系 → 可调用接口的应用」
OTHER_AGENTID = 1000003  # an app without customer-contact permission: 48002 on externalcontact/*

REGIONS = ["华东大区", "华南大区", "华北大区", "西南大区", "华中大区", "西北大区", "东北大区"]
CITIES = [
    "上海",
    "杭州",
    "南京",
    "苏州",
    "广州",
    "深圳",
    "厦门",
    "北京",
    "天津",
    "成都",
    "重庆",
    "武汉",
    "长沙",
    "西安",
]
TAG_GROUPS: list[tuple[str, list[str]]] = [
    ("客户等级", ["普通会员", "银卡会员", "金卡会员", "黑金会员"]),
    ("兴趣偏好", ["护肤", "彩妆", "香氛", "身体护理", "男士护理"]),
    ("来源渠道", ["门店扫码", "直播", "小红书", "朋友推荐"]),
    ("生命周期", ["新客", "活跃", "沉睡", "流失"]),
]
CAMPAIGNS = [("live_0618", "618直播间"), ("xhs_spring", "小红书春季投放")]
OTHER_ADD_WAYS = [2, 3, 5, 6]  # search by phone, shared card, phone book, WeChat contacts


@dataclass(frozen=True)
class SeedSpec:
    seed: int = 1
    corp_id: str = ""  # "" → "ww" + 16 hex characters derived from the seed, as WeCom corp ids look
    name: str = "澄光美妆"
    regions: int = 2
    stores_per_region: int = 3
    guides_per_store: int = 3
    customers: int = 300
    group_chats: int = 12
    # Unix time everything happened before; None → local midnight of today (so one day's seeds are identical).
    anchor: int | None = None
    callback_url: str = ""
    callback_token: str = ""
    callback_aes_key: str = ""
    secret: str = ""  # the customer-contact app's secret; "" → derived from the seed
    public_url: str = "http://127.0.0.1:8001"  # where qr_code links point

    def resolved_corp_id(self) -> str:
        return self.corp_id or "ww" + hashlib.sha256(f"corp:{self.seed}".encode()).hexdigest()[:16]


def default_anchor() -> int:
    now = dt.datetime.now(TZ)
    return int(dt.datetime(now.year, now.month, now.day, tzinfo=TZ).timestamp())


_SURNAMES = tuple(_ZhNames.last_names)
_GIVEN_MALE = tuple(_ZhNames.first_names_male)
_GIVEN_FEMALE = tuple(_ZhNames.first_names_female)


def person_name(rng: random.Random, gender: int) -> str:
    """A Chinese full name (gender 1 male, else female given names); the simulator names new customers with it."""
    return rng.choice(_SURNAMES) + rng.choice(_GIVEN_MALE if gender == 1 else _GIVEN_FEMALE)


def build_corp(spec: SeedSpec) -> Corp:
    corp_id = spec.resolved_corp_id()
    rng = random.Random(f"{spec.seed}:{corp_id}")  # noqa: S311 - a reproducible seed, not secrets
    anchor = spec.anchor if spec.anchor is not None else default_anchor()
    year_ago = anchor - 365 * 86_400
    corp = Corp(
        corp_id=corp_id,
        name=spec.name,
        apps=[
            App(CONTACT_AGENTID, "私域SCRM", spec.secret or ids.secret(spec.seed, corp_id, CONTACT_AGENTID), True),
            App(OTHER_AGENTID, "考勤打卡", ids.secret(spec.seed, corp_id, OTHER_AGENTID), False),
        ],
        callback=CallbackConfig(
            url=spec.callback_url,
            token=spec.callback_token or ids.callback_token(spec.seed, corp_id),
            encoding_aes_key=spec.callback_aes_key or ids.encoding_aes_key(spec.seed, corp_id),
            agentid=str(CONTACT_AGENTID),
        ),
    )

    # Org: root → regions → stores; HQ admin and the brand IP account sit in the root department.
    corp.departments[1] = Department(1, spec.name, parentid=0, order=100_000_000)
    corp.members["hq_admin"] = Member("hq_admin", "总部管理员", [1], 1, position="运营总监", customer_contact=False)
    corp.members["brand_ip"] = Member("brand_ip", f"{spec.name}小助手", [1], 1, position="品牌IP号")
    stores: list[tuple[int, list[str]]] = []
    next_department = 2
    for r in range(spec.regions):
        region_id = next_department
        next_department += 1
        corp.departments[region_id] = Department(
            region_id, REGIONS[r % len(REGIONS)] + ("" if r < len(REGIONS) else str(r)), 1, order=1000 - r
        )
        for s in range(spec.stores_per_region):
            store_id = next_department
            next_department += 1
            city = CITIES[(r * spec.stores_per_region + s) % len(CITIES)]
            corp.departments[store_id] = Department(store_id, f"{city}{s + 1}号店", region_id, order=1000 - s)
            guides = []
            for g in range(spec.guides_per_store):
                gender = 2 if rng.random() < 0.8 else 1
                userid = f"guide{store_id:03d}{g + 1:02d}"
                corp.members[userid] = Member(
                    userid,
                    person_name(rng, gender),
                    [store_id],
                    store_id,
                    position="店长" if g == 0 else "导购",
                    mobile=f"13{rng.randrange(10**9):09d}",
                    gender=str(gender),
                )
                guides.append(userid)
            corp.departments[store_id].department_leader = guides[:1]
            stores.append((store_id, guides))

    # Corp tags.
    tag_ids: dict[str, list[str]] = {}
    for order, (group_name, names) in enumerate(TAG_GROUPS):
        group = TagGroup(ids.tag_id(corp_id, corp.next_seq()), group_name, year_ago, order=len(TAG_GROUPS) - order)
        group.tags = [
            Tag(ids.tag_id(corp_id, corp.next_seq()), name, year_ago, order=len(names) - i)
            for i, name in enumerate(names)
        ]
        corp.tag_groups[group.group_id] = group
        tag_ids[group_name] = [t.id for t in group.tags]

    # 「联系我」: one QR way per store (all its guides), one per campaign (up to 100 guides).
    all_guides = [g for _, guides in stores for g in guides]
    store_state: dict[str, str] = {}
    for store_id, guides in stores:
        seq = corp.next_seq()
        config_id = ids.config_id(corp_id, seq)
        state = f"store_{store_id}"
        corp.contact_ways[config_id] = ContactWay(
            config_id,
            type=2,
            scene=2,
            create_time=year_ago,
            seq=seq,
            remark=corp.departments[store_id].name,
            state=state,
            party=[store_id],
            qr_code=f"{spec.public_url}/emulator/qr/{config_id}.svg",
        )
        for userid in guides:
            store_state[userid] = state
    for state, remark in CAMPAIGNS:
        seq = corp.next_seq()
        config_id = ids.config_id(corp_id, seq)
        corp.contact_ways[config_id] = ContactWay(
            config_id,
            type=2,
            scene=2,
            create_time=year_ago,
            seq=seq,
            remark=remark,
            state=state,
            user=all_guides[:100],
            qr_code=f"{spec.public_url}/emulator/qr/{config_id}.svg",
        )

    # Customers and who follows them. Follow seqs are handed out in createtime order, like real adds.
    pending: list[tuple[int, ExternalContact, Follow]] = []
    for _ in range(spec.customers):
        n = corp.next_seq()
        gender = 2 if rng.random() < 0.75 else 1
        wecom_user = rng.random() < 0.03
        customer = ExternalContact(
            external_userid=ids.external_userid(corp_id, n),
            name=person_name(rng, gender),
            type=2 if wecom_user else 1,
            gender=gender,
            unionid="" if wecom_user or rng.random() < 0.2 else ids.unionid(corp_id, n),
            corp_name="某科技" if wecom_user else "",
            corp_full_name="某科技有限公司" if wecom_user else "",
            position="采购经理" if wecom_user else "",
        )
        corp.contacts[customer.external_userid] = customer
        primary = rng.choice(all_guides)
        followers = [primary]
        if rng.random() < 0.15:
            followers.append("brand_ip" if rng.random() < 0.5 else rng.choice(all_guides))
        if rng.random() < 0.03:
            followers.append(rng.choice(all_guides))
        for userid in dict.fromkeys(followers):
            roll = rng.random()
            state = store_state.get(userid, "") if roll < 0.7 else (rng.choice(CAMPAIGNS)[0] if roll < 0.9 else "")
            tags = [rng.choice(tag_ids["客户等级"])]
            tags += rng.sample(tag_ids["兴趣偏好"], k=rng.randrange(3))
            createtime = year_ago + rng.randrange(365 * 86_400)
            follow = Follow(
                userid=userid,
                createtime=createtime,
                seq=0,
                remark=customer.name if rng.random() < 0.5 else "",
                tag_ids=tags,
                add_way=1 if state else rng.choice(OTHER_ADD_WAYS),
                state=state,
                oper_userid=customer.external_userid if state else userid,
            )
            pending.append((createtime, customer, follow))
    pending.sort(key=lambda item: (item[0], item[1].external_userid, item[2].userid))
    for _, customer, follow in pending:
        follow.seq = corp.next_seq()
        corp.follow_add(customer, follow)

    # Customer groups, each owned by a guide with some of that guide's customers inside.
    for g in range(spec.group_chats):
        owner = rng.choice(all_guides)
        create_time = year_ago + rng.randrange(300 * 86_400)
        chat = GroupChat(
            ids.chat_id(corp_id, corp.next_seq()), f"{corp.members[owner].name}的会员福利群{g + 1}", owner, create_time
        )
        chat.member_list.append(GroupChatMember(owner, 1, create_time, 1, name=corp.members[owner].name))
        customers = list(corp.customers_of(owner))
        for external_userid in rng.sample(customers, k=min(len(customers), rng.randrange(3, 30))):
            customer = corp.contacts[external_userid]
            scene = rng.choice([1, 2, 3])
            chat.member_list.append(
                GroupChatMember(
                    external_userid,
                    2,
                    create_time + rng.randrange(86_400 * 30),
                    scene,
                    invitor=owner if scene != 3 else "",
                    name=customer.name,
                    unionid=customer.unionid,
                )
            )
        corp.group_chats[chat.chat_id] = chat
    return corp
