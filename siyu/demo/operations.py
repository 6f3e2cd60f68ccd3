"""The demo's operations phase: what a brand's operations team would already have set up on top of its customers.

Saved segments (分群), automatic tagging rules (自动打标) and a handful of leads (线索), all made through the
contexts' own services, as an operator would make them in the console. The rules are not run during the load (a
first RFM run over 50,000 customers takes most of a minute on SQLite): the worker runs them at night, or an
operator presses "Run now". Segments are counted when the console shows them.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from siyu.analytics.models import Segment
from siyu.analytics.services import segment_create
from siyu.core.errors import Conflict
from siyu.core.models import Guide, Store
from siyu.core.scopes import Actor
from siyu.demo import reference as ref
from siyu.leads.models import Lead
from siyu.leads.services import lead_assign, lead_create
from siyu.tags.models import TagRule
from siyu.tags.rules import tag_rule_create

if TYPE_CHECKING:
    from siyu.demo.services import DemoRun

SEGMENTS = 4
RULES = 3
LEADS = 24
LEAD_SOURCES = ("抖音留资", "小红书表单", "直播间预约", "门店登记")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "欣怡子涵雨萱梓晴思琪佳怡诗涵语嫣静怡雅婷"


def _segments(run: DemoRun) -> list[tuple[str, dict[str, object]]]:
    tag = run.tag_ids()
    login_store = Store.objects.get(tenant_id=run.tenant_id, code=ref.LOGIN_STORE).id
    return [
        (
            "敏感肌且买过精华",
            {
                "op": "and",
                "rules": [
                    {"op": "has_tag", "tag_id": tag[("肤质", "敏感肌")]},
                    {"op": "has_tag", "tag_id": tag[("购买品类", "精华")]},
                ],
            },
        ),
        (
            "高价值沉睡客户",
            {
                "op": "and",
                "rules": [
                    {"op": "orders", "measure": "amount_cents", "cmp": "gte", "value": 100_000},
                    {"op": "lifecycle", "stages": ["dormant"]},
                ],
            },
        ),
        (
            "近30天活跃未购",
            {
                "op": "and",
                "rules": [
                    {"op": "event_count", "type": "message.received", "cmp": "gte", "value": 1, "days": 30},
                    {"op": "orders", "measure": "count", "cmp": "eq", "value": 0},
                ],
            },
        ),
        ("上海旗舰店的客户", {"op": "follow", "store_ids": [login_store]}),
    ]


def _rules(run: DemoRun) -> list[dict[str, object]]:
    tag = run.tag_ids()
    return [
        {
            "name": "近期购买分层",
            "kind": TagRule.Kind.RFM,
            "params": {
                "metric": "recency",
                "bands": [
                    {"tag_id": tag[("意向", "高意向")], "min": 0, "max": 30},
                    {"tag_id": tag[("意向", "浏览未购")], "min": 180, "max": None},
                ],
            },
        },
        {
            "name": "买过精华",
            "kind": TagRule.Kind.PURCHASE,
            "tag_id": tag[("购买品类", "精华")],
            "params": {"product_series": "精华"},
        },
        {
            "name": "常来咨询",
            "kind": TagRule.Kind.BEHAVIOUR,
            "tag_id": tag[("意向", "咨询价格")],
            "params": {"event_type": "message.received", "min_count": 5, "within_days": 30},
        },
    ]


def operations_total(run: DemoRun) -> int:
    return SEGMENTS + RULES + LEADS


def demo_operations_create(*, run: DemoRun) -> int:
    """Phase `operations`: segments, tagging rules and leads, each skipped when it is already there."""
    actor = Actor.system(run.tenant_id)
    made = 0
    existing_segments = set(Segment.objects.filter(tenant_id=run.tenant_id).values_list("name", flat=True))
    for name, rule in _segments(run):
        if name not in existing_segments:
            segment_create(actor=actor, name=name, rule=rule)
            made += 1
        run.reporter.advance(1)
    existing_rules = set(TagRule.objects.filter(tenant_id=run.tenant_id).values_list("name", flat=True))
    for spec in _rules(run):
        if spec["name"] not in existing_rules:
            tag_rule_create(actor=actor, **spec)  # type: ignore[arg-type]
            made += 1
        run.reporter.advance(1)
    if not Lead.objects.filter(tenant_id=run.tenant_id).exists():
        made += _leads(run, actor)
    run.reporter.advance(LEADS)
    return made


def _leads(run: DemoRun, actor: Actor) -> int:
    """Leads from ads and live streams: half assigned to the login store's guides, half waiting in the pool."""
    rng = random.Random(run.load.seed * 31 + 7)
    guides = list(
        Guide.objects.filter(
            tenant_id=run.tenant_id, store__code=ref.LOGIN_STORE, kind=Guide.Kind.GUIDE, status=Guide.Status.ACTIVE
        )
        .order_by("id")
        .values_list("id", flat=True)
    )
    made = 0
    for i in range(LEADS):
        name = rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(_GIVEN)
        phone = f"13{rng.randint(5, 9)}{rng.randint(0, 99_999_999):08d}"
        try:
            lead = lead_create(
                actor=actor, name=name, phone=phone, source=LEAD_SOURCES[i % 4], intent_level=rng.randint(1, 5)
            )
        except Conflict:
            continue  # the same invented number twice
        if guides and i % 2 == 0:
            lead_assign(actor=actor, lead_id=lead.id, guide_id=guides[i // 2 % len(guides)])
        made += 1
    return made
