"""The authorisation matrix: every operation of the API × every persona, plus anonymous and bad tokens.

Each persona must see exactly its scope (siyu.testing.VISIBLE) in lists and details; ids of other brands or
outside the scope answer 404; and a refused write leaves the database untouched. `MATRIX` must name every
operation the API registers: `test_matrix_covers_every_operation` fails when an endpoint is added without
its row here.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from siyu.analytics.models import Event
from siyu.api.api import api
from siyu.api.models import APIToken
from siyu.api.services import api_token_create, api_token_revoke
from siyu.api.tests.conftest import PERSONAS, ApiClient
from siyu.core import pii
from siyu.core.models import AuditLog, Franchisee, Guide, Region, Store
from siyu.core.scopes import Actor
from siyu.customers.models import Customer, FollowRelation, Identity
from siyu.inheritance.models import Transfer, UnassignedCustomer
from siyu.inheritance.services import transfer_start
from siyu.tags.models import CustomerTag, Tag, TagGroup
from siyu.tags.services import customer_tag_add, tag_create, tag_group_create
from siyu.testing import GUIDES_IN_SCOPE, VISIBLE, World

TARGETS = ["c1", "c2", "c3", "c4", "c5", "b1"]
BRAND = {p: ("b" if p == "outsider" else "a") for p in PERSONAS}
STORES_IN_SCOPE = {
    "hq": {"S1", "S2", "S3"},
    "region1": {"S1", "S2"},
    "store1": {"S1"},
    "guide1": set(),
    "franchisee1": {"S1", "S3"},
    "outsider": {"B1"},
}
REGIONS_IN_SCOPE = {
    "hq": {("a", "R1"), ("a", "R2")},
    "region1": {("a", "R1")},
    "store1": {("a", "R1")},
    "guide1": set(),
    "franchisee1": {("a", "R1"), ("a", "R2")},
    "outsider": {("b", "R1")},
}
FRANCHISEES_IN_SCOPE = {
    "hq": {"F1"},
    "region1": {"F1"},
    "store1": {"F1"},
    "guide1": set(),
    "franchisee1": {"F1"},
    "outsider": set(),
}
EXPECTED_ME = {
    "hq": ("chengguang", "hq_admin", {}),
    "region1": ("chengguang", "region_manager", {"region_id": "R1"}),
    "store1": ("chengguang", "store_manager", {"store_id": "S1"}),
    "guide1": ("chengguang", "guide", {"guide_id": "G1"}),
    "franchisee1": ("chengguang", "franchisee", {"franchisee_id": "F1"}),
    "outsider": ("yuanshan", "hq_admin", {}),
}


def visible(persona: str) -> set[str]:
    """Customers the persona sees among TARGETS: its VISIBLE set, plus brand B's own customer for the outsider."""
    return VISIBLE[persona] | ({"b1"} if persona == "outsider" else set())


@dataclass
class Ctx:
    world: World
    persona: str
    client: ApiClient
    # Brand B's tag group and tag, so tag reads and writes can be checked across brands.
    b_group: TagGroup
    b_tag: Tag
    # A tag of brand A no customer carries yet.
    a_fresh_tag: Tag

    def cid(self, key: str) -> int:
        return self.world.customers[key].id

    def own_tag(self) -> Tag:
        return self.b_tag if BRAND[self.persona] == "b" else self.a_fresh_tag


def db_state() -> dict[str, int]:
    """Row counts of everything an endpoint could write: a refused request must leave them all unchanged."""
    models = (Customer, Identity, FollowRelation, CustomerTag, Tag, TagGroup, Event, AuditLog)
    return {m.__name__: m.objects.count() for m in models}


def assert_not_found(answer: Any, field: str) -> None:
    assert answer.status == 404, answer.body
    assert answer.body["field"] == field
    assert answer.body["detail"].endswith("not found")


# --- one check per operation -------------------------------------------------------------------------------


