"""The group-code rows of the API's authorisation matrix (siyu/api/tests/test_authorization.py imports them).

Brand A has a group live code (群活码) for each store S1..S3, over a group of the store's guide, and a brand-wide
one over the brand IP's group; brand B has one for its store B1. Each code has one invitation and one tag rule;
the codes of S1, S3 and B1 carry a group migration (社群迁移). As the router decides: HQ sees every code of its
brand, region and store managers and franchisees the codes of their stores, a guide those of its own store;
only HQ, region and store managers change codes and migrations; only HQ sets up tag rules. Another brand's or an
out-of-scope code answers 404. A refused write changes neither the database nor WeCom (the join ways).

WeCom is the emulator the test process shares, with a corp per brand (siyu.wecom.tests.emulated.world_wecom):
`group_code_request` hands back a request that is sent after it returns, so WeCom has to outlive the call. Each
test connects its own two brands to it afresh and opens the chats it needs; checks compare WeCom's join ways before
and after a request, never absolute counts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from django.utils import timezone

from siyu.core import pii
from siyu.core.models import AuditLog
from siyu.core.scopes import Actor
from siyu.groups.models import (
    CustomerGroup,
    GroupCode,
    GroupCodeSlot,
    GroupInvite,
    GroupInviteRule,
    GroupMigration,
    MigrationSource,
)
from siyu.groups.services import (
    GroupCodeInput,
    GroupInput,
    GroupMemberInput,
    GroupSlotInput,
    MigrationSourceInput,
    group_code_create,
    group_code_set_status,
    group_invite_rule_create,
    group_migration_create,
    group_upsert,
)
from siyu.tags.models import Tag
from siyu.tags.services import tag_group_create
from siyu.testing import VISIBLE, World
from siyu.wecom.models import WeComConnection
from siyu.wecom.tests.emulated import connect_world, world_corp, world_wecom


class Ctx(Protocol):
    world: World
    persona: str
    client: Any


# -- who sees and changes what -----------------------------------------------------------------------------------

CODE_KEYS = ("S1", "S2", "S3", "brand", "B1")  # in the order the fixture creates them
STORE = {"S1": "S1", "S2": "S2", "S3": "S3", "brand": None, "B1": "B1"}
OWNER = {"S1": "G1", "S2": "G2", "S3": "G3", "brand": "IP", "B1": "GB"}  # the guide owning the code's group
# Customers invited to each code by their own guide. A brand-wide tag rule invites customers of any store, so
# S1's code also has S3's customer c3: only those who see c3 see that invitation.
INVITEES = {"S1": ("c1", "c3"), "S2": ("c2",), "S3": ("c3",), "brand": ("c4",), "B1": ("b1",)}
GUIDE_OF = {"c1": "G1", "c2": "G2", "c3": "G3", "c4": "IP", "b1": "GB"}
RULE_TAG = {"S1": "护肤", "S2": "彩妆", "S3": "三店客", "brand": "品牌客", "B1": "入群"}
MIGRATED = ("S1", "S3", "B1")
SEES = {
    "hq": {"S1", "S2", "S3", "brand"},
    "region1": {"S1", "S2"},
    "store1": {"S1"},
    "guide1": {"S1"},
    "franchisee1": {"S1", "S3"},
    "outsider": {"B1"},
}
MANAGES = {"hq": SEES["hq"], "region1": SEES["region1"], "store1": SEES["store1"], "outsider": SEES["outsider"]}
READ_ONLY = {"guide1", "franchisee1"}  # see codes, never change them: 403
TAG_ADMINS = {"hq", "outsider"}  # HQ of each brand: tag rules

T0 = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)
STARTS, ENDS = dt.date(2026, 3, 1), dt.date(2026, 3, 31)


def _brand(key: str) -> str:
    return "b" if key == "B1" else "a"


def _persona_brand(persona: str) -> str:
    return "b" if persona == "outsider" else "a"


# -- WeCom: the emulator the test process shares (siyu.wecom.tests.emulated.world_wecom) ----------------------------


def _ways() -> dict[str, list[tuple[str, str, str, tuple[str, ...]]]]:
    """Every join way WeCom holds, per corp: what a refused request must leave alone."""
    emulator = world_wecom().emulator
    with emulator.lock:
        return {
            corp_id: sorted((w.config_id, w.state, w.remark, tuple(w.chat_id_list)) for w in corp.join_ways.values())
            for corp_id, corp in emulator.corps.items()
        }


def _way(brand: str, config_id: str) -> tuple[str, list[str]] | None:
    with world_wecom().emulator.lock:
        way = world_corp(brand).join_ways.get(config_id)
        return (way.state, list(way.chat_id_list)) if way else None


# -- the fixture ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    groups: dict[str, CustomerGroup]  # by code key
    codes: dict[str, GroupCode]
    invites: dict[str, list[GroupInvite]]  # by code key, in the order of INVITEES
    rules: dict[str, GroupInviteRule]
    migrations: dict[str, GroupMigration]
    free_tags: dict[str, Tag]  # per brand, a tag no rule uses yet


def _group(world: World, key: str) -> CustomerGroup:
    """A chat the code's guide opens in its brand's corp (a join way only takes chats WeCom has), mirrored as
    siyu's sync would: the owner and three customers. Made through the admin surface of whichever emulator the
    brand is connected to."""
    guide = world.guides[OWNER[key]]
    connection = WeComConnection.objects.get(tenant_id=guide.tenant_id)
    admin = connection.api_base_url.removesuffix("cgi-bin/") + "emulator/simulate/chat/create"
    body = {"corp_id": connection.corp_id, "owner": guide.wecom_userid, "name": f"{key}群"}
    response = httpx.post(admin, json=body, timeout=30)
    assert response.status_code == 200, response.text
    members = [GroupMemberInput(userid=guide.wecom_userid, member_type=1, join_time=T0)]
    members += [GroupMemberInput(userid=f"wm{key}{i}", member_type=2, join_time=T0) for i in range(3)]
    data = GroupInput(chat_id=response.json()["chat_id"], name=f"{key}群", owner_guide_id=guide.id, created_at=T0,
                      members=members)  # fmt: skip
    return group_upsert(actor=Actor.system(guide.tenant_id), data=data).group


def _actor(world: World, key: str) -> Actor:
    return world.actor("outsider" if _brand(key) == "b" else "hq")


def _new_code(world: World, f_groups: dict[str, CustomerGroup], key: str, state: str) -> GroupCode:
    store = STORE[key]
    data = GroupCodeInput(
        name=f"活码{key}",
        state=state,
        groups=[GroupSlotInput(f_groups[key].id)],
        store_id=world.stores[store].id if store else None,
    )
    code = group_code_create(actor=_actor(world, key), data=data)
    assert (code.sync_error, bool(code.qr_code)) == ("", True)
    return code


def fixture(world: World) -> Fixture:
    """Built once per world (per test), kept on the world object."""
    built: Fixture | None = getattr(world, "_group_code_fixture", None)
    if built is not None:
        return built
    connect_world(world)
    groups = {key: _group(world, key) for key in CODE_KEYS}
    codes = {key: _new_code(world, groups, key, f"code-{key}") for key in CODE_KEYS}
    tags = {
        "a": tag_group_create(actor=world.actor("hq"), name="社群", tags=["三店客", "品牌客", "新人"]),
        "b": tag_group_create(actor=world.actor("outsider"), name="社群", tags=["入群", "新客"]),
    }
    by_name = {"a": dict(world.tags), "b": {}}
    for brand, group in tags.items():
        by_name[brand].update({t.name: t for t in group.tags.all()})
    now = timezone.now()
    invites, rules, migrations = {}, {}, {}
    for key in CODE_KEYS:
        invites[key] = []
        for customer in INVITEES[key]:
            invites[key].append(GroupInvite.objects.create(
                tenant_id=codes[key].tenant_id, code=codes[key], customer=world.customers[customer],
                guide=world.guides[GUIDE_OF[customer]], status=GroupInvite.Status.INVITED, msgid=f"msg{customer}",
                created_at=now, invited_at=now,
            ))  # fmt: skip
        tag = by_name[_brand(key)][RULE_TAG[key]]
        rules[key] = group_invite_rule_create(actor=_actor(world, key), tag_id=tag.id, code_id=codes[key].id)
    for key in MIGRATED:
        migrations[key] = group_migration_create(
            actor=_actor(world, key), name=f"迁移{key}", code_id=codes[key].id, starts_on=STARTS, ends_on=ENDS,
            sources=[MigrationSourceInput("老群一", 80), MigrationSourceInput("老群二", members="阿花\n阿草")],
        )  # fmt: skip
    codes = {key: GroupCode.objects.get(id=code.id) for key, code in codes.items()}
    built = Fixture(groups, codes, invites, rules, migrations, {"a": by_name["a"]["新人"], "b": by_name["b"]["新客"]})
    world._group_code_fixture = built  # type: ignore[attr-defined]
    return built


def _state() -> tuple[Any, ...]:
    """Everything a group-code request could write, here and in WeCom."""
    return (
        list(
            GroupCode.objects.order_by("id").values_list(
                "id", "name", "status", "store_id", "config_id", "way_chat_ids", "sync_error", "synced_at"
            )
        ),
        list(GroupCodeSlot.objects.order_by("id").values_list("id", "code_id", "group_id", "position", "threshold")),
        list(GroupInviteRule.objects.order_by("id").values_list("id", "tag_id", "code_id")),
        list(GroupMigration.objects.order_by("id").values_list("id", "code_id")),
        list(MigrationSource.objects.order_by("id").values_list("id", "state", "config_id")),
        GroupInvite.objects.count(),
        AuditLog.objects.count(),
        _ways(),
    )


def _not_found(answer: Any, field: str) -> None:
    assert (answer.status, answer.body["field"]) == (404, field), answer.body
    assert answer.body["detail"].endswith("not found")


def _refused(answer: Any, before: tuple[Any, ...], status: int, field: str | None) -> None:
    assert (answer.status, answer.body["field"]) == (status, field), answer.body
    assert answer.body["detail"]
    assert _state() == before


def _write_refusal(ctx: Ctx, key: str) -> tuple[int, str | None] | None:
    """Why a change to `key`'s code is refused (status, field), or None when the persona may make it."""
    if ctx.persona in READ_ONLY:
        return 403, None
    if key not in MANAGES[ctx.persona]:
        return 404, "code_id"
    return None


