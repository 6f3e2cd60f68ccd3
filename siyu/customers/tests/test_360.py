"""Customer 360 (客户360): the console page shows each section — follow relations (guide, since, remark, add way,
channel state), groups, tags by source with the rule that applied each, the lifecycle stage linked to the kanban
(and the hold of a hand move), intent, owner, orders with their total and last date — and the timeline filters by
type and date range. Coupons and points have no models yet, so the page has no such sections."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from siyu.analytics.services import event_record
from siyu.commerce.models import Order
from siyu.customers import lifecycle
from siyu.groups.models import CustomerGroup, GroupMember
from siyu.tags.models import TagSource
from siyu.tags.services import customer_tag_add
from siyu.testing import PASSWORD, World


@pytest.fixture
def c1(world: World) -> int:
    hq = world.actor("hq")
    c1 = world.customers["c1"]
    now = timezone.now()
    group = CustomerGroup.objects.create(
        tenant=world.tenant_a, chat_id="wr-360", name="澄光会员群", owner=world.guides["G1"], created_at=now,
        updated_at=now, member_count=12,
    )  # fmt: skip
    GroupMember.objects.create(tenant=world.tenant_a, group=group, member_type=2, userid="wmc1", customer=c1,
                               join_time=now)  # fmt: skip
    customer_tag_add(actor=hq, customer_id=c1.id, tag_id=world.tags["彩妆"].id, source=TagSource.KEYWORD,
                     rule="keyword_rule:7")  # fmt: skip
    for no, day, cents in (("YZ-1", 1, 19900), ("YZ-2", 20, 5000)):
        Order.objects.create(tenant=world.tenant_a, customer=c1, shop="youzan", order_no=no, amount_cents=cents,
                             paid_at=dt.datetime(2026, 2, day, 10, tzinfo=dt.UTC))  # fmt: skip
    chatted = dt.datetime(2026, 2, 10, 9, tzinfo=dt.UTC)
    props = {"guide_id": world.guides["G1"].id}
    event_record(tenant_id=world.tenant_a.id, type="message.received", customer_id=c1.id, occurred_at=chatted,
                 properties=props)  # fmt: skip
    lifecycle.customer_stage_move(actor=hq, customer_id=c1.id, stage="repeat")
    return c1.id


def _get(persona: str, url: str) -> str:
    client = Client()
    assert client.login(username=persona, password=PASSWORD)
    answer = client.get(url)
    assert answer.status_code == 200, answer.status_code
    return answer.content.decode()


def test_360_shows_every_section(world: World, c1: int) -> None:
    html = _get("guide1", f"/customers/{c1}/")
    # Follow relation: guide, added at, add way, channel state.
    assert "导购1" in html
    added = timezone.localtime(dt.datetime(2026, 1, 5, 10, 5, tzinfo=dt.UTC))
    assert added.strftime("%Y-%m-%d %H:%M") in html
    assert "store-S1" in html
    # Groups (read-only), with owner and size.
    assert 'data-group-id="' in html
    assert "澄光会员群" in html
    # Tags grouped by source, each with its rule.
    assert 'data-tag-rule="keyword_rule:7"' in html
    # Lifecycle stage, linked to the kanban, with the hold of the hand move.
    assert 'href="/customers/lifecycle/"' in html
    assert 'id="stage-stat"' in html
    assert timezone.localtime(timezone.now() + dt.timedelta(days=30)).strftime("%Y-%m-%d") in html
    # Orders: total and last order date.
    assert "YZ-1" in html
    assert "YZ-2" in html
    assert 'id="order-summary"' in html
    assert "249.00" in html
    assert "2026-02-20" in html
    # The timeline shows the stage change, by hand.
    assert 'data-event-type="customer.stage_changed"' in html
    # No coupons or points sections: those contexts have no data yet.
    assert "coupon" not in html.lower()


def test_timeline_filters_by_type_and_date_range(world: World, c1: int) -> None:
    base = f"/customers/{c1}/timeline/"
    html = _get("hq", f"{base}?since=2026-02-01&until=2026-02-28")
    assert html.count('data-event-type="message.received"') == 1
    assert 'data-event-type="customer.stage_changed"' not in html
    assert 'data-event-type="contact.added"' not in html  # added in January
    html = _get("hq", f"{base}?type=customer.stage_changed")
    assert html.count('class="tl-item"') == 1
    html = _get("hq", f"{base}?since=not-a-date")  # ignored, not a 500
    assert 'data-event-type="contact.added"' in html


def test_360_is_scoped(world: World, c1: int) -> None:
    client = Client()
    assert client.login(username="store1", password=PASSWORD)
    assert client.get(f"/customers/{world.customers['c2'].id}/").status_code == 404
    assert client.get(f"/customers/{world.customers['c2'].id}/timeline/?since=2026-01-01").status_code == 404