def check_me(ctx: Ctx) -> None:
    slug, role, anchors = EXPECTED_ME[ctx.persona]
    w = ctx.world
    by_kind = {"region_id": w.regions, "store_id": w.stores, "franchisee_id": w.franchisees, "guide_id": w.guides}
    scope = dict.fromkeys(("region_id", "store_id", "franchisee_id", "guide_id"))
    scope.update({k: by_kind[k][v].id for k, v in anchors.items()})
    answer = ctx.client.get("/me")
    assert answer.status == 200
    assert answer.body == {
        "tenant": {
            "id": w.memberships[ctx.persona].tenant_id,
            "slug": slug,
            "name": "澄光" if slug == "chengguang" else "远山",
        },
        "user_id": w.users[ctx.persona].pk,
        "username": ctx.persona,
        "role": role,
        "scope": scope,
    }


def check_customer_list(ctx: Ctx) -> None:
    answer = ctx.client.get("/customers")
    assert answer.status == 200
    assert ctx.world.customer_keys({c["id"] for c in answer.body["items"]}) == visible(ctx.persona)
    assert answer.body["count"] == len(visible(ctx.persona))
    names = {c["id"]: c["name_masked"] for c in answer.body["items"]}
    for key in visible(ctx.persona):
        assert names[ctx.cid(key)] == pii.mask_name(ctx.world.names[key])
    # Filtering by brand A's tag: only the tagged customers in scope; another brand's tag is not found.
    tagged = ctx.client.get("/customers", tag=ctx.world.tags["护肤"].id)
    if BRAND[ctx.persona] == "a":
        assert ctx.world.customer_keys({c["id"] for c in tagged.body["items"]}) == visible(ctx.persona) & {"c1", "c3"}
    else:
        assert_not_found(tagged, "tag_id")
    # Filtering by a store or guide outside the scope is a 404, never an empty page that confirms it exists.
    for code, store in ctx.world.stores.items():
        answer = ctx.client.get("/customers", store_id=store.id)
        assert answer.status == (200 if code in STORES_IN_SCOPE[ctx.persona] else 404)
    for code, guide in ctx.world.guides.items():
        answer = ctx.client.get("/customers", guide_id=guide.id)
        assert answer.status == (200 if code in GUIDES_IN_SCOPE[ctx.persona] else 404)


def check_customer_get(ctx: Ctx) -> None:
    for key in TARGETS:
        answer = ctx.client.get(f"/customers/{ctx.cid(key)}")
        if key in visible(ctx.persona):
            assert answer.status == 200
            assert answer.body["id"] == ctx.cid(key)
            assert answer.body["name_masked"] == pii.mask_name(ctx.world.names[key])
            assert answer.body["phone_masked"] == pii.mask_phone(ctx.world.phones[key])
            assert ctx.world.phones[key] not in json.dumps(answer.body)
            phone = [i for i in answer.body["identities"] if i["kind"] == "phone"]
            assert phone == [{"kind": "phone", "value": None, "created_at": phone[0]["created_at"]}]
        else:
            assert_not_found(answer, "customer_id")


def check_customer_create(ctx: Ctx) -> None:
    for n, (code, guide) in enumerate(sorted(ctx.world.guides.items())):
        before = db_state()
        phone = f"1390000{n:04d}"
        answer = ctx.client.post("/customers", {"name": "新客", "phone": phone, "owner_guide_id": guide.id})
        if code in GUIDES_IN_SCOPE[ctx.persona]:
            assert answer.status == 201, answer.body
            created = Customer.objects.get(id=answer.body["id"])
            assert created.tenant_id == ctx.world.memberships[ctx.persona].tenant_id
            assert created.owner_guide_id == guide.id
            # The creator can see what it created: the new customer lands inside its scope.
            assert ctx.client.get(f"/customers/{created.id}").status == 200
        else:
            assert_not_found(answer, "guide_id")
            assert db_state() == before
            assert not Customer.objects.filter(phone_hash=pii.phone_hash(phone)).exists()
    before = db_state()
    answer = ctx.client.post("/customers", {"name": "无主"})
    if ctx.persona in {"hq", "outsider"}:
        assert answer.status == 201
    else:
        assert (answer.status, answer.body["field"]) == (422, "owner_guide_id")
        assert db_state() == before


