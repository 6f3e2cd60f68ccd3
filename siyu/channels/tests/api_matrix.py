"""The channel live code (渠道活码) and welcome message (欢迎语) rows of the API's authorisation matrix
(siyu/api/tests/test_authorization.py imports them).

Brand A has five live codes: one per guide G1, G2, G3, one over G1 and G2, and a store code of the brand IP for
store S2; brand B has one over its guide. A code is seen by whoever sees one of its guides or its store, and changed
only by a manager (HQ, region, store) who has every guide of the code in scope; any other viewer gets 403, everyone
else 404. Adds through the G1+G2, G3 and brand-B codes carry welcome sends; stats and sends count only the adds of
guides in scope. Refused writes change no row, no audit entry and no WeCom contact way.

Live codes are real WeCom contact ways: both brands are connected to their corps of the emulator the whole test
process shares (siyu.wecom.tests.emulated.world_wecom: the credential tests' successful HQ requests reach WeCom after
`channel_request` has returned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from django.utils import timezone

from siyu.channels import services
from siyu.channels.models import LiveCode, LiveCodeGuide, WelcomeMessage, WelcomeSend
from siyu.core.models import AuditLog
from siyu.core.scopes import Actor
from siyu.customers.services import customer_create, follow_relation_add
from siyu.tags.models import Tag
from siyu.testing import GUIDES_IN_SCOPE, World
from siyu.wecom.tests.emulated import connect_world, world_corp, world_wecom


class Ctx(Protocol):
    world: World
    persona: str
    client: Any
    b_tag: Tag


# -- the fixture ------------------------------------------------------------------------------------------------------

# Live code key → (its guides, its store): "S2" is a store code of the brand IP for store S2; "B" is brand B's.
CODES: dict[str, tuple[list[str], str | None]] = {
    "G1": (["G1"], None),
    "G2": (["G2"], None),
    "G3": (["G3"], None),
    "G1G2": (["G1", "G2"], None),
    "S2": (["IP"], "S2"),
    "B": (["GB"], None),
}
VISIBLE_CODES = {
    "hq": {"G1", "G2", "G3", "G1G2", "S2"},
    "region1": {"G1", "G2", "G1G2", "S2"},  # S2 through its store, although the brand IP is not region1's
    "store1": {"G1", "G1G2"},
    "guide1": {"G1", "G1G2"},
    "franchisee1": {"G1", "G3", "G1G2"},
    "outsider": {"B"},
}
EDITABLE_CODES = {
    "hq": VISIBLE_CODES["hq"],
    "region1": {"G1", "G2", "G1G2"},
    "store1": {"G1"},  # G1G2 also reaches G2, of store S2
    "guide1": set(),
    "franchisee1": set(),
    "outsider": {"B"},
}
MANAGERS = {"hq", "region1", "store1", "outsider"}
HQ = {"hq", "outsider"}
# Adds attributed to a code (one new customer per guide), each with a welcome send.
ADDS = {"G1G2": ["G1", "G2"], "G3": ["G3"], "B": ["GB"]}
GUIDE_MESSAGES = ("G1", "G2", "G3", "IP")  # brand A guides with their own welcome message


def ways(brand: str) -> dict[str, tuple[tuple[str, ...], str]]:
    """The brand corp's contact ways in WeCom: config_id → (members, state)."""
    with world_wecom().emulator.lock:
        return {c: (tuple(w.user), w.state) for c, w in world_corp(brand).contact_ways.items()}


@dataclass(frozen=True)
class Fixture:
    codes: dict[str, LiveCode]
    sends: dict[str, WelcomeSend]  # by the guide key of the add
    messages: dict[str, WelcomeMessage]  # "default", "default_b" and the guide keys of GUIDE_MESSAGES


def _brand(key: str) -> str:
    return "b" if key in {"B", "GB"} else "a"


