"""Fixed reference data of the demo brand 澄光美妆: org tree, tag catalogue, channels, products, campaigns.

Hand-written rather than generated so that the brand looks like a real Chinese beauty brand: real cities with
their real centre coordinates and districts, well-known malls, WeCom add-way codes that match the channel.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from siyu.channels.models import LiveCode
from siyu.core.models import Role
from siyu.customers.models import FollowRelation
from siyu.tags.models import TagSource

BRAND_NAME = "澄光美妆"
# The brand's customer groups (客户群): members' groups per city, numbered 1 to 5.
GROUP_NAME = "澄光{city}会员{number}群"
BRAND_SLUG = "demo"
BRAND_CORP_ID = "ww5e1c0a8d2f4b7c91"
BRAND_IP_NAME = "好物体验官"
BRAND_IP_USERID = "haowu_tiyanguan"
DEMO_PASSWORD = "siyu-demo"  # noqa: S105 - the published password of the demo logins, printed after a load
DEFAULT_SEED = 2024
DEFAULT_CUSTOMERS = 50_000
ORDERS_PER_CUSTOMER = 2.1  # keeps ≥ 100,000 orders at the default 50,000 customers

# One login per role (password DEMO_PASSWORD), anchored in one corner of the org tree so they nest:
# the guide works in the store, the store is in the region; the franchisee owns stores elsewhere.
LOGINS: tuple[tuple[str, str], ...] = (
    ("admin", Role.HQ_ADMIN),
    ("region", Role.REGION_MANAGER),
    ("store", Role.STORE_MANAGER),
    ("guide", Role.GUIDE),
    ("franchisee", Role.FRANCHISEE),
)
LOGIN_REGION = "EC"
LOGIN_STORE = "S001"
LOGIN_GUIDE = "s001-01"  # the first guide of S001, who never departs and adds the most customers
LOGIN_FRANCHISEE = "F01"


def corp_id_for(slug: str) -> str:
    """The WeCom corp of the demo brand loaded under `slug`: BRAND_CORP_ID for the demo itself, a corp id of its
    own for any other slug (a second demo brand, as tests load), since one corp connects to one brand only."""
    if slug == BRAND_SLUG:
        return BRAND_CORP_ID
    return "ww" + hashlib.sha256(slug.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class City:
    name: str
    latitude: float  # the city centre; stores sit within a few kilometres of it
    longitude: float
    districts: tuple[str, ...]
    weight: float  # share of customers who live there


CITIES: dict[str, City] = {
    c.name: c
    for c in (
        City("上海", 31.2304, 121.4737, ("静安区", "徐汇区", "黄浦区", "浦东新区", "长宁区", "普陀区", "闵行区"), 3.0),
        City("杭州", 30.2741, 120.1551, ("上城区", "拱墅区", "西湖区", "滨江区", "余杭区"), 2.0),
        City("南京", 32.0603, 118.7969, ("玄武区", "秦淮区", "鼓楼区", "建邺区"), 1.5),
        City("苏州", 31.2989, 120.5853, ("姑苏区", "工业园区", "吴中区", "虎丘区"), 1.3),
        City("宁波", 29.8683, 121.5440, ("海曙区", "鄞州区", "江北区"), 0.9),
        City("广州", 23.1291, 113.2644, ("天河区", "越秀区", "海珠区", "荔湾区", "番禺区"), 2.2),
        City("深圳", 22.5431, 114.0579, ("福田区", "南山区", "罗湖区", "宝安区", "龙华区"), 2.4),
        City("厦门", 24.4798, 118.0894, ("思明区", "湖里区", "集美区"), 0.8),
        City("福州", 26.0745, 119.2965, ("鼓楼区", "台江区", "仓山区"), 0.7),
        City("北京", 39.9042, 116.4074, ("朝阳区", "东城区", "西城区", "海淀区", "丰台区"), 2.8),
        City("天津", 39.3434, 117.3616, ("和平区", "河西区", "南开区", "河东区"), 1.0),
        City("济南", 36.6512, 117.1201, ("历下区", "市中区", "槐荫区"), 0.8),
        City("青岛", 36.0671, 120.3826, ("市南区", "市北区", "崂山区"), 0.9),
        City("成都", 30.5728, 104.0668, ("锦江区", "青羊区", "武侯区", "高新区", "成华区"), 2.0),
        City("重庆", 29.5630, 106.5516, ("渝中区", "江北区", "南岸区", "沙坪坝区"), 1.6),
        City("昆明", 25.0389, 102.7183, ("五华区", "盘龙区", "官渡区"), 0.6),
        City("武汉", 30.5928, 114.3055, ("江汉区", "武昌区", "洪山区", "江岸区"), 1.4),
        City("长沙", 28.2282, 112.9388, ("芙蓉区", "天心区", "岳麓区", "开福区"), 1.1),
    )
}

# (code, name): the regions (大区) under HQ, in display order.
REGIONS: tuple[tuple[str, str], ...] = (
    ("EC", "华东大区"),
    ("SC", "华南大区"),
    ("NC", "华北大区"),
    ("SW", "西南大区"),
    ("CC", "华中大区"),
)

# (code, name): franchisees (加盟商) that own some of the stores below.
FRANCHISEES: tuple[tuple[str, str], ...] = (
    ("F01", "宁波甬美商贸有限公司"),
    ("F02", "厦门闽悦贸易有限公司"),
    ("F03", "青岛齐鲁丽人商贸有限公司"),
    ("F04", "长沙湘楚美业发展有限公司"),
)


@dataclass(frozen=True)
class StoreRef:
    code: str
    region: str
    city: str
    district: str
    mall: str
    franchisee: str | None
    weight: float  # share of store traffic: flagship malls in tier-1 cities are busier


STORES: tuple[StoreRef, ...] = (
    StoreRef("S001", "EC", "上海", "静安区", "静安嘉里中心", None, 1.6),
    StoreRef("S002", "EC", "上海", "徐汇区", "港汇恒隆广场", None, 1.4),
    StoreRef("S003", "EC", "上海", "普陀区", "环球港", None, 1.2),
    StoreRef("S004", "EC", "杭州", "上城区", "湖滨银泰in77", None, 1.4),
    StoreRef("S005", "EC", "杭州", "拱墅区", "杭州大厦", None, 1.1),
    StoreRef("S006", "EC", "南京", "玄武区", "德基广场", None, 1.3),
    StoreRef("S007", "EC", "南京", "秦淮区", "新街口中央商场", None, 0.9),
    StoreRef("S008", "EC", "苏州", "工业园区", "苏州中心", "F01", 1.0),
    StoreRef("S009", "EC", "宁波", "海曙区", "天一广场", "F01", 0.9),
    StoreRef("S010", "SC", "广州", "天河区", "太古汇", None, 1.5),
    StoreRef("S011", "SC", "广州", "天河区", "正佳广场", None, 1.1),
    StoreRef("S012", "SC", "深圳", "罗湖区", "万象城", None, 1.5),
    StoreRef("S013", "SC", "深圳", "南山区", "海岸城", None, 1.2),
    StoreRef("S014", "SC", "厦门", "思明区", "万象城", "F02", 0.9),
    StoreRef("S015", "SC", "福州", "鼓楼区", "东百中心", "F02", 0.8),
    StoreRef("S016", "NC", "北京", "朝阳区", "国贸商城", None, 1.5),
    StoreRef("S017", "NC", "北京", "西城区", "西单大悦城", None, 1.3),
    StoreRef("S018", "NC", "北京", "朝阳区", "三里屯太古里", None, 1.4),
    StoreRef("S019", "NC", "天津", "和平区", "天津恒隆广场", "F03", 0.9),
    StoreRef("S020", "NC", "济南", "历下区", "恒隆广场", "F03", 0.8),
    StoreRef("S021", "NC", "青岛", "市南区", "万象城", "F03", 0.9),
    StoreRef("S022", "SW", "成都", "锦江区", "太古里", None, 1.4),
    StoreRef("S023", "SW", "成都", "锦江区", "IFS国际金融中心", None, 1.2),
    StoreRef("S024", "SW", "重庆", "渝中区", "解放碑时代广场", None, 1.1),
    StoreRef("S025", "SW", "重庆", "江北区", "观音桥北城天街", None, 1.0),
    StoreRef("S026", "SW", "昆明", "五华区", "顺城购物中心", "F04", 0.7),
    StoreRef("S027", "CC", "武汉", "江汉区", "武商广场", None, 1.2),
    StoreRef("S028", "CC", "武汉", "武昌区", "楚河汉街", None, 1.0),
    StoreRef("S029", "CC", "长沙", "芙蓉区", "IFS国金中心", "F04", 1.0),
)

# Mall opening hours; northern malls tend to open and close half an hour earlier.
OPENING_HOURS: tuple[tuple[dt.time, dt.time], ...] = (
    (dt.time(10, 0), dt.time(22, 0)),
    (dt.time(10, 0), dt.time(22, 0)),
    (dt.time(10, 0), dt.time(21, 30)),
    (dt.time(9, 30), dt.time(21, 30)),
)

GUIDES_PER_STORE = (4, 6)  # inclusive range; 29 stores give about 145 guides


@dataclass(frozen=True)
class Channel:
    """Where a customer came from: the `source`, the WeCom add way and the `state` the live code carried."""

    source: str
    weight: float
    add_way: int | None  # None: a shop buyer imported without a WeCom friendship
    state: str  # template; {store} {yymm} {mmdd} {shop} are filled in
    online: bool  # online leads are routed to any store's guide or to the brand IP
    tag: str  # the 渠道 tag applied on add ("" for none)
    # The channel's adds come through one of LIVE_CODES, whose guides are the brand IP and every store's lead
    # guide: an online lead routed to a store reaches its lead guide, not any guide of it.
    leads: bool = False


CHANNELS: tuple[Channel, ...] = (
    Channel("store_qr", 38, FollowRelation.AddWay.QR_CODE, "store-{store}", online=False, tag="门店扫码"),
    Channel("douyin_ad", 9, FollowRelation.AddWay.QR_CODE, "ad-douyin", online=True, tag="抖音投放", leads=True),
    Channel("xiaohongshu", 7, FollowRelation.AddWay.QR_CODE, "xhs-note", online=True, tag="小红书", leads=True),
    Channel(
        "delivery_card", 10, FollowRelation.AddWay.QR_CODE, "bag-card-{shop}", online=True, tag="{shop_tag}", leads=True
    ),
    Channel("live", 6, FollowRelation.AddWay.CHANNELS, "live-{mmdd}", online=True, tag="直播间"),
    Channel("referral", 8, FollowRelation.AddWay.CARD_SHARE, "fission-{yymm}", online=True, tag="老带新"),
    Channel("group_chat", 5, FollowRelation.AddWay.GROUP_CHAT, "", online=False, tag=""),
    Channel("phone_search", 6, FollowRelation.AddWay.PHONE_SEARCH, "", online=False, tag=""),
    Channel("wechat_contacts", 3, FollowRelation.AddWay.WECHAT_CONTACTS, "", online=False, tag=""),
    Channel("colleague_share", 2, FollowRelation.AddWay.MEMBER_SHARE, "", online=False, tag=""),
    Channel("admin_assigned", 1, FollowRelation.AddWay.ADMIN_ASSIGNED, "", online=True, tag=""),
    Channel("tmall_import", 3, None, "", online=True, tag="天猫"),
    Channel("jd_import", 2, None, "", online=True, tag="京东"),
)


@dataclass(frozen=True)
class Product:
    series: str
    price_yuan: int
    category_tag: str  # the 购买品类 tag a purchase applies
    weight: float


PRODUCTS: tuple[Product, ...] = (
    Product("小金瓶精华", 459, "精华", 18),
    Product("澄光水光霜", 329, "面霜", 14),
    Product("丝绒唇釉", 189, "口红", 16),
    Product("柔焦粉底液", 359, "粉底", 11),
    Product("修护面膜", 159, "面膜", 15),
    Product("白茶香水", 529, "香水", 7),
    Product("清透防晒乳", 219, "防晒", 10),
    Product("节日礼盒", 999, "礼盒", 6),
)
COURSE = Product("美妆课程", 99, "", 0)  # 小鹅通 sells the brand's make-up courses, not products

# (shop, weight for guide-served customers, weight for brand-IP customers); shop-only buyers use their shop.
SHOPS: tuple[tuple[str, float, float], ...] = (
    ("store", 34, 0),
    ("tmall", 25, 35),
    ("youzan", 15, 25),
    ("mall", 12, 20),
    ("jd", 11, 15),
    ("xiaoe", 3, 5),
)
DISCOUNTS = (1.0, 1.0, 0.95, 0.9, 0.85, 0.8)
COUPONS_CENTS = (0, 0, 0, 0, 1000, 2000, 3000, 5000)

# (group, order, source, tags): the brand's tag catalogue. The source is who applies tags of the group.
# fmt: off
TAG_GROUPS: tuple[tuple[str, int, str, tuple[str, ...]], ...] = (
    ("会员等级", 70, TagSource.TIER, ("普通会员", "银卡会员", "金卡会员", "黑金会员")),
    ("RFM分层", 60, TagSource.RFM, (
        "重要价值客户", "重要发展客户", "重要保持客户", "重要挽留客户",
        "一般价值客户", "一般发展客户", "一般保持客户", "一般挽留客户",
    )),
    ("购买品类", 50, TagSource.PURCHASE, ("精华", "面霜", "口红", "粉底", "面膜", "香水", "防晒", "礼盒")),
    ("兴趣", 40, TagSource.MANUAL, ("护肤", "彩妆", "香氛", "身体护理", "抗老", "成分党")),
    ("肤质", 30, TagSource.MANUAL, ("干皮", "油皮", "混合皮", "敏感肌", "中性皮")),
    ("渠道", 20, TagSource.CHANNEL, ("门店扫码", "抖音投放", "小红书", "天猫", "京东", "直播间", "老带新")),
    ("意向", 10, TagSource.BEHAVIOUR, ("高意向", "咨询价格", "询问成分", "活动参与", "浏览未购")),
)
# fmt: on
# Member tiers by lifetime spend in fen: (lower bound, tag).
TIERS: tuple[tuple[int, str], ...] = (
    (800_000, "黑金会员"),
    (300_000, "金卡会员"),
    (100_000, "银卡会员"),
    (0, "普通会员"),
)
RFM_SEGMENTS: dict[tuple[bool, bool, bool], str] = {
    # (recent, frequent, high spend) → segment, the classic eight-way RFM split
    (True, True, True): "重要价值客户",
    (True, False, True): "重要发展客户",
    (False, True, True): "重要保持客户",
    (False, False, True): "重要挽留客户",
    (True, True, False): "一般价值客户",
    (True, False, False): "一般发展客户",
    (False, True, False): "一般保持客户",
    (False, False, False): "一般挽留客户",
}

REMARK_SUFFIXES = ("", "", "·老客", "·敏感肌", "·0618到店", "·VIP", "·学生党", "·宝妈", "·爱买精华", "·想试新品")
MATERIALS = (
    "618护肤攻略",
    "小金瓶精华使用指南",
    "秋冬换季修护手册",
    "新品丝绒唇釉试色",
    "会员日权益说明",
    "敏感肌护理小课堂",
    "双11囤货清单",
    "防晒科普：SPF与PA",
    "节日礼盒开箱",
    "门店美妆课报名",
)

# Campaign days lift both adds and orders: (first month, first day, last month, last day, lift).
CAMPAIGNS: tuple[tuple[int, int, int, int, float], ...] = (
    (1, 10, 1, 25, 1.4),  # 年货节
    (3, 1, 3, 8, 1.8),  # 38 女神节
    (5, 15, 5, 20, 1.6),  # 520
    (6, 1, 6, 15, 2.0),  # 618 warm-up
    (6, 16, 6, 18, 3.5),  # 618
    (10, 20, 11, 8, 2.0),  # 双11 pre-sale
    (11, 9, 11, 11, 4.0),  # 双11
    (12, 10, 12, 12, 1.8),  # 双12
)
# Relative activity by local hour of day: customers add guides and pay mostly at lunch and in the evening.
HOUR_WEIGHTS: tuple[float, ...] = (
    0.3, 0.15, 0.1, 0.05, 0.05, 0.1, 0.2, 0.5, 0.9, 1.2, 1.5, 1.7,
    2.2, 2.0, 1.6, 1.5, 1.5, 1.6, 1.8, 2.2, 2.8, 3.0, 2.6, 1.2,
)  # fmt: skip

# --- acquisition: live codes, welcome messages, group codes, the fission campaign -----------------------------

# The 「联系我」 channel codes besides the stores' own (state `store-<code>`, see STORE_CODE_*), with the 渠道 tag each
# applies on add. Their states are the ones CHANNELS gives those adds, so each code's stats show the year's history.


@dataclass(frozen=True)
class LiveCodeRef:
    state: str
    name: str
    tag: str  # a 渠道 tag applied on add, "" for none
    strategy: str
    leads: bool  # the brand IP and every store's lead guide; False: the brand IP alone
    daily_cap: int | None  # adds per guide and day through the code (None: no cap)
    welcome: str
    link: tuple[str, str, str] | None = None  # (title, url, description) of a link attached to the welcome


LIVE_CODES: tuple[LiveCodeRef, ...] = (
    LiveCodeRef(
        "ad-douyin", "抖音信息流投放", "抖音投放", LiveCode.Strategy.LEAST_LOADED, True, None,
        "{客户昵称}您好，感谢从抖音来找我！我是澄光美妆的{导购}。直播同款小金瓶精华的新客专享券已为您备好，"
        "点下方链接领取，48小时内有效哦～",
        ("新客专享：小金瓶精华立减50元", "https://m.chengguang.example/coupon/douyin", "抖音粉丝专享，48小时内有效"),
    ),
    LiveCodeRef(
        "xhs-note", "小红书种草笔记", "小红书", LiveCode.Strategy.ROUND_ROBIN, True, None,
        "哈喽{客户昵称}～看到小红书笔记来找我的宝子都有福利！回复「试用」免费申请丝绒唇釉试色装，"
        "我是{导购}，肤质、色号问题随时问我～",
    ),
    LiveCodeRef(
        "bag-card-tmall", "天猫旗舰店包裹卡", "天猫", LiveCode.Strategy.ROUND_ROBIN, True, 40,
        "{客户昵称}您好，感谢在澄光美妆天猫旗舰店下单！我是您的专属售后顾问{导购}，使用中有任何问题都可以找我。"
        "回复「会员」加入会员，下单立享95折～",
    ),
    LiveCodeRef(
        "bag-card-jd", "京东旗舰店包裹卡", "京东", LiveCode.Strategy.ROUND_ROBIN, True, 25,
        "{客户昵称}您好，感谢在澄光美妆京东旗舰店购买！我是{导购}，产品用法、售后问题都可以直接问我，"
        "每周三会员日还有专属福利哦～",
    ),
    LiveCodeRef(
        "ip-haowu", "官方IP·好物体验官", "", LiveCode.Strategy.ROUND_ROBIN, False, None,
        "嗨{客户昵称}，我是澄光好物体验官～新品试用名额、直播预告和会员日福利都会在这里第一时间通知你，"
        "记得把我设为星标哦！",
    ),
)  # fmt: skip
# The brand IP's code: the store locator shows it when no store is near (or open).
FALLBACK_CODE_STATE = "ip-haowu"

# The stores' own codes (门店活码): each store's active guides. Flagships (the busiest malls) hand each scan to the
# guide with the fewest adds today; franchise stores cap each guide's adds a day (their guides also serve walk-ins
# at the counter); the other stores take turns.
STORE_CODE_NAME = "{store}·门店码"
STORE_CODE_FLAGSHIP_WEIGHT = 1.5
STORE_CODE_FRANCHISE_CAP = 15
STORE_CODE_WELCOME = (
    "{客户昵称}您好！欢迎来到{门店}，我是您的专属美妆顾问{导购}。回复「肤质」领取免费肤质测试，"
    "到店出示这条消息可领小样一份，期待再见到您～"
)
STORE_CODE_LINK = (
    "门店预约：免费肤质检测与上妆服务",
    "https://m.chengguang.example/store/booking",
    "到店前预约，免排队",
)
# The brand's default welcome (a scan of no code, or a code without its own message) and the brand IP's own.
DEFAULT_WELCOME = (
    "{客户昵称}您好，我是澄光美妆的{导购}，感谢添加！护肤、彩妆问题随时找我，新品上市和会员专属福利也会第一时间告诉您。"
)
BRAND_IP_WELCOME = (
    "嗨{客户昵称}，我是澄光好物体验官～想了解新品、领试用、看直播预告都可以找我，回复「福利」查看本周会员日活动。"
)

# Group live codes (群活码) over the member groups of a few cities (name, ASCII slug for the state, threshold): the
# code moves on when a group reaches its threshold, and WeCom opens the next group when all are full.
GROUP_CODE_CITIES: tuple[tuple[str, str, int], ...] = (
    ("杭州", "hangzhou", 180),
    ("成都", "chengdu", 190),
    ("武汉", "wuhan", 160),
)
GROUP_CODE_INVITE = "扫码加入澄光{city}会员群：每周三会员日福利、新品试用名额和直播预告都在群里～"

# The running fission campaign (任务宝): the brand IP hosts it; shoppers scan the campaign poster or a participant's
# own poster and add the brand IP. It began FISSION_STARTED_DAYS before the demo's anchor and runs FISSION_DAYS.
FISSION_NAME = "澄光好友季·邀请有礼"
FISSION_CAPTION = "扫码添加好物体验官，邀3位好友得50元无门槛券"
FISSION_STARTED_DAYS = 21
FISSION_DAYS = 35
FISSION_STARTS_AT = dt.time(10, 0)
# (invites, kind, reward, stock, payload)
FISSION_TIERS: tuple[tuple[int, str, str, int | None, dict[str, object]], ...] = (
    (3, "coupon", "50元无门槛券", None, {"coupon_template": "CG-FX-50"}),
    (8, "gift", "小金瓶精华体验装 7ml", 60, {}),
)