def check_customer_update(ctx: Ctx) -> None:
    for key in TARGETS:
        before = db_state()
        answer = ctx.client.patch(f"/customers/{ctx.cid(key)}", {"city": "苏州", "intent_level": 3})
        customer = Customer.objects.get(id=ctx.cid(key))
        if key in visible(ctx.persona):
            assert answer.status == 200
            assert (answer.body["city"], answer.body["intent_level"]) == ("苏州", 3)
            assert (customer.city, customer.intent_level) == ("苏州", 3)
            assert Event.objects.filter(customer_id=customer.id, type="customer.updated").count() == 1
        else:
            assert_not_found(answer, "customer_id")
            assert (customer.city, customer.intent_level) == (ctx.world.customers[key].city, 0)
            assert db_state() == before


def check_customer_reveal(ctx: Ctx) -> None:
    for key in TARGETS:
        before = db_state()
        answer = ctx.client.post(f"/customers/{ctx.cid(key)}/reveal")
        audits = AuditLog.objects.filter(action="pii.reveal", target_id=str(ctx.cid(key)))
        if key in visible(ctx.persona):
            assert answer.status == 200
            assert answer.body == {"name": ctx.world.names[key], "phone": ctx.world.phones[key], "address": ""}
            audit = audits.get()
            assert (audit.actor_id, audit.ip) == (ctx.world.users[ctx.persona].pk, "127.0.0.1")
        else:
            assert_not_found(answer, "customer_id")
            assert not audits.exists()
            assert db_state() == before


def check_customer_timeline(ctx: Ctx) -> None:
    for key in TARGETS:
        answer = ctx.client.get(f"/customers/{ctx.cid(key)}/timeline")
        if key in visible(ctx.persona):
            assert answer.status == 200
            expected = set(Event.objects.filter(customer_id=ctx.cid(key)).values_list("id", flat=True))
            assert {e["id"] for e in answer.body["items"]} == expected
            assert answer.body["count"] == len(expected) > 0
        else:
            assert_not_found(answer, "customer_id")


def check_customer_tag_add(ctx: Ctx) -> None:
    tag = ctx.own_tag()
    for key in TARGETS:
        before = db_state()
        answer = ctx.client.post(f"/customers/{ctx.cid(key)}/tags", {"tag_id": tag.id})
        exists = CustomerTag.objects.filter(customer_id=ctx.cid(key), tag=tag).exists()
        if key in visible(ctx.persona):
            assert answer.status == 200
            assert tag.id in {t["id"] for t in answer.body["tags"]}
            assert exists
        else:
            assert_not_found(answer, "customer_id")
            assert not exists
            assert db_state() == before
    # A customer in scope with the other brand's tag: the tag is not found, nothing is written.
    mine = sorted(visible(ctx.persona))[0]
    foreign = ctx.world.tags["护肤"] if BRAND[ctx.persona] == "b" else ctx.b_tag
    before = db_state()
    assert_not_found(ctx.client.post(f"/customers/{ctx.cid(mine)}/tags", {"tag_id": foreign.id}), "tag_id")
    assert db_state() == before


def check_customer_tag_remove(ctx: Ctx) -> None:
    for key in TARGETS:
        brand_b = key == "b1"
        tenant_id = ctx.world.tenant_b.id if brand_b else ctx.world.tenant_a.id
        tag = ctx.b_tag if brand_b else ctx.world.tags["彩妆"]
        customer_tag_add(actor=Actor.system(tenant_id), customer_id=ctx.cid(key), tag_id=tag.id)
    for key in TARGETS:
        tag = ctx.b_tag if key == "b1" else ctx.world.tags["彩妆"]
        before = db_state()
        answer = ctx.client.delete(f"/customers/{ctx.cid(key)}/tags/{tag.id}")
        exists = CustomerTag.objects.filter(customer_id=ctx.cid(key), tag=tag).exists()
        if key in visible(ctx.persona):
            assert (answer.status, answer.body) == (204, None)
            assert not exists
        else:
            # Either the customer or (for the other brand's tag) the tag is not found; nothing is removed.
            assert answer.status == 404
            assert answer.body["field"] in {"customer_id", "tag_id"}
            assert exists
            assert db_state() == before