def fixture(world: World) -> Fixture:
    """Built once per world (per test), kept on the world object."""
    built: Fixture | None = getattr(world, "_channels_fixture", None)
    if built is not None:
        return built
    connect_world(world)
    codes = {}
    for key, (guides, store) in CODES.items():
        codes[key] = services.live_code_create(
            actor=world.actor("outsider" if _brand(key) == "b" else "hq"),
            name=f"矩阵码{key}",
            guide_ids=[world.guides[g].id for g in guides],
            purpose=LiveCode.Purpose.STORE if store else LiveCode.Purpose.CHANNEL,
            store_id=world.stores[store].id if store else None,
            welcome_text="{客户昵称}你好",
        )
    sends = {}
    for key, guides in ADDS.items():
        tenant = world.tenant_b if _brand(key) == "b" else world.tenant_a
        system = Actor.system(tenant.id)
        for n, guide_key in enumerate(guides):
            customer = customer_create(actor=system, name=f"扫码客{guide_key}", source="test")
            external_userid = f"wmscan{key}{n}"
            relation = follow_relation_add(
                actor=system,
                customer_id=customer.id,
                guide_id=world.guides[guide_key].id,
                external_userid=external_userid,
                added_at=timezone.now(),
                state=codes[key].state,
            )
            send = services.live_code_contact_added(
                actor=system,
                follow_relation_id=relation.id,
                state=codes[key].state,
                welcome_code=f"wc-{key}-{n}",
                userid=world.guides[guide_key].wecom_userid,
                external_userid=external_userid,
            )
            assert send is not None
            sends[guide_key] = send
    hq = world.actor("hq")
    messages = {
        "default": services.welcome_message_save(actor=hq, scope="default", text="欢迎来到澄光"),
        "default_b": services.welcome_message_save(actor=world.actor("outsider"), scope="default", text="远山欢迎你"),
    }
    for key in GUIDE_MESSAGES:
        messages[key] = services.welcome_message_save(
            actor=hq, scope="guide", guide_id=world.guides[key].id, text=f"我是{{导购}}({key})"
        )
    built = Fixture(
        {k: LiveCode.objects.get(id=c.id) for k, c in codes.items()},
        sends,
        {k: m for k, m in messages.items() if m is not None},
    )
    world._channels_fixture = built  # type: ignore[attr-defined]
    return built


def _state() -> tuple[Any, ...]:
    """Everything a channels write could change: siyu's rows, the audit log and the contact ways in WeCom."""
    return (
        list(
            LiveCode.objects.order_by("id").values_list(
                "id", "tenant_id", "name", "status", "state", "config_id", "fallback_guide_id", "deleted_at"
            )
        ),
        list(LiveCodeGuide.objects.order_by("id").values_list("live_code_id", "guide_id", "daily_cap", "schedule")),
        sorted(LiveCode.tags.through.objects.values_list("livecode_id", "tag_id")),
        list(WelcomeMessage.objects.order_by("id").values_list("id", "scope", "guide_id", "live_code_id", "text")),
        list(WelcomeSend.objects.order_by("id").values_list("id", "status")),
        AuditLog.objects.count(),
        ways("a"),
        ways("b"),
    )


def _refused(ctx: Ctx, answer: Any, key: str, before: tuple[Any, ...]) -> None:
    """A write on code `key` the persona may not make: 403 when it sees the code, 404 when it does not."""
    if key in VISIBLE_CODES[ctx.persona]:
        assert answer.status == 403, (key, answer.body)
        assert answer.body["field"] is None
    else:
        assert answer.status == 404, (key, answer.body)
        assert answer.body["field"] == "live_code_id"
    assert _state() == before


def _not_found(answer: Any, field: str) -> None:
    assert answer.status == 404, answer.body
    assert answer.body["field"] == field


# -- live codes -------------------------------------------------------------------------------------------------------


