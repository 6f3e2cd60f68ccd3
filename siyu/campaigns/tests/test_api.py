"""The campaigns API: create and read campaigns, participants with fraud scores, leaderboard, review, rewards; who may
do what, across data scopes and brands; bad input answers 4xx naming the field."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.api.services import api_token_create
from siyu.api.tests.conftest import ApiClient
from siyu.campaigns import services
from siyu.campaigns.models import Campaign, Participant
from siyu.campaigns.tests.test_fission import START, Adds, join, seed
from siyu.core.scopes import Actor
from siyu.testing import World, build_world


@pytest.fixture
def world(db: None) -> World:
    return build_world()


def client(world: World, persona: str) -> ApiClient:
    membership = world.memberships[persona]
    token = api_token_create(actor=Actor.system(membership.tenant_id), membership_id=membership.id, name=persona)
    return ApiClient(token.secret)


def body(world: World, **changes: object) -> dict[str, object]:
    return {
        "name": "春季邀友",
        "starts_at": START.isoformat(),
        "ends_at": (START + dt.timedelta(days=30)).isoformat(),
        "tiers": [
            {"threshold": 3, "reward_kind": "coupon", "reward_name": "满100减20券"},
            {"threshold": 10, "reward_kind": "points", "reward_name": "500 积分", "points": 500},
        ],
        "guide_ids": [world.guides["G1"].id, world.guides["G2"].id],
        "poster_caption": "邀请好友，一起领好礼",
        **changes,
    }


def test_create_read_and_list(world: World) -> None:
    hq = client(world, "hq")
    created = hq.post("/campaigns", body(world))
    assert created.status == 201, created.body
    campaign = created.body
    assert (campaign["status"], campaign["guide_ids"]) == ("draft", [world.guides["G1"].id, world.guides["G2"].id])
    assert [(t["threshold"], t["reward_kind"], t["payload"]) for t in campaign["tiers"]] == [
        (3, "coupon", {}),
        (10, "points", {"points": 500}),
    ]
    assert campaign["stats"]["participants"] == 0
    # The store manager sees it (their guide G1 hosts it) but may not change it; brand B never sees it.
    store1, outsider = client(world, "store1"), client(world, "outsider")
    assert [c["id"] for c in store1.get("/campaigns").body["items"]] == [campaign["id"]]
    assert store1.patch(f"/campaigns/{campaign['id']}", {"name": "改名"}).status == 403
    assert outsider.get(f"/campaigns/{campaign['id']}").status == 404
    assert outsider.get("/campaigns").body["count"] == 0
    assert client(world, "store1").post("/campaigns", body(world)).status == 403
    patched = hq.patch(f"/campaigns/{campaign['id']}", {"name": "夏季邀友", "settings": {"fraud_threshold": 60}})
    assert (patched.body["name"], patched.body["fraud_threshold"]) == ("夏季邀友", 60)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tiers": []}, "tiers"),
        ({"tiers": [{"threshold": 0, "reward_kind": "coupon", "reward_name": "券"}]}, "tiers.0.threshold"),
        ({"tiers": [{"threshold": 3, "reward_kind": "cash", "reward_name": "券"}]}, "tiers.0.reward_kind"),
        ({"starts_at": "2026-03-01T00:00:00"}, "starts_at"),
    ],
)
def test_bad_input_names_the_field(world: World, change: dict[str, object], field: str) -> None:
    answer = client(world, "hq").post("/campaigns", body(world, **change))
    assert answer.status == 422
    assert answer.body["field"] == field
    assert not Campaign.objects.exists()


def test_contradictions_are_conflicts_and_unknown_guides_not_found(world: World) -> None:
    hq = client(world, "hq")
    answer = hq.post("/campaigns", body(world, ends_at=START.isoformat()))
    assert (answer.status, answer.body["field"]) == (409, "ends_at")
    points = [{"threshold": 3, "reward_kind": "points", "reward_name": "积分"}]
    answer = hq.post("/campaigns", body(world, tiers=points))
    assert (answer.status, answer.body["field"]) == (409, "tiers.0.payload")
    answer = hq.post("/campaigns", body(world, guide_ids=[999_999]))
    assert (answer.status, answer.body["field"]) == (404, "guide_ids")
    assert hq.post("/campaigns", body(world, starts_at=0)).status == 422  # a number is not a date
    assert not Campaign.objects.exists()


def test_activate_without_wecom_is_a_conflict(world: World) -> None:
    hq = client(world, "hq")
    campaign = hq.post("/campaigns", body(world)).body
    answer = hq.post(f"/campaigns/{campaign['id']}/activate")
    assert (answer.status, answer.body["field"]) == (409, "wecom")
    assert Campaign.objects.get(id=campaign["id"]).status == "draft"


def test_participants_fraud_review_and_rewards(world: World) -> None:
    hq = client(world, "hq")
    campaign = Campaign.objects.get(id=hq.post("/campaigns", body(world)).body["id"])
    Campaign.objects.filter(id=campaign.id).update(status=Campaign.Status.ACTIVE, entry_live_code_id=9_001)
    adds = Adds(world)
    t = START + dt.timedelta(hours=1)
    honest = seed(world, campaign, adds, at=t, code=9_010)
    burst = seed(world, campaign, adds, at=t, code=9_011)
    for k in range(3):
        join(world, adds.new(at=t + dt.timedelta(hours=k + 1)), 9_010)
    for k in range(6):  # six in six minutes
        join(world, adds.new(at=t + dt.timedelta(minutes=k)), 9_011)
    services.fission_invites_settle(tenant_id=world.tenant_a.id, now=t + dt.timedelta(days=2))

    by_fraud = hq.get(f"/campaigns/{campaign.id}/participants", order="fraud").body
    first = by_fraud["items"][0]
    assert (first["id"], first["fraud_score"], first["review"]) == (burst.id, 40, "pending")
    assert first["fraud_reasons"] == [{"code": "velocity", "weight": 40, "invites": 6, "limit": 5}]
    assert "*" in first["name_masked"]
    board = hq.get(f"/campaigns/{campaign.id}/leaderboard").body
    assert [(r["participant_id"], r["invites_counted"]) for r in board[:2]] == [(burst.id, 6), (honest.id, 3)]
    rewards = hq.get(f"/campaigns/{campaign.id}/rewards").body
    assert [(g["participant_id"], g["threshold"], g["kind"]) for g in rewards["items"]] == [(honest.id, 3, "coupon")]

    # Only HQ reviews; a store manager whose scope holds the participant gets 403, brand B a 404.
    path = f"/campaigns/{campaign.id}/participants/{burst.id}/review"
    assert client(world, "store1").post(path, {"approve": True}).status == 403
    assert client(world, "outsider").post(path, {"approve": True}).status == 404
    assert hq.post(path, {"approve": "yes"}).status == 422
    approved = hq.post(path, {"approve": True, "note": "同事确认"})
    assert approved.body["review"] == "approved"
    grants = hq.get(f"/campaigns/{campaign.id}/rewards").body["items"]
    assert sorted((g["participant_id"], g["threshold"]) for g in grants) == [(honest.id, 3), (burst.id, 3)]
    fulfilled = hq.post(f"/campaigns/{campaign.id}/rewards/{grants[0]['id']}/fulfil")
    assert fulfilled.body["status"] == "fulfilled"
    assert hq.post(f"/campaigns/{campaign.id}/rewards/999999/fulfil").status == 404
    # A guide sees only the participants they serve (all follow G1 here) and no one else's.
    guide2 = Participant.objects.filter(campaign=campaign).exclude(guide=world.guides["G1"]).count()
    assert guide2 == 0
    assert client(world, "guide1").get(f"/campaigns/{campaign.id}/participants").body["count"] == (
        Participant.objects.filter(campaign=campaign).count()
    )