def check_tag_group_list(ctx: Ctx) -> None:
    answer = ctx.client.get("/tag-groups")
    assert answer.status == 200
    got = {g["name"]: {t["name"] for t in g["tags"]} for g in answer.body}
    assert got == ({"会员": {"VIP"}} if BRAND[ctx.persona] == "b" else {"兴趣": {"彩妆", "敏感肌", "护肤"}})


def check_tag_group_create(ctx: Ctx) -> None:
    before = db_state()
    answer = ctx.client.post("/tag-groups", {"name": "季节", "tags": ["春", "夏"]})
    if ctx.persona in {"hq", "outsider"}:
        assert answer.status == 201
        group = TagGroup.objects.get(id=answer.body["id"])
        assert group.tenant_id == ctx.world.memberships[ctx.persona].tenant_id
        assert sorted(group.tags.values_list("name", flat=True)) == ["夏", "春"]
    else:
        assert answer.status == 403
        assert answer.body == {"detail": "only HQ can change the brand's tag catalogue", "field": None}
        assert db_state() == before


def check_tag_create(ctx: Ctx) -> None:
    a_group = ctx.world.tags["护肤"].group
    for group, brand in ((a_group, "a"), (ctx.b_group, "b")):
        before = db_state()
        answer = ctx.client.post(f"/tag-groups/{group.id}/tags", {"name": "新标签"})
        if ctx.persona not in {"hq", "outsider"}:
            assert answer.status == 403
            assert db_state() == before
        elif BRAND[ctx.persona] == brand:
            assert answer.status == 201
            assert Tag.objects.get(id=answer.body["id"]).group_id == group.id
        else:
            assert_not_found(answer, "group_id")
            assert db_state() == before


def _ids(answer: Any) -> set[int]:
    assert answer.status == 200
    assert answer.body["count"] == len(answer.body["items"])
    return {row["id"] for row in answer.body["items"]}


def check_region_list(ctx: Ctx) -> None:
    tenants = {"a": ctx.world.tenant_a, "b": ctx.world.tenant_b}
    expected = {Region.objects.get(tenant=tenants[b], code=c).id for b, c in REGIONS_IN_SCOPE[ctx.persona]}
    assert _ids(ctx.client.get("/regions")) == expected


def check_store_list(ctx: Ctx) -> None:
    expected = {ctx.world.stores[s].id for s in STORES_IN_SCOPE[ctx.persona]}
    assert _ids(ctx.client.get("/stores")) == expected
    assert Store.objects.filter(id__in=expected).count() == len(expected)


def check_franchisee_list(ctx: Ctx) -> None:
    expected = {ctx.world.franchisees[f].id for f in FRANCHISEES_IN_SCOPE[ctx.persona]}
    assert _ids(ctx.client.get("/franchisees")) == expected
    assert Franchisee.objects.filter(id__in=expected).count() == len(expected)


def check_guide_list(ctx: Ctx) -> None:
    expected = {ctx.world.guides[g].id for g in GUIDES_IN_SCOPE[ctx.persona]}
    assert _ids(ctx.client.get("/guides")) == expected
    assert Guide.objects.filter(id__in=expected).count() == len(expected)


# Inheritance: HQ, region and store managers start transfers of guides in their scope (to a guide in scope or the
# brand IP); franchisees see their stores' transfers; guides see none. Brand A has no WeCom connection here, so a
# started transfer keeps its customers pending with the reason in last_error.
MANAGERS = {"hq", "region1", "store1", "outsider"}
TRANSFER_VIEWERS = {"hq": {"G1", "G2", "G3"}, "region1": {"G1", "G2"}, "store1": {"G1"}, "franchisee1": {"G1", "G3"}}
GUIDE_CUSTOMER = {"G1": "c1", "G2": "c2", "G3": "c3"}


