"""Console pages of fission campaigns, and the participants' public pages (own page, poster, landing)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.test import Client
from PIL import Image

from siyu.campaigns import services
from siyu.campaigns.models import Campaign, LandingVisit, Participant, ParticipantDevice
from siyu.campaigns.tests.test_fission import START, Adds, join, seed
from siyu.testing import PASSWORD, World, build_world


@pytest.fixture
def world(db: None) -> World:
    return build_world()


def login(persona: str) -> Client:
    client = Client()
    assert client.login(username=persona, password=PASSWORD)
    return client


def form_data(world: World, **changes: object) -> dict[str, object]:
    return {
        "name": "春季邀友",
        "starts_at": "2026-03-01T00:00",
        "ends_at": "2026-03-31T00:00",
        "guides": [world.guides["G1"].id],
        "poster_caption": "一起领好礼",
        "hold_hours": 24,
        "fraud_threshold": 40,
        "velocity_max": 5,
        "velocity_minutes": 10,
        "tier1_threshold": 3,
        "tier1_kind": "coupon",
        "tier1_name": "满100减20券",
        **changes,
    }


def test_hq_creates_a_campaign_and_reads_its_page(world: World) -> None:
    hq = login("hq")
    assert "裂变" in hq.get("/acquisition/fission/").content.decode()
    response = hq.post("/acquisition/fission/new/", form_data(world))
    campaign = Campaign.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/acquisition/fission/{campaign.id}/"
    page = hq.get(response["Location"]).content.decode()
    assert "春季邀友" in page
    assert 'data-chart="fission"' in page
    assert "邀请 3 人：满100减20券" in page
    # Activation needs WeCom: the page says so instead of failing.
    answer = hq.post(f"/acquisition/fission/{campaign.id}/activate/", follow=True)
    assert "请先连接品牌的企业微信" in answer.content.decode() or "wecom" in answer.content.decode().lower()
    assert Campaign.objects.get().status == "draft"


def test_hq_edits_a_campaign_through_the_same_form(world: World) -> None:
    hq = login("hq")
    hq.post("/acquisition/fission/new/", form_data(world))
    campaign = Campaign.objects.get()
    form = hq.get(f"/acquisition/fission/{campaign.id}/edit/").content.decode()
    assert 'value="春季邀友"' in form
    changed = form_data(world, name="夏季邀友", tier1_threshold=5, poster_caption="夏日好礼")
    response = hq.post(f"/acquisition/fission/{campaign.id}/edit/", changed)
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.name, campaign.poster_caption) == ("夏季邀友", "夏日好礼")
    assert "邀请 5 人：满100减20券" in hq.get(response["Location"]).content.decode()


def test_form_errors_name_the_field(world: World) -> None:
    hq = login("hq")
    page = hq.post("/acquisition/fission/new/", form_data(world, ends_at="2026-02-01T00:00")).content.decode()
    assert "the campaign must end after it starts" in page or "活动结束时间" in page
    page = hq.post("/acquisition/fission/new/", form_data(world, tier1_kind="points")).content.decode()
    assert "payload.points" in page or "积分" in page
    assert not Campaign.objects.exists()


def test_roles_and_brands(world: World) -> None:
    services.campaign_create(
        actor=world.actor("hq"),
        name="春季邀友",
        starts_at=START,
        ends_at=START + dt.timedelta(days=30),
        tiers=[services.TierInput(3, "coupon", "券")],
        guide_ids=[world.guides["G2"].id],
    )
    campaign = Campaign.objects.get()
    assert login("store1").get("/acquisition/fission/new/").status_code == 403
    assert login("store1").get(f"/acquisition/fission/{campaign.id}/").status_code == 404  # G2 is not theirs
    assert login("region1").get(f"/acquisition/fission/{campaign.id}/").status_code == 200
    assert login("outsider").get(f"/acquisition/fission/{campaign.id}/").status_code == 404
    assert login("region1").post(f"/acquisition/fission/{campaign.id}/end/", follow=True).status_code == 200
    assert Campaign.objects.get().status == "draft"  # the region manager may look, not run it


def test_public_pages_show_progress_record_devices_and_draw_the_poster(world: World) -> None:
    campaign = services.campaign_create(
        actor=world.actor("hq"),
        name="春季邀友",
        starts_at=START,
        ends_at=START + dt.timedelta(days=30),
        tiers=[services.TierInput(2, "coupon", "满100减20券")],
        guide_ids=[world.guides["G1"].id],
        poster_caption="一起领好礼",
    )
    Campaign.objects.filter(id=campaign.id).update(status=Campaign.Status.ACTIVE, entry_live_code_id=9_001)
    adds = Adds(world)
    t = START + dt.timedelta(hours=1)
    inviter = seed(world, Campaign.objects.get(), adds, at=t, code=9_020)
    Participant.objects.filter(id=inviter.id).update(qr_url="https://wecom.example/qr/abc.svg")
    for k in range(2):
        join(world, adds.new(at=t + dt.timedelta(hours=k + 1)), 9_020)
    services.fission_invites_settle(tenant_id=world.tenant_a.id, now=t + dt.timedelta(days=2))

    phone = Client(HTTP_USER_AGENT="Mozilla/5.0 (iPhone)")
    page = phone.get(f"/f/p/{inviter.token}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-counted="2"' in html
    assert "恭喜！你邀请满 2 人，获得满100减20券！" in html
    assert "客户1" not in html  # masked, never the full name
    assert "客*" in html
    assert "siyu_dev" in page.cookies
    assert ParticipantDevice.objects.filter(participant=inviter).count() == 1

    poster = phone.get(f"/f/p/{inviter.token}/poster.png")
    assert poster["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(poster.content))
    assert image.size == (750, 1334)

    visits = LandingVisit.objects.filter(participant=inviter).count()
    landing = Client(HTTP_USER_AGENT="Mozilla/5.0 (Android)").get(f"/f/j/{inviter.share_token}/")
    assert landing.status_code == 200
    assert 'src="https://wecom.example/qr/abc.svg"' in landing.content.decode()
    assert LandingVisit.objects.filter(participant=inviter).count() == visits + 1

    assert Client().get("/f/p/not-a-token/").status_code == 404
    assert Client().get(f"/f/j/{inviter.token}/").status_code == 404  # the private token is not a landing