# -- codes -----------------------------------------------------------------------------------------------------------


def check_code_list(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    answer = ctx.client.get("/group-codes")
    assert answer.status == 200, answer.body
    expected = [f.codes[key].id for key in reversed(CODE_KEYS) if key in SEES[ctx.persona]]  # newest first
    assert [c["id"] for c in answer.body["items"]] == expected
    assert answer.body["count"] == len(expected)
    # A search never widens the scope: brand B's code of its store "S1" is named B1 and is not found.
    found = ctx.client.get("/group-codes", q="S1")
    assert [c["id"] for c in found.body["items"]] == ([f.codes["S1"].id] if "S1" in SEES[ctx.persona] else [])


def check_code_get(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    for key in CODE_KEYS:
        answer = ctx.client.get(f"/group-codes/{f.codes[key].id}")
        if key in SEES[ctx.persona]:
            assert answer.status == 200, answer.body
            assert (answer.body["id"], answer.body["qr_code"]) == (f.codes[key].id, f.codes[key].qr_code)
            assert [g["chat_id"] for g in answer.body["groups"]] == [f.groups[key].chat_id]
        else:
            _not_found(answer, "code_id")


def check_code_stats(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    for key in CODE_KEYS:
        answer = ctx.client.get(f"/group-codes/{f.codes[key].id}/stats", days=7)
        if key in SEES[ctx.persona]:
            assert answer.status == 200, answer.body
            assert [(g["group_id"], g["members"]) for g in answer.body["groups"]] == [(f.groups[key].id, 4)]
            assert (answer.body["members"], len(answer.body["daily"]["days"])) == (4, 7)
        else:
            _not_found(answer, "code_id")


def check_code_invites(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    for key in CODE_KEYS:
        answer = ctx.client.get(f"/group-codes/{f.codes[key].id}/invites")
        if key in SEES[ctx.persona]:
            assert answer.status == 200, answer.body
            seen = VISIBLE[ctx.persona] | ({"b1"} if ctx.persona == "outsider" else set())
            expected = [
                (invite.id, ctx.world.customers[c].id, pii.mask_name(ctx.world.names[c]))
                for invite, c in reversed(list(zip(f.invites[key], INVITEES[key], strict=True)))  # newest first
                if c in seen
            ]
            assert [(i["id"], i["customer_id"], i["customer_name_masked"]) for i in answer.body["items"]] == expected
            assert answer.body["count"] == len(expected)
        else:
            _not_found(answer, "code_id")


def _code_body(world: World, f: Fixture, store: str | None, group: str, state: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "新活码", "state": state, "groups": [{"group_id": f.groups[group].id}], **extra}
    if store is not None:
        body["store_id"] = world.stores[store].id
    return body


# (store, code key whose group is used): each brand's stores, the brand-wide code, and S1 with S2's group.
CREATE_CASES = (("S1", "S1"), ("S2", "S2"), ("S3", "S3"), (None, "brand"), ("B1", "B1"), ("S1", "S2"))
NO_STORE, NO_GROUP, HQ_ONLY = (404, "store_id"), (404, "group_id"), (422, "store_id")
EXPECTED_CREATE: dict[str, tuple[Any, ...]] = {
    "hq": (201, 201, 201, 201, NO_STORE, 201),
    "region1": (201, 201, NO_STORE, HQ_ONLY, NO_STORE, 201),
    "store1": (201, NO_STORE, NO_STORE, HQ_ONLY, NO_STORE, NO_GROUP),
    "guide1": ((403, None),) * 6,
    "franchisee1": ((403, None),) * 6,
    "outsider": (NO_STORE, NO_STORE, NO_STORE, NO_GROUP, 201, NO_STORE),
}


def check_code_create(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    tenant = ctx.world.tenant_b if ctx.persona == "outsider" else ctx.world.tenant_a
    for n, ((store, group), expected) in enumerate(zip(CREATE_CASES, EXPECTED_CREATE[ctx.persona], strict=True)):
        before = _state()
        answer = ctx.client.post("/group-codes", _code_body(ctx.world, f, store, group, f"new-{n}"))
        if expected != 201:
            _refused(answer, before, *expected)
            continue
        assert answer.status == 201, answer.body
        code = GroupCode.objects.get(id=answer.body["id"])
        assert (code.tenant_id, code.store_id) == (tenant.id, ctx.world.stores[store].id if store else None)
        assert (answer.body["sync_error"], answer.body["qr_code"]) == ("", code.qr_code)
        # The join way exists in the persona's own corp, holding the chosen group.
        assert _way(_persona_brand(ctx.persona), code.config_id) == (f"new-{n}", [f.groups[group].chat_id])


def check_code_update(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    for key in CODE_KEYS:
        before = _state()
        body = _code_body(ctx.world, f, STORE[key], key, f"code-{key}", name="改名")
        body["groups"][0]["threshold"] = 150
        answer = ctx.client.call("PUT", f"/group-codes/{f.codes[key].id}", body=body)
        refusal = _write_refusal(ctx, key)
        if refusal:
            _refused(answer, before, *refusal)
            continue
        assert answer.status == 200, answer.body
        assert (answer.body["name"], answer.body["groups"][0]["threshold"]) == ("改名", 150)
        assert GroupCode.objects.get(id=f.codes[key].id).name == "改名"


def check_code_delete(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    # A spare code per key without a migration, so every persona allowed to delete one can; the fixture's
    # codes with a migration must stay (409).
    spares = {key: _new_code(ctx.world, f.groups, key, f"spare-{key}") for key in CODE_KEYS}
    for key in CODE_KEYS:
        for code in (f.codes[key], spares[key]):
            before = _state()
            answer = ctx.client.delete(f"/group-codes/{code.id}")
            refusal = _write_refusal(ctx, key)
            if refusal is None and code == f.codes[key] and key in MIGRATED:
                refusal = (409, "code_id")
            if refusal:
                _refused(answer, before, *refusal)
                assert _way(_brand(key), code.config_id) is not None
                continue
            assert (answer.status, answer.body) == (204, None)
            assert not GroupCode.objects.filter(id=code.id).exists()
            assert _way(_brand(key), code.config_id) is None  # its QR stops working in WeCom too


def _set_status(ctx: Ctx, action: str, status: str) -> None:
    f = fixture(ctx.world)
    if action == "resume":
        for key in CODE_KEYS:
            group_code_set_status(actor=_actor(ctx.world, key), code_id=f.codes[key].id, status="paused")
    for key in CODE_KEYS:
        before = _state()
        answer = ctx.client.post(f"/group-codes/{f.codes[key].id}/{action}")
        refusal = _write_refusal(ctx, key)
        if refusal:
            _refused(answer, before, *refusal)
            continue
        assert (answer.status, answer.body["status"]) == (200, status), answer.body
        assert GroupCode.objects.get(id=f.codes[key].id).status == status
        assert AuditLog.objects.filter(action=f"group_code.{action}", target_id=str(f.codes[key].id)).count() == 1


def check_code_pause(ctx: Ctx) -> None:
    _set_status(ctx, "pause", "paused")


def check_code_resume(ctx: Ctx) -> None:
    _set_status(ctx, "resume", "active")


def check_code_sync(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    GroupCode.objects.update(sync_error="WeCom timed out")  # each code waits for a retry
    for key in CODE_KEYS:
        before = _state()
        answer = ctx.client.post(f"/group-codes/{f.codes[key].id}/sync")
        # The code is looked up first: one the persona sees but may not change is 403, one it cannot see 404.
        if key not in SEES[ctx.persona]:
            _refused(answer, before, 404, "code_id")
        elif ctx.persona in READ_ONLY:
            _refused(answer, before, 403, None)
        else:
            assert (answer.status, answer.body["sync_error"]) == (200, ""), answer.body
            assert GroupCode.objects.get(id=f.codes[key].id).sync_error == ""


# -- tag rules ---------------------------------------------------------------------------------------------------


def check_rule_list(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    answer = ctx.client.get("/group-invite-rules")
    assert answer.status == 200, answer.body
    expected = [(f.rules[k].id, RULE_TAG[k], f.codes[k].id) for k in CODE_KEYS if k in SEES[ctx.persona]]
    assert [(r["id"], r["tag_name"], r["code_id"]) for r in answer.body] == expected


# (tag, code key): a free tag with the other brand's code, the other brand's tag with a code, a tag that has a
# rule already, then each brand's free tag with its own code.
RULE_CASES = (("a", "B1"), ("b", "S1"), ("taken", "S2"), ("a", "S2"), ("b", "B1"))
EXPECTED_RULE_CREATE: dict[str, tuple[Any, ...]] = {
    "hq": ((404, "code_id"), (404, "tag_id"), (409, "tag_id"), 201, (404, "tag_id")),
    "outsider": ((404, "tag_id"), (404, "code_id"), (404, "tag_id"), (404, "tag_id"), 201),
}


def check_rule_create(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    tags = {**f.free_tags, "taken": ctx.world.tags["护肤"]}
    outcomes = EXPECTED_RULE_CREATE.get(ctx.persona, ((403, None),) * len(RULE_CASES))
    for (tag, key), expected in zip(RULE_CASES, outcomes, strict=True):
        before = _state()
        answer = ctx.client.post("/group-invite-rules", {"tag_id": tags[tag].id, "code_id": f.codes[key].id})
        if expected != 201:
            _refused(answer, before, *expected)
            continue
        assert (answer.status, answer.body["tag_name"], answer.body["code_id"]) == (201, tags[tag].name,
                                                                                     f.codes[key].id)  # fmt: skip
        rule = GroupInviteRule.objects.get(id=answer.body["id"])
        assert (rule.tenant_id, rule.tag_id) == (f.codes[key].tenant_id, tags[tag].id)


def check_rule_delete(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    for key in CODE_KEYS:
        before = _state()
        answer = ctx.client.delete(f"/group-invite-rules/{f.rules[key].id}")
        if ctx.persona not in TAG_ADMINS:
            _refused(answer, before, 403, None)
        elif _brand(key) != _persona_brand(ctx.persona):
            _refused(answer, before, 404, "rule_id")
        else:
            assert (answer.status, answer.body) == (204, None)
            assert not GroupInviteRule.objects.filter(id=f.rules[key].id).exists()


# -- migrations ------------------------------------------------------------------------------------------------------


def check_migration_list(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    answer = ctx.client.get("/group-migrations")
    assert answer.status == 200, answer.body
    expected = [f.migrations[k].id for k in reversed(MIGRATED) if k in SEES[ctx.persona]]  # newest first
    assert [m["id"] for m in answer.body["items"]] == expected
    assert answer.body["count"] == len(expected)


def check_migration_get(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    for key in MIGRATED:
        answer = ctx.client.get(f"/group-migrations/{f.migrations[key].id}")
        if key in SEES[ctx.persona]:
            assert answer.status == 200, answer.body
            assert (answer.body["code_id"], answer.body["source_members"]) == (f.codes[key].id, 82)
            assert [(s["name"], s["member_count"]) for s in answer.body["sources"]] == [("老群一", 80), ("老群二", 2)]
            assert "阿花" not in str(answer.body)  # the imported nicknames are never shown
        else:
            _not_found(answer, "migration_id")


def check_migration_create(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    for key in CODE_KEYS:
        before = _state()
        body = {"name": "新迁移", "code_id": f.codes[key].id, "starts_on": STARTS.isoformat(),
                "ends_on": ENDS.isoformat(), "sources": [{"name": "老群", "member_count": 50}]}  # fmt: skip
        answer = ctx.client.post("/group-migrations", body)
        refusal = _write_refusal(ctx, key)
        if refusal:
            _refused(answer, before, *refusal)
            continue
        assert answer.status == 201, answer.body
        migration = GroupMigration.objects.get(id=answer.body["id"])
        assert (migration.tenant_id, migration.code_id) == (f.codes[key].tenant_id, f.codes[key].id)
        # The source's poster is a join way of the brand's own corp, sending people to the code's group.
        source = migration.sources.get()
        assert answer.body["sources"][0]["qr_code"] == source.qr_code != ""
        assert _way(_brand(key), source.config_id) == (source.state, [f.groups[key].chat_id])


# operationId → (method, path as the OpenAPI document spells it, check)
GROUP_CODE_CHECKS = {
    "group_code_list": ("get", "/api/v1/group-codes", check_code_list),
    "group_code_create": ("post", "/api/v1/group-codes", check_code_create),
    "group_code_get": ("get", "/api/v1/group-codes/{code_id}", check_code_get),
    "group_code_update": ("put", "/api/v1/group-codes/{code_id}", check_code_update),
    "group_code_delete": ("delete", "/api/v1/group-codes/{code_id}", check_code_delete),
    "group_code_pause": ("post", "/api/v1/group-codes/{code_id}/pause", check_code_pause),
    "group_code_resume": ("post", "/api/v1/group-codes/{code_id}/resume", check_code_resume),
    "group_code_sync": ("post", "/api/v1/group-codes/{code_id}/sync", check_code_sync),
    "group_code_stats": ("get", "/api/v1/group-codes/{code_id}/stats", check_code_stats),
    "group_code_invites": ("get", "/api/v1/group-codes/{code_id}/invites", check_code_invites),
    "group_invite_rule_list": ("get", "/api/v1/group-invite-rules", check_rule_list),
    "group_invite_rule_create": ("post", "/api/v1/group-invite-rules", check_rule_create),
    "group_invite_rule_delete": ("delete", "/api/v1/group-invite-rules/{rule_id}", check_rule_delete),
    "group_migration_list": ("get", "/api/v1/group-migrations", check_migration_list),
    "group_migration_create": ("post", "/api/v1/group-migrations", check_migration_create),
    "group_migration_get": ("get", "/api/v1/group-migrations/{migration_id}", check_migration_get),
}


def group_code_request(world: World, operation_id: str) -> tuple[str, str, Any]:
    """A request HQ can make successfully (for the matrix's credential tests)."""
    f = fixture(world)
    method, path, _check = GROUP_CODE_CHECKS[operation_id]
    # S2's code has no migration, so HQ may delete it; every other request uses S1's code.
    code = f.codes["S2" if operation_id == "group_code_delete" else "S1"]
    url = path.format(code_id=code.id, rule_id=f.rules["S1"].id, migration_id=f.migrations["S1"].id)
    bodies: dict[str, Any] = {
        "group_code_create": _code_body(world, f, None, "brand", "matrix-new"),
        "group_code_update": _code_body(world, f, "S1", "S1", "code-S1", name="改名"),
        "group_invite_rule_create": {"tag_id": f.free_tags["a"].id, "code_id": code.id},
        "group_migration_create": {"name": "新迁移", "code_id": code.id, "starts_on": STARTS.isoformat(),
                                   "ends_on": ENDS.isoformat(), "sources": [{"name": "老群", "member_count": 50}]},
    }  # fmt: skip
    return method.upper(), url, bodies.get(operation_id)


# Found by siyu/api/tests/test_authorization.py: (operation checks, a request HQ can make for each).
API_MATRIX = ((GROUP_CODE_CHECKS, group_code_request),)