def _sample_transfers(world: World) -> dict[str, Transfer]:
    """One on-job transfer to the brand IP per store guide of brand A (started by the brand's system actor)."""
    return {
        code: transfer_start(
            actor=Actor.system(world.tenant_a.id),
            kind="on_job",
            handover_guide_id=world.guides[code].id,
            takeover_guide_id=world.guides["IP"].id,
            customer_ids=[world.customers[GUIDE_CUSTOMER[code]].id],
        )
        for code in ("G1", "G2", "G3")
    }


def _a_transfer(world: World) -> Transfer:
    """G1's sample transfer, started once however many requests name it."""
    found = Transfer.objects.filter(tenant=world.tenant_a, handover=world.guides["G1"]).first()
    if found is not None:
        return found
    return transfer_start(
        actor=Actor.system(world.tenant_a.id),
        kind="on_job",
        handover_guide_id=world.guides["G1"].id,
        takeover_guide_id=world.guides["IP"].id,
    )


def _depart(world: World, code: str) -> Guide:
    Guide.objects.filter(id=world.guides[code].id).update(status=Guide.Status.DEPARTED)
    return Guide.objects.get(id=world.guides[code].id)


def check_transfer_start(ctx: Ctx) -> None:
    w = ctx.world
    for code, key in sorted(GUIDE_CUSTOMER.items()):
        before, transfers = db_state(), Transfer.objects.count()
        body = {
            "kind": "on_job",
            "handover_guide_id": w.guides[code].id,
            "takeover_guide_id": w.guides["IP"].id,
            "customer_ids": [ctx.cid(key)],
            "message": "您好",
        }
        answer = ctx.client.post("/transfers", body)
        if ctx.persona in {"guide1", "franchisee1"}:
            assert (answer.status, answer.body["field"]) == (403, None)
        elif code in GUIDES_IN_SCOPE[ctx.persona]:
            assert answer.status == 201, answer.body
            transfer = Transfer.objects.get(id=answer.body["id"])
            assert (transfer.tenant_id, transfer.requested_by_id) == (w.tenant_a.id, w.users[ctx.persona].pk)
            assert [(i["customer_id"], i["status"]) for i in answer.body["items"]] == [(ctx.cid(key), "pending")]
            assert answer.body["last_error"].startswith("WeCom is not connected")
            continue
        else:
            assert_not_found(answer, "handover_guide_id")
        assert (db_state(), Transfer.objects.count()) == (before, transfers)
    # A takeover guide outside the scope is not found either (the brand IP is everyone's).
    if ctx.persona in {"region1", "store1"}:
        outside = "G3" if ctx.persona == "region1" else "G2"
        body = {"kind": "on_job", "handover_guide_id": w.guides["G1"].id, "takeover_guide_id": w.guides[outside].id}
        assert_not_found(ctx.client.post("/transfers", body), "takeover_guide_id")


def check_transfer_list(ctx: Ctx) -> None:
    transfers = _sample_transfers(ctx.world)
    expected = {transfers[code].id for code in TRANSFER_VIEWERS.get(ctx.persona, set())}
    answer = ctx.client.get("/transfers")
    assert _ids(answer) == expected
    for row in answer.body["items"]:
        assert (row["status"], row["customers"], row["takeover"]["name"]) == (
            "submitting",
            {"pending": 1},
            "好物体验官",
        )


def check_transfer_get(ctx: Ctx) -> None:
    for code, transfer in sorted(_sample_transfers(ctx.world).items()):
        answer = ctx.client.get(f"/transfers/{transfer.id}")
        if code in TRANSFER_VIEWERS.get(ctx.persona, set()):
            assert answer.status == 200
            customer = ctx.world.customers[GUIDE_CUSTOMER[code]]
            assert [i["customer_id"] for i in answer.body["items"]] == [customer.id]
            assert answer.body["items"][0]["name_masked"] == pii.mask_name(ctx.world.names[GUIDE_CUSTOMER[code]])
        else:
            assert_not_found(answer, "transfer_id")


