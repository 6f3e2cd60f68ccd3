"""The fission rows of the API's authorisation matrix (siyu/api/tests/test_authorization.py imports them).

A campaign of brand A hosted by G1, active (its entry code given), with a participant held for review (a burst of
six invites) and one who earned a reward. G1 is in every brand-A persona's scope, so they all see the campaign and
its participants; only HQ changes anything; brand B's HQ gets 404 for all of it. Refused writes change nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

from siyu.campaigns import services
from siyu.campaigns.models import Campaign, Participant, RewardGrant
from siyu.campaigns.tests.test_fission import START, Adds, join, seed
from siyu.core.models import AuditLog
from siyu.testing import World


class Ctx(Protocol):
    world: World
    persona: str
    client: Any


@dataclass(frozen=True)
class Fixture:
    campaign: Campaign
    held: Participant
    earner: Participant
    grant: RewardGrant
    spare: Campaign  # a second campaign, for the credential tests' "end" (the main one must stay active)


def fixture(world: World) -> Fixture:
    """Built once per world (per test), kept on the world object."""
    built: Fixture | None = getattr(world, "_fission_fixture", None)
    if built is not None:
        return built
    campaign = services.campaign_create(
        actor=world.actor("hq"),
        name="矩阵活动",
        starts_at=START,
        ends_at=START + dt.timedelta(days=30),
        tiers=[services.TierInput(2, "gift", "帆布袋")],
        guide_ids=[world.guides["G1"].id],
    )
    Campaign.objects.filter(id=campaign.id).update(status=Campaign.Status.ACTIVE, entry_live_code_id=9_001)
    campaign.refresh_from_db()
    adds = Adds(world)
    t = START + dt.timedelta(hours=1)
    held = seed(world, campaign, adds, at=t, code=8_002)
    earner = seed(world, campaign, adds, at=t, code=8_003)
    for k in range(6):
        join(world, adds.new(at=t + dt.timedelta(minutes=k)), 8_002)
    for k in range(2):
        join(world, adds.new(at=t + dt.timedelta(hours=k + 1)), 8_003)
    services.fission_invites_settle(tenant_id=world.tenant_a.id, now=t + dt.timedelta(days=2))
    spare = services.campaign_create(
        actor=world.actor("hq"),
        name="备用活动",
        starts_at=START,
        ends_at=START + dt.timedelta(days=30),
        tiers=[services.TierInput(2, "gift", "帆布袋")],
        guide_ids=[world.guides["G1"].id],
    )
    built = Fixture(
        campaign, Participant.objects.get(id=held.id), earner, RewardGrant.objects.get(participant=earner), spare
    )
    world._fission_fixture = built  # type: ignore[attr-defined]
    return built


def _state() -> tuple[Any, ...]:
    return (
        list(Campaign.objects.order_by("id").values_list("id", "name", "status")),
        list(Participant.objects.order_by("id").values_list("id", "review")),
        list(RewardGrant.objects.order_by("id").values_list("id", "status")),
        AuditLog.objects.count(),
    )


def _refused(ctx: Ctx, answer: Any, before: tuple[Any, ...]) -> None:
    if ctx.persona == "outsider":
        assert answer.status == 404, answer.body
    else:
        assert answer.status == 403, answer.body
    assert _state() == before


def check_list(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    ids = [c["id"] for c in ctx.client.get("/campaigns").body["items"]]
    assert ids == ([] if ctx.persona == "outsider" else [f.spare.id, f.campaign.id])


def check_get(ctx: Ctx) -> None:
    f = fixture(ctx.world)
    answer = ctx.client.get(f"/campaigns/{f.campaign.id}")
    if ctx.persona == "outsider":
        assert (answer.status, answer.body["field"]) == (404, "campaign_id")
    else:
        assert (answer.status, answer.body["stats"]["participants"]) == (200, 10)


def check_create(ctx: Ctx) -> None:
    fixture(ctx.world)
    guide = ctx.world.guides["GB" if ctx.persona == "outsider" else "G1"]
    body = {
        "name": "新活动",
        "starts_at": START.isoformat(),
        "ends_at": (START + dt.timedelta(days=1)).isoformat(),
        "tiers": [{"threshold": 3, "reward_kind": "coupon", "reward_name": "券"}],
        "guide_ids": [guide.id],
    }
    before = _state()
    answer = ctx.client.post("/campaigns", body)
    if ctx.persona in ("hq", "outsider"):
        assert answer.status == 201, answer.body
        tenant = ctx.world.tenant_b if ctx.persona == "outsider" else ctx.world.tenant_a
        assert Campaign.objects.get(id=answer.body["id"]).tenant_id == tenant.id
    else:
        assert answer.status == 403
        assert _state() == before


def _write(ctx: Ctx, method: str, path: str, body: Any, ok: Any) -> None:
    f = fixture(ctx.world)
    before = _state()
    answer = ctx.client.call(method, path.format(c=f.campaign.id, p=f.held.id, g=f.grant.id), body=body)
    if ctx.persona == "hq":
        assert answer.status == 200, answer.body
        assert ok(answer.body), answer.body
    else:
        _refused(ctx, answer, before)


def check_update(ctx: Ctx) -> None:
    _write(ctx, "PATCH", "/campaigns/{c}", {"name": "改名"}, lambda b: b["name"] == "改名")


def check_activate(ctx: Ctx) -> None:
    _write(ctx, "POST", "/campaigns/{c}/activate", None, lambda b: b["status"] == "active")


def check_end(ctx: Ctx) -> None:
    _write(ctx, "POST", "/campaigns/{c}/end", None, lambda b: b["status"] == "ended")


def check_review(ctx: Ctx) -> None:
    path = "/campaigns/{c}/participants/{p}/review"
    _write(ctx, "POST", path, {"approve": False}, lambda b: b["review"] == "rejected")


def check_fulfil(ctx: Ctx) -> None:
    _write(ctx, "POST", "/campaigns/{c}/rewards/{g}/fulfil", None, lambda b: b["status"] == "fulfilled")


def _read(ctx: Ctx, path: str) -> Any:
    f = fixture(ctx.world)
    answer = ctx.client.get(path.format(c=f.campaign.id))
    if ctx.persona == "outsider":
        assert (answer.status, answer.body["field"]) == (404, "campaign_id")
        return None
    assert answer.status == 200, answer.body
    return answer.body


def check_participants(ctx: Ctx) -> None:
    body = _read(ctx, "/campaigns/{c}/participants?order=fraud")
    if body is not None:
        held = fixture(ctx.world).held
        assert (body["count"], body["items"][0]["id"], body["items"][0]["review"]) == (10, held.id, "pending")


def check_leaderboard(ctx: Ctx) -> None:
    body = _read(ctx, "/campaigns/{c}/leaderboard")
    if body is not None:
        f = fixture(ctx.world)
        assert [r["participant_id"] for r in body] == [f.held.id, f.earner.id]


def check_rewards(ctx: Ctx) -> None:
    body = _read(ctx, "/campaigns/{c}/rewards")
    if body is not None:
        assert [g["id"] for g in body["items"]] == [fixture(ctx.world).grant.id]


# operationId → (method, path as the OpenAPI document spells it, check)
CAMPAIGN_CHECKS = {
    "campaign_list": ("get", "/api/v1/campaigns", check_list),
    "campaign_create": ("post", "/api/v1/campaigns", check_create),
    "campaign_get": ("get", "/api/v1/campaigns/{campaign_id}", check_get),
    "campaign_update": ("patch", "/api/v1/campaigns/{campaign_id}", check_update),
    "campaign_activate": ("post", "/api/v1/campaigns/{campaign_id}/activate", check_activate),
    "campaign_end": ("post", "/api/v1/campaigns/{campaign_id}/end", check_end),
    "campaign_participants": ("get", "/api/v1/campaigns/{campaign_id}/participants", check_participants),
    "campaign_leaderboard": ("get", "/api/v1/campaigns/{campaign_id}/leaderboard", check_leaderboard),
    "campaign_participant_review": (
        "post",
        "/api/v1/campaigns/{campaign_id}/participants/{participant_id}/review",
        check_review,
    ),
    "campaign_rewards": ("get", "/api/v1/campaigns/{campaign_id}/rewards", check_rewards),
    "campaign_reward_fulfil": ("post", "/api/v1/campaigns/{campaign_id}/rewards/{grant_id}/fulfil", check_fulfil),
}


def campaign_request(world: World, operation_id: str) -> tuple[str, str, Any]:
    """A request HQ can make successfully (for the matrix's credential tests)."""
    f = fixture(world)
    method, path, _check = CAMPAIGN_CHECKS[operation_id]
    campaign = f.spare if operation_id == "campaign_end" else f.campaign
    url = path.format(campaign_id=campaign.id, participant_id=f.held.id, grant_id=f.grant.id)
    bodies: dict[str, Any] = {
        "campaign_create": {
            "name": "新活动",
            "starts_at": START.isoformat(),
            "ends_at": (START + dt.timedelta(days=1)).isoformat(),
            "tiers": [{"threshold": 3, "reward_kind": "coupon", "reward_name": "券"}],
            "guide_ids": [world.guides["G1"].id],
        },
        "campaign_update": {"name": "改名"},
        "campaign_participant_review": {"approve": True},
    }
    return method.upper(), url, bodies.get(operation_id)


# Found by siyu/api/tests/test_authorization.py: (operation checks, a request HQ can make for each).
API_MATRIX = ((CAMPAIGN_CHECKS, campaign_request),)
