"""Customer writes: validation names the field, nothing is half-written, scopes are enforced."""

from __future__ import annotations

import pytest

from siyu.analytics.models import Event
from siyu.core.errors import Conflict, NotFound, ValidationFailed
from siyu.core.models import AuditLog
from siyu.customers.models import Customer, FollowRelation, Identity
from siyu.customers.selectors import customer_list
from siyu.customers.services import (
    IdentityInput,
    customer_create,
    customer_reveal,
    customer_update,
    follow_relation_add,
    follow_relation_delete,
)
from siyu.testing import World


def _counts() -> tuple[int, int, int]:
    return Customer.objects.count(), Identity.objects.count(), Event.objects.count()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"phone": "12345"}, "phone"),
        ({"name": "名" * 65}, "name"),
        ({"gender": 7}, "gender"),
        ({"lifecycle_stage": "vip"}, "lifecycle_stage"),
        ({"identities": [IdentityInput(kind="qq", value="1")]}, "identities.kind"),
    ],
)
def test_create_rejects_bad_input_naming_the_field(world: World, kwargs: dict, field: str) -> None:
    before = _counts()
    with pytest.raises(ValidationFailed) as info:
        customer_create(actor=world.actor("hq"), **kwargs)
    assert info.value.field == field
    assert _counts() == before


def test_duplicate_phone_conflicts_and_writes_nothing(world: World) -> None:
    before = _counts()
    with pytest.raises(Conflict):
        customer_create(actor=world.actor("hq"), name="重复", phone="13800000002")
    assert _counts() == before


def test_same_phone_in_another_brand_is_allowed(world: World) -> None:
    # 13800000002 exists in brand A only; brand B may hold it too.
    customer = customer_create(actor=world.actor("outsider"), name="李华", phone="13800000002")
    assert customer.tenant_id == world.tenant_b.id


def test_create_writes_event_and_audit(world: World) -> None:
    hq = world.actor("hq")
    customer = customer_create(actor=hq, name="新客", phone="13911112222", source="api")
    assert Event.objects.get(customer_id=customer.id, type="customer.created").properties == {"source": "api"}
    assert AuditLog.objects.get(action="customer.create", target_id=str(customer.id)).actor_id == hq.user_id


def test_guide_creates_inside_own_scope(world: World) -> None:
    guide = world.actor("guide1")
    with pytest.raises(ValidationFailed) as info:
        customer_create(actor=guide, name="无主")
    assert info.value.field == "owner_guide_id"
    customer = customer_create(actor=guide, name="自有", owner_guide_id=world.guides["G1"].id)
    assert customer.id in set(customer_list(actor=guide).values_list("id", flat=True))
    with pytest.raises(NotFound):
        customer_create(actor=guide, name="越权", owner_guide_id=world.guides["G2"].id)


def test_update_out_of_scope_is_not_found_and_changes_nothing(world: World) -> None:
    c2 = world.customers["c2"]
    with pytest.raises(NotFound):
        customer_update(actor=world.actor("store1"), customer_id=c2.id, changes={"city": "上海"})
    c2.refresh_from_db()
    assert c2.city == "杭州"


def test_update_phone_moves_the_identity(world: World) -> None:
    hq = world.actor("hq")
    c1 = world.customers["c1"]
    customer_update(actor=hq, customer_id=c1.id, changes={"phone": "13977778888", "intent_level": 3})
    assert [c.id for c in customer_list(actor=hq, q="13977778888")] == [c1.id]
    assert list(customer_list(actor=hq, q=world.phones["c1"])) == []
    with pytest.raises(Conflict):
        customer_update(actor=hq, customer_id=c1.id, changes={"phone": world.phones["c2"]})
    with pytest.raises(ValidationFailed) as info:
        customer_update(actor=hq, customer_id=c1.id, changes={"tenant_id": 2})
    assert info.value.field == "tenant_id"


def test_reveal_audits(world: World) -> None:
    store1 = world.actor("store1")
    data = customer_reveal(actor=store1, customer_id=world.customers["c1"].id, ip="127.0.0.1")
    assert data["phone"] == world.phones["c1"]
    assert data["name"] == world.names["c1"]
    row = AuditLog.objects.get(action="pii.reveal")
    assert (row.actor_id, row.target_id, row.ip) == (store1.user_id, str(world.customers["c1"].id), "127.0.0.1")
    with pytest.raises(NotFound):
        customer_reveal(actor=store1, customer_id=world.customers["c2"].id)
    assert AuditLog.objects.filter(action="pii.reveal").count() == 1


def test_follow_relation_delete_keeps_lost_customer_visible(world: World) -> None:
    hq = world.actor("hq")
    c1, g1 = world.customers["c1"], world.guides["G1"]
    relation = follow_relation_delete(actor=hq, customer_id=c1.id, guide_id=g1.id, by_customer=True)
    assert relation.status == FollowRelation.Status.DELETED_BY_CUSTOMER
    assert Event.objects.filter(customer_id=c1.id, type="contact.deleted_by_customer").count() == 1
    # The store that lost the customer still sees them (for loss follow-up).
    assert c1.id in set(customer_list(actor=world.actor("store1")).values_list("id", flat=True))
    follow_relation_add(actor=hq, customer_id=c1.id, guide_id=g1.id, external_userid="wmc1")
    relation.refresh_from_db()
    assert relation.status == FollowRelation.Status.ACTIVE
    assert relation.deleted_at is None


def test_state_longer_than_wecom_limit_is_rejected(world: World) -> None:
    with pytest.raises(ValidationFailed) as info:
        follow_relation_add(
            actor=world.actor("hq"),
            customer_id=world.customers["c5"].id,
            guide_id=world.guides["G1"].id,
            external_userid="wmx",
            state="x" * 31,
        )
    assert info.value.field == "state"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"city": "杭\x00州"}, "city"),
        ({"name": "王\x07"}, "name"),
        ({"source": "s" * 65}, "source"),
        ({"phone": "138abc00000001"}, "phone"),
        ({"identities": [IdentityInput(kind="unionid", value="u\x00")]}, "identities.value"),
    ],
)
def test_control_characters_and_junk_are_refused(world: World, kwargs: dict, field: str) -> None:
    before = _counts()
    with pytest.raises(ValidationFailed) as info:
        customer_create(actor=world.actor("hq"), **kwargs)
    assert info.value.field == field
    assert _counts() == before