def check_transfer_refresh(ctx: Ctx) -> None:
    for code, transfer in sorted(_sample_transfers(ctx.world).items()):
        before = db_state()
        answer = ctx.client.post(f"/transfers/{transfer.id}/refresh")
        if ctx.persona in {"guide1", "franchisee1"}:
            assert answer.status == 403
            assert db_state() == before
        elif code in TRANSFER_VIEWERS.get(ctx.persona, set()):
            assert answer.status == 200
            assert (answer.body["status"], answer.body["customers"]) == ("submitting", {"pending": 1})
        else:
            assert_not_found(answer, "transfer_id")
            assert db_state() == before


def check_transfer_to_brand_ip(ctx: Ctx) -> None:
    departed = _depart(ctx.world, "G3")
    before, transfers = db_state(), Transfer.objects.count()
    answer = ctx.client.post("/transfers/to-brand-ip", {"handover_guide_id": departed.id})
    if ctx.persona == "hq":
        assert answer.status == 201, answer.body
        assert (answer.body["kind"], answer.body["takeover"]["wecom_userid"]) == ("resigned", "brand_ip")
        assert [i["customer_id"] for i in answer.body["items"]] == [ctx.cid("c3")]
        return
    if ctx.persona in {"guide1", "franchisee1"}:
        assert answer.status == 403
    else:
        assert_not_found(answer, "handover_guide_id")
    assert (db_state(), Transfer.objects.count()) == (before, transfers)
    if ctx.persona == "store1":  # its own guide has not left: 409 naming the field
        answer = ctx.client.post("/transfers/to-brand-ip", {"handover_guide_id": ctx.world.guides["G1"].id})
        assert (answer.status, answer.body["field"]) == (409, "handover_guide_id")


def check_unassigned_customer_list(ctx: Ctx) -> None:
    w = ctx.world
    for code in ("G1", "G3"):
        UnassignedCustomer.objects.create(
            tenant=w.tenant_a,
            handover=w.guides[code],
            handover_userid=w.guides[code].wecom_userid,
            external_userid=f"wm{GUIDE_CUSTOMER[code]}",
            customer=w.customers[GUIDE_CUSTOMER[code]],
            dimission_time=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        )
    answer = ctx.client.get("/unassigned-customers")
    assert answer.status == 200
    expected = {f"wm{GUIDE_CUSTOMER[c]}" for c in TRANSFER_VIEWERS.get(ctx.persona, set()) if c in {"G1", "G3"}}
    assert {r["external_userid"] for r in answer.body["items"]} == expected
    assert answer.body["count"] == len(expected)


def check_unassigned_customer_refresh(ctx: Ctx) -> None:
    before = db_state()
    answer = ctx.client.post("/unassigned-customers/refresh")
    if ctx.persona in MANAGERS:
        assert answer.status == 200
        assert (answer.body["error"], answer.body["fetched_at"]) == ("WeCom is not connected for this brand", None)
    else:
        assert answer.status == 403
        assert db_state() == before


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # as the OpenAPI document spells it
    check: Callable[[Ctx], None]