def check_live_code_list(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    answer = ctx.client.get("/live-codes")
    assert answer.status == 200
    expected = {f.codes[k].id for k in VISIBLE_CODES[ctx.persona]}
    assert {c["id"] for c in answer.body["items"]} == expected
    assert answer.body["count"] == len(expected)


def check_live_code_get(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    for key, code in sorted(f.codes.items()):
        answer = ctx.client.get(f"/live-codes/{code.id}")
        if key in VISIBLE_CODES[ctx.persona]:
            assert answer.status == 200, answer.body
            assert (answer.body["id"], answer.body["state"], answer.body["config_id"]) == (
                code.id,
                code.state,
                code.config_id,
            )
            # Only the guides in scope: store1 sees the G1+G2 code through G1, and not who G2 is; region1 sees the
            # brand IP's code of store S2 through the store, and none of its guides.
            seen = [g for g in CODES[key][0] if g in GUIDES_IN_SCOPE[ctx.persona]]
            assert [g["guide_id"] for g in answer.body["guides"]] == [ctx.world.guides[g].id for g in seen]
            userids = {ctx.world.guides[g].wecom_userid for g in seen}
            assert answer.body["wecom_users"] == [u for u in code.wecom_users if u in userids]
        else:
            _not_found(answer, "live_code_id")


def _create_body(ctx: Ctx, guide_key: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "新渠道码",
        "guide_ids": [ctx.world.guides[guide_key].id],
        "state": f"m_{ctx.persona}_{guide_key}",
        "welcome_text": "{客户昵称}你好",
        **extra,
    }


def check_live_code_create(ctx: Ctx) -> None:
    w = ctx.world
    fixture(w)
    own = "b" if ctx.persona == "outsider" else "a"
    for guide_key in ("G1", "G2", "G3", "IP", "GB"):
        before = _state()
        answer = ctx.client.post("/live-codes", _create_body(ctx, guide_key))
        if ctx.persona not in MANAGERS:
            assert answer.status == 403, answer.body
            assert answer.body == {"detail": "only HQ, region and store managers manage live codes", "field": None}
        elif guide_key in GUIDES_IN_SCOPE[ctx.persona]:
            assert answer.status == 201, answer.body
            code = LiveCode.objects.get(id=answer.body["id"])
            assert code.tenant_id == w.memberships[ctx.persona].tenant_id
            # The way exists in the persona's own brand's corp, reaching the chosen guide; the creator sees the code.
            assert ways(own)[code.config_id] == ((w.guides[guide_key].wecom_userid,), code.state)
            assert ctx.client.get(f"/live-codes/{code.id}").status == 200
            continue
        else:
            _not_found(answer, "guide_ids")
        assert _state() == before
    if ctx.persona not in MANAGERS:
        return
    # In-scope guide, but a store, fallback guide or tag the persona may not use: not found, nothing written.
    mine = sorted(GUIDES_IN_SCOPE[ctx.persona])[0]
    foreign_tag = w.tags["护肤"] if ctx.persona == "outsider" else ctx.b_tag
    outside_store = {"hq": "B1", "region1": "S3", "store1": "S2", "outsider": "S1"}[ctx.persona]
    outside_guide = {"hq": "GB", "region1": "G3", "store1": "G2", "outsider": "G1"}[ctx.persona]
    for extra, field in (
        ({"store_id": w.stores[outside_store].id}, "store_id"),
        ({"fallback_guide_id": w.guides[outside_guide].id}, "fallback_guide_id"),
        ({"tag_ids": [foreign_tag.id]}, "tag_ids"),
    ):
        before = _state()
        _not_found(ctx.client.post("/live-codes", _create_body(ctx, mine, state="m_extra", **extra)), field)
        assert _state() == before


def _write_each(ctx: Ctx, method: str, suffix: str, body: Any, ok: Any) -> None:
    """The same write on every fixture code: done where the persona may edit the code, refused elsewhere."""
    f = fixture(ctx.world)
    for key, code in sorted(f.codes.items()):
        before = _state()
        answer = ctx.client.call(method, f"/live-codes/{code.id}{suffix}", body=body)
        if key in EDITABLE_CODES[ctx.persona]:
            assert answer.status == 200, answer.body
            ok(key, code, answer.body)
        else:
            _refused(ctx, answer, key, before)


def check_live_code_update(ctx: Ctx) -> None:
    w = ctx.world

    def renamed(key: str, code: LiveCode, body: dict[str, Any]) -> None:
        assert body["name"] == LiveCode.objects.get(id=code.id).name == "改名"

    _write_each(ctx, "PATCH", "", {"name": "改名"}, renamed)
    if ctx.persona not in MANAGERS:
        return
    # On a code the persona may edit, it cannot bring in a guide, fallback or tag outside its scope or brand.
    f = fixture(w)
    code = f.codes["B" if ctx.persona == "outsider" else "G1"]
    outside_guide = {"hq": "GB", "region1": "G3", "store1": "G2", "outsider": "G1"}[ctx.persona]
    foreign_tag = w.tags["护肤"] if ctx.persona == "outsider" else ctx.b_tag
    current = list(LiveCodeGuide.objects.filter(live_code=code).values_list("guide_id", flat=True))
    for body, field in (
        ({"guide_ids": [*current, w.guides[outside_guide].id]}, "guide_ids"),
        ({"fallback_guide_id": w.guides[outside_guide].id}, "fallback_guide_id"),
        ({"tag_ids": [foreign_tag.id]}, "tag_ids"),
    ):
        before = _state()
        _not_found(ctx.client.patch(f"/live-codes/{code.id}", body), field)
        assert _state() == before


def check_live_code_pause(ctx: Ctx) -> None:
    def paused(key: str, code: LiveCode, body: dict[str, Any]) -> None:
        assert body["status"] == LiveCode.objects.get(id=code.id).status == "paused"

    _write_each(ctx, "POST", "/pause", None, paused)


def check_live_code_resume(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    for code in f.codes.values():
        services.live_code_pause(actor=Actor.system(code.tenant_id), live_code_id=code.id)

    def resumed(key: str, code: LiveCode, body: dict[str, Any]) -> None:
        assert body["status"] == LiveCode.objects.get(id=code.id).status == "active"

    _write_each(ctx, "POST", "/resume", None, resumed)


def check_live_code_delete(ctx: Ctx) -> None:
    def deleted(key: str, code: LiveCode, body: dict[str, Any]) -> None:
        assert body["status"] == LiveCode.objects.get(id=code.id).status == "deleted"
        assert code.config_id not in ways(_brand(key))  # the QR stops working in WeCom too
        # Its history stays readable; lists no longer show it.
        assert ctx.client.get(f"/live-codes/{code.id}").body["status"] == "deleted"
        assert code.id not in {c["id"] for c in ctx.client.get("/live-codes").body["items"]}

    _write_each(ctx, "DELETE", "", None, deleted)
    f = fixture(ctx.world)
    for key in set(CODES) - EDITABLE_CODES[ctx.persona]:
        assert f.codes[key].config_id in ways(_brand(key))


def check_live_code_stats(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    for key, code in sorted(f.codes.items()):
        answer = ctx.client.get(f"/live-codes/{code.id}/stats")
        if key not in VISIBLE_CODES[ctx.persona]:
            _not_found(answer, "live_code_id")
            continue
        assert answer.status == 200, answer.body
        # Only the adds of guides in scope count (store1 sees G1's add through the G1+G2 code, not G2's).
        guides = [g for g in ADDS.get(key, []) if g in GUIDES_IN_SCOPE[ctx.persona]]
        assert (answer.body["adds"], answer.body["deletes"], answer.body["net"]) == (len(guides), 0, len(guides))
        assert {g["guide_id"]: g["adds"] for g in answer.body["by_guide"]} == {
            ctx.world.guides[g].id: 1 for g in guides
        }
        assert answer.body["sends"] == ({"pending": len(guides)} if guides else {})


def check_live_code_qr(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    for key, code in sorted(f.codes.items()):
        png = ctx.client.get(f"/live-codes/{code.id}/qr")
        if key in VISIBLE_CODES[ctx.persona]:
            assert (png.status, png.headers["Content-Type"]) == (200, "image/png")
            assert png.body.startswith(b"\x89PNG")
        else:
            _not_found(png, "live_code_id")
            _not_found(ctx.client.get(f"/live-codes/{code.id}/qr", format="svg"), "live_code_id")
    # The SVG of one code the persona sees (drawing pictures is slow: one is enough for the format).
    svg = ctx.client.get(f"/live-codes/{f.codes[sorted(VISIBLE_CODES[ctx.persona])[0]].id}/qr", format="svg")
    assert (svg.status, svg.headers["Content-Type"]) == (200, "image/svg+xml")
    assert b"<svg" in svg.body


# -- welcome messages and sends -----------------------------------------------------------------------------------


def check_welcome_send_list(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    answer = ctx.client.get("/welcome-sends")
    assert answer.status == 200
    expected = {s.id for g, s in f.sends.items() if g in GUIDES_IN_SCOPE[ctx.persona]}
    assert {s["id"] for s in answer.body["items"]} == expected
    assert answer.body["count"] == len(expected)
    # One code's sends: still only those of guides in scope; a code outside the scope or another brand's is not
    # found (never an empty page that tells it exists).
    for key, code in sorted(f.codes.items()):
        answer = ctx.client.get("/welcome-sends", live_code_id=code.id)
        if key not in VISIBLE_CODES[ctx.persona]:
            _not_found(answer, "live_code_id")
            continue
        expected = {f.sends[g].id for g in ADDS.get(key, []) if g in GUIDES_IN_SCOPE[ctx.persona]}
        assert {s["id"] for s in answer.body["items"]} == expected, key
    _not_found(ctx.client.get("/welcome-sends", live_code_id=2**62), "live_code_id")


def check_welcome_message_list(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    answer = ctx.client.get("/welcome-messages")
    assert answer.status == 200
    if ctx.persona == "outsider":
        expected = {f.messages["default_b"].id}
    else:  # the brand's default and the messages of guides in scope; never a code's own message
        expected = {f.messages["default"].id} | {
            f.messages[g].id for g in GUIDE_MESSAGES if g in GUIDES_IN_SCOPE[ctx.persona]
        }
    assert {m["id"] for m in answer.body} == expected
    texts = {m["id"]: m["text"] for m in answer.body}
    assert all(texts[m.id] == m.text for m in f.messages.values() if m.id in texts)


def check_welcome_message_save(ctx: Ctx) -> None:
    w = ctx.world
    f = fixture(w)
    own = w.memberships[ctx.persona].tenant_id
    for guide_key in (*GUIDE_MESSAGES, "GB"):
        guide = w.guides[guide_key]
        before = _state()
        text = f"{ctx.persona}的欢迎语"
        body = {"scope": "guide", "guide_id": guide.id, "text": text}
        answer = ctx.client.call("PUT", "/welcome-messages", body=body)
        if ctx.persona not in MANAGERS:
            assert answer.status == 403, answer.body
            assert answer.body["field"] is None
        elif guide_key in GUIDES_IN_SCOPE[ctx.persona]:
            assert (answer.status, answer.body["guide_id"], answer.body["text"]) == (200, guide.id, text)
            saved = WelcomeMessage.objects.get(scope="guide", guide=guide)
            assert (saved.tenant_id, saved.text) == (own, text)
            continue
        else:
            _not_found(answer, "guide_id")
        assert _state() == before
    # The brand's default: HQ only, and only its own brand's.
    before = _state()
    answer = ctx.client.call("PUT", "/welcome-messages", body={"scope": "default", "text": "新的默认欢迎语"})
    defaults = dict(WelcomeMessage.objects.filter(scope="default").values_list("tenant_id", "text"))
    if ctx.persona in HQ:
        assert (answer.status, answer.body["text"]) == (200, "新的默认欢迎语")
        other = w.tenant_a.id if own == w.tenant_b.id else w.tenant_b.id
        other_key = "default" if other == w.tenant_a.id else "default_b"
        assert defaults == {own: "新的默认欢迎语", other: f.messages[other_key].text}
    else:
        assert answer.status == 403, answer.body
        assert answer.body["field"] is None
        assert _state() == before
    # Empty text removes a guide's message: G1's, by those who manage G1; brand B's HQ cannot reach it.
    before = _state()
    answer = ctx.client.call("PUT", "/welcome-messages", body={"scope": "guide", "guide_id": w.guides["G1"].id})
    exists = WelcomeMessage.objects.filter(scope="guide", guide=w.guides["G1"]).exists()
    if ctx.persona in MANAGERS and "G1" in GUIDES_IN_SCOPE[ctx.persona]:
        assert (answer.status, answer.body, exists) == (204, None, False)
    else:
        assert answer.status == (403 if ctx.persona not in MANAGERS else 404)
        assert exists
        assert _state() == before


# operationId → (method, path as the OpenAPI document spells it, check)
CHANNEL_CHECKS = {
    "live_code_create": ("post", "/api/v1/live-codes", check_live_code_create),
    "live_code_list": ("get", "/api/v1/live-codes", check_live_code_list),
    "live_code_get": ("get", "/api/v1/live-codes/{live_code_id}", check_live_code_get),
    "live_code_update": ("patch", "/api/v1/live-codes/{live_code_id}", check_live_code_update),
    "live_code_delete": ("delete", "/api/v1/live-codes/{live_code_id}", check_live_code_delete),
    "live_code_pause": ("post", "/api/v1/live-codes/{live_code_id}/pause", check_live_code_pause),
    "live_code_resume": ("post", "/api/v1/live-codes/{live_code_id}/resume", check_live_code_resume),
    "live_code_stats": ("get", "/api/v1/live-codes/{live_code_id}/stats", check_live_code_stats),
    "live_code_qr": ("get", "/api/v1/live-codes/{live_code_id}/qr", check_live_code_qr),
    "welcome_send_list": ("get", "/api/v1/welcome-sends", check_welcome_send_list),
    "welcome_message_list": ("get", "/api/v1/welcome-messages", check_welcome_message_list),
    "welcome_message_save": ("put", "/api/v1/welcome-messages", check_welcome_message_save),
}


def channel_request(world: World, operation_id: str) -> tuple[str, str, Any]:
    """A request HQ can make successfully (for the matrix's credential tests). The delete takes the G3 code, so the
    G1+G2 code the others name stays usable when one test sends them all in a row."""
    f = fixture(world)
    method, path, _check = CHANNEL_CHECKS[operation_id]
    code = f.codes["G3" if operation_id == "live_code_delete" else "G1G2"]
    url = path.format(live_code_id=code.id)
    if operation_id == "welcome_send_list":
        url += f"?live_code_id={code.id}"
    bodies: dict[str, Any] = {
        "live_code_create": {"name": "凭据检查", "guide_ids": [world.guides["G1"].id], "state": "credential_check"},
        "live_code_update": {"name": "改名"},
        "welcome_message_save": {"scope": "default", "text": "欢迎光临"},
    }
    return method.upper(), url, bodies.get(operation_id)


# Found by siyu/api/tests/test_authorization.py: (operation checks, a request HQ can make for each).
API_MATRIX = ((CHANNEL_CHECKS, channel_request),)
