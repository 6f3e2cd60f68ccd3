"""Tag catalogue and customer tagging."""

from __future__ import annotations

import pytest

from siyu.analytics.models import Event
from siyu.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from siyu.customers.selectors import customer_list
from siyu.tags.models import CustomerTag, TagSource
from siyu.tags.services import customer_tag_add, customer_tag_remove, tag_create, tag_group_create
from siyu.testing import World


def test_tag_filter_and_source(world: World) -> None:
    hq = world.actor("hq")
    ids = set(customer_list(actor=hq, tag_ids=[world.tags["护肤"].id]).values_list("id", flat=True))
    assert ids == {world.customers["c1"].id, world.customers["c3"].id}
    both = customer_list(actor=hq, tag_ids=[world.tags["护肤"].id, world.tags["彩妆"].id])
    assert list(both) == []
    assert CustomerTag.objects.get(customer=world.customers["c1"]).source == TagSource.MANUAL


def test_tagging_twice_is_idempotent(world: World) -> None:
    hq = world.actor("hq")
    c1, tag = world.customers["c1"], world.tags["护肤"]
    before = Event.objects.filter(type="tag.added").count()
    customer_tag_add(actor=hq, customer_id=c1.id, tag_id=tag.id, source=TagSource.KEYWORD)
    assert CustomerTag.objects.get(customer=c1, tag=tag).source == TagSource.MANUAL
    assert Event.objects.filter(type="tag.added").count() == before


def test_guide_tags_only_own_customers(world: World) -> None:
    guide = world.actor("guide1")
    customer_tag_add(actor=guide, customer_id=world.customers["c1"].id, tag_id=world.tags["彩妆"].id)
    with pytest.raises(NotFound):
        customer_tag_add(actor=guide, customer_id=world.customers["c2"].id, tag_id=world.tags["护肤"].id)


def test_other_brand_tag_is_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        customer_tag_add(
            actor=world.actor("outsider"), customer_id=world.customers["b1"].id, tag_id=world.tags["护肤"].id
        )


def test_remove(world: World) -> None:
    hq = world.actor("hq")
    assert customer_tag_remove(actor=hq, customer_id=world.customers["c1"].id, tag_id=world.tags["护肤"].id)
    assert not customer_tag_remove(actor=hq, customer_id=world.customers["c1"].id, tag_id=world.tags["护肤"].id)
    assert Event.objects.filter(type="tag.removed").count() == 1


def test_catalogue_rules(world: World) -> None:
    hq = world.actor("hq")
    with pytest.raises(ValidationFailed) as info:
        tag_group_create(actor=hq, name="组" * 31)
    assert info.value.field == "name"
    with pytest.raises(Conflict):
        tag_group_create(actor=hq, name="兴趣")
    with pytest.raises(Conflict):
        tag_create(actor=hq, group_id=world.tags["护肤"].group_id, name="护肤")
    with pytest.raises(PermissionDenied):
        tag_create(actor=world.actor("store1"), group_id=world.tags["护肤"].group_id, name="香氛")
    with pytest.raises(NotFound):
        tag_create(actor=world.actor("outsider"), group_id=world.tags["护肤"].group_id, name="香氛")


@pytest.mark.parametrize("order", [-1, 2**31, True])
def test_order_out_of_range_is_refused(world: World, order: int) -> None:
    hq = world.actor("hq")
    with pytest.raises(ValidationFailed) as info:
        tag_group_create(actor=hq, name="新组", order=order)
    assert info.value.field == "order"
    with pytest.raises(ValidationFailed):
        tag_create(actor=hq, group_id=world.tags["护肤"].group_id, name="新标签", order=order)