MATRIX: dict[str, Row] = {
    "me_get": Row("get", "/api/v1/me", check_me),
    "customer_list": Row("get", "/api/v1/customers", check_customer_list),
    "customer_get": Row("get", "/api/v1/customers/{customer_id}", check_customer_get),
    "customer_create": Row("post", "/api/v1/customers", check_customer_create),
    "customer_update": Row("patch", "/api/v1/customers/{customer_id}", check_customer_update),
    "customer_reveal": Row("post", "/api/v1/customers/{customer_id}/reveal", check_customer_reveal),
    "customer_timeline": Row("get", "/api/v1/customers/{customer_id}/timeline", check_customer_timeline),
    "customer_tag_add": Row("post", "/api/v1/customers/{customer_id}/tags", check_customer_tag_add),
    "customer_tag_remove": Row("delete", "/api/v1/customers/{customer_id}/tags/{tag_id}", check_customer_tag_remove),
    "tag_group_list": Row("get", "/api/v1/tag-groups", check_tag_group_list),
    "tag_group_create": Row("post", "/api/v1/tag-groups", check_tag_group_create),
    "tag_create": Row("post", "/api/v1/tag-groups/{group_id}/tags", check_tag_create),
    "region_list": Row("get", "/api/v1/regions", check_region_list),
    "store_list": Row("get", "/api/v1/stores", check_store_list),
    "franchisee_list": Row("get", "/api/v1/franchisees", check_franchisee_list),
    "guide_list": Row("get", "/api/v1/guides", check_guide_list),
    "transfer_start": Row("post", "/api/v1/transfers", check_transfer_start),
    "transfer_list": Row("get", "/api/v1/transfers", check_transfer_list),
    "transfer_get": Row("get", "/api/v1/transfers/{transfer_id}", check_transfer_get),
    "transfer_refresh": Row("post", "/api/v1/transfers/{transfer_id}/refresh", check_transfer_refresh),
    "transfer_to_brand_ip": Row("post", "/api/v1/transfers/to-brand-ip", check_transfer_to_brand_ip),
    "unassigned_customer_list": Row("get", "/api/v1/unassigned-customers", check_unassigned_customer_list),
    "unassigned_customer_refresh": Row(
        "post", "/api/v1/unassigned-customers/refresh", check_unassigned_customer_refresh
    ),
}


# The rows other contexts keep next to their tests: operationId → (method, path, check), and for each operation a
# request HQ can make successfully (for the credential tests). Each `siyu/<context>/tests/api_matrix*.py` module
# lists its pairs in `API_MATRIX`; they are found here, so a context adds its rows without editing this file.
def _context_rows() -> tuple[tuple[dict[str, Any], Callable[[World, str], tuple[str, str, Any]]], ...]:
    rows = []
    for path in sorted(Path(__file__).resolve().parents[2].glob("*/tests/api_matrix*.py")):
        module = importlib.import_module(f"siyu.{path.parent.parent.name}.tests.{path.stem}")
        rows.extend(module.API_MATRIX)
    return tuple(rows)


CONTEXT_ROWS = _context_rows()
for checks, _request in CONTEXT_ROWS:
    MATRIX.update({op: Row(method, path, check) for op, (method, path, check) in checks.items()})


def registered_operations() -> dict[str, tuple[str, str]]:
    """operationId → (method, path) for every operation the NinjaAPI registers (read from its OpenAPI document)."""
    schema = api.get_openapi_schema(path_prefix="/api/v1/")
    ops: dict[str, tuple[str, str]] = {}
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            ops[operation["operationId"]] = (method, path)
    return ops


OPERATIONS = registered_operations()


def test_matrix_covers_every_operation() -> None:
    assert {op: (row.method, row.path) for op, row in MATRIX.items()} == OPERATIONS


@pytest.fixture
def extra_tags(world: World) -> tuple[TagGroup, Tag, Tag]:
    group = tag_group_create(actor=world.actor("outsider"), name="会员", tags=["VIP"])
    fresh = tag_create(actor=world.actor("hq"), group_id=world.tags["护肤"].group_id, name="敏感肌")
    return group, group.tags.get(), fresh


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("operation_id", sorted(OPERATIONS))
def test_persona_sees_exactly_its_scope(
    world: World, tokens: dict[str, str], extra_tags: tuple[TagGroup, Tag, Tag], operation_id: str, persona: str
) -> None:
    row = MATRIX.get(operation_id)
    assert row is not None, f"{operation_id} has no row in the authorisation MATRIX"
    b_group, b_tag, a_fresh_tag = extra_tags
    client = ApiClient(tokens[persona])
    row.check(Ctx(world=world, persona=persona, client=client, b_group=b_group, b_tag=b_tag, a_fresh_tag=a_fresh_tag))


# --- no token, bad tokens ----------------------------------------------------------------------------------


def _request_for(world: World, operation_id: str) -> tuple[str, str, Any]:
    """A request HQ could make successfully, so only the credentials decide the answer."""
    for checks, request in CONTEXT_ROWS:
        if operation_id in checks:
            return request(world, operation_id)
    method, path = OPERATIONS[operation_id]
    url = path.format(
        customer_id=world.customers["c1"].id,
        tag_id=world.tags["护肤"].id,
        group_id=world.tags["护肤"].group_id,
        transfer_id=_a_transfer(world).id if "{transfer_id}" in path else 0,
    )
    bodies = {
        "customer_create": {"name": "新客", "phone": "13900009999"},
        "customer_update": {"city": "苏州"},
        "customer_tag_add": {"tag_id": world.tags["彩妆"].id},
        "tag_group_create": {"name": "季节"},
        "tag_create": {"name": "新标签"},
        "transfer_start": {  # the brand IP's customer: never part of the sample transfers
            "kind": "on_job",
            "handover_guide_id": world.guides["IP"].id,
            "takeover_guide_id": world.guides["G1"].id,
        },
    }
    if operation_id == "transfer_to_brand_ip":
        bodies[operation_id] = {"handover_guide_id": _depart(world, "G3").id}
    return method.upper(), url, bodies.get(operation_id)


def _revoked_token(world: World) -> str:
    issued = api_token_create(actor=world.actor("hq"), membership_id=world.memberships["hq"].id, name="old")
    api_token_revoke(actor=world.actor("hq"), token_id=issued.token.id)
    return issued.secret


BAD_CREDENTIALS: dict[str, Callable[[World, dict[str, str]], str | None]] = {
    "anonymous": lambda w, t: None,
    "unknown token": lambda w, t: "not-a-real-token-0000000000000000000000000",
    "empty bearer": lambda w, t: "",
    "token with a typo": lambda w, t: t["hq"][:-1] + ("A" if t["hq"][-1] != "A" else "B"),
    "revoked token": lambda w, t: _revoked_token(w),
    "overlong token": lambda w, t: "x" * 5000,
}


@pytest.mark.parametrize("operation_id", sorted(OPERATIONS))
def test_bad_credentials_are_401_and_change_nothing(world: World, tokens: dict[str, str], operation_id: str) -> None:
    method, url, body = _request_for(world, operation_id)
    for credential, make in sorted(BAD_CREDENTIALS.items()):
        token = make(world, tokens)
        before = db_state()
        answer = ApiClient().call(method, url, body=body, token=token)
        assert answer.status == 401, credential
        assert answer.body == {
            "detail": "missing, unknown or revoked API token; send Authorization: Bearer <token>",
            "field": None,
        }
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="siyu"'
        assert db_state() == before, credential


@pytest.mark.parametrize("header", ["Basic aHE6cGFzcw==", "Token abc", "Bearer", "bearer"])
def test_other_authorization_schemes_are_401(world: World, header: str) -> None:
    response = ApiClient().client.get("/api/v1/me", headers={"Authorization": header})
    assert response.status_code == 401


def test_the_console_session_does_not_authenticate_the_api(world: World) -> None:
    """A signed-in console user without a token gets 401: the API never falls back to cookies (no CSRF hole)."""
    client = ApiClient()
    client.client.force_login(world.users["hq"])
    assert client.get("/me").status == 401


def test_good_token_of_the_matrix_requests_succeeds(world: World, tokens: dict[str, str]) -> None:
    """The requests the 401 tests send are valid: with HQ's token each one succeeds, so 401 came from auth alone."""
    client = ApiClient(tokens["hq"])
    for operation_id in sorted(OPERATIONS):
        method, url, body = _request_for(world, operation_id)
        assert client.call(method, url, body=body).status in {200, 201, 202, 204}, operation_id
    assert APIToken.objects.filter(last_used_at__isnull=False).count() == 1
