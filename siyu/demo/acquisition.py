"""Phase `acquisition` of the demo loader: the brand's live codes (渠道活码) with their welcome messages (欢迎语), group
live codes (群活码), store-code settings (门店活码) and a running fission campaign (任务宝) with its participants.

Everything goes through the owning contexts' services (siyu.channels, siyu.groups, siyu.storecodes,
siyu.campaigns), so the codes are validated, audited and shaped exactly as a person's would be, including the
WeCom ways those services create. The loader runs before any emulator is up, so the phase runs inside
`demo_wecom_offline` (siyu.demo.wecom): the brand's connection points, for the phase only, at a private emulator
in this process holding the brand's corp. The ways it creates there (config_id, qr_code, member, chats) are what
the services store, and what `demo_corp` later hands the real emulator, so the codes work once `siyu serve` runs:
a simulated scan of a code's way is attributed to the code, and a sync changes nothing.

The codes are also given the history they would have had, had they existed all year, since their stats count
adds (and group joins) from when the code, or the group's place in it, was made:

- store and channel codes are dated before the demo's year (their states are the ones the timeline's adds carry:
  `store-<code>`, `ad-douyin`, `xhs-note`, `bag-card-<shop>`); group codes and their groups' places in them are
  dated when each group was made, and the groups' members carry the code's state (they scanned its QR);
- the fission campaign's joins are the timeline's referral adds of its host since it began (`fission_plan`).
  Each goes, in time order, through `fission_invite_replay` (`fission_invite_record`, what the add hook calls, for
  an add of the past) once the add carries the state of the code it came through (the campaign's, or the
  inviter's own, made by `participant_code_ensure` when they opened their page); every hold is settled by
  `fission_invites_settle` at the minute it ended, so counts, fraud scores, reviews and rewards come from the
  campaigns service itself, at the times they would have. What the services stamp with the wall clock rather than
  the add's time (a campaign's or a code's creation, an invite's waiting message, landing visits and devices) is
  dated to the moment it happened by the campaigns context's replay services; rewards are marked fulfilled
  (`reward_fulfil_replay`) when they would have been handed over: coupons at once, gifts two days later.

WeCom's side of a historical add (welcome sends, the way's rotation) is not replayed: those belong to a moment that
has passed, and siyu keeps only what it would still hold.
"""

from __future__ import annotations

import datetime as dt
import heapq
from typing import TYPE_CHECKING, Any

from django.db import models

from siyu.analytics.models import Event
from siyu.campaigns.selectors import campaign_row_counts, grant_list, participant_of_customer
from siyu.campaigns.services import (
    TierInput,
    campaign_activate,
    campaign_backdate,
    campaign_create,
    device_hash,
    entry_state,
    fission_invite_replay,
    fission_invites_settle,
    landing_visit_replay,
    participant_code_ensure,
    participant_device_replay,
    reward_fulfil_replay,
)
from siyu.channels.models import LiveCode, LiveCodeGuide, WelcomeMessage
from siyu.channels.services import live_code_create, welcome_message_save
from siyu.core.models import Guide, Tenant
from siyu.core.scopes import Actor
from siyu.customers.models import FollowRelation
from siyu.demo import reference as ref
from siyu.demo.generate import DAYS
from siyu.demo.wecom import demo_wecom_offline
from siyu.groups.models import CustomerGroup, GroupCode, GroupCodeSlot, GroupMember
from siyu.groups.services import GroupCodeInput, GroupSlotInput, group_code_create
from siyu.storecodes.models import StoreCodeSettings
from siyu.storecodes.services import store_code_settings_update

if TYPE_CHECKING:
    from siyu.campaigns.models import Participant
    from siyu.demo.services import DemoRun

CHANNEL_TAG_GROUP = "渠道"
STORE_CODE_TAG = "门店扫码"
LOCATOR_RADIUS_M = 5_000
LOCATOR_TIME_ZONE = "Asia/Shanghai"
JOIN_SCENE_QR = 3  # groupchat/get's join_scene for a member who scanned the group's QR code
# Phones the landing visits come from (the device fingerprint hashes a cookie id with the user agent).
USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 MicroMessenger/8.0.49",
    "Mozilla/5.0 (Linux; Android 14; V2309A) AppleWebKit/537.36 Chrome/116.0 Mobile MicroMessenger/8.0.47",
    "Mozilla/5.0 (Linux; Android 13; 22081212C) AppleWebKit/537.36 Chrome/112.0 Mobile MicroMessenger/8.0.44",
)
# When rewards reached the participants (by the reward kinds of ref.FISSION_TIERS): coupons at once, gifts when the
# warehouse shipped them.
HANDED_OVER_AFTER = {"coupon": dt.timedelta(minutes=1), "gift": dt.timedelta(days=2)}

# The rows this phase leaves, counted for the load's summary (services write several tables per call); the campaigns
# context counts its own (`campaign_row_counts`).
WRITTEN: tuple[type[models.Model], ...] = (
    LiveCode, LiveCodeGuide, WelcomeMessage, GroupCode, GroupCodeSlot, StoreCodeSettings,
)  # fmt: skip


def acquisition_total(run: DemoRun) -> int:
    """Steps of the phase's progress bar: a code, a group code or a campaign join each."""
    return len(run.org.stores) + len(ref.LIVE_CODES) + len(ref.GROUP_CODE_CITIES) + len(run.fission.joins) + 2


def demo_acquisition_create(*, run: DemoRun) -> int:
    """Phase `acquisition`: live codes and welcome messages, group codes, the store locator, a fission campaign."""
    tenant = Tenant.objects.get(pk=run.tenant_id)
    actor = Actor.system(tenant.id)
    with demo_wecom_offline(tenant=tenant):
        fallback = _live_codes(run, actor)
        _welcome_messages(run, actor)
        _group_codes(run, actor)
        store_code_settings_update(
            actor=actor, radius_m=LOCATOR_RADIUS_M, time_zone=LOCATOR_TIME_ZONE, fallback_live_code_id=fallback
        )
        run.reporter.advance(1)
        _fission(run, actor)
    rows = sum(m.objects.filter(tenant_id=tenant.id).count() for m in WRITTEN)  # type: ignore[attr-defined]
    return rows + sum(campaign_row_counts(actor=actor).values())


def _link(title_url_desc: tuple[str, str, str]) -> dict[str, str]:
    title, url, desc = title_url_desc
    return {"msgtype": "link", "title": title, "url": url, "desc": desc}


def _live_codes(run: DemoRun, actor: Actor) -> int:
    """A code per store over its active guides, and the channel codes; returns the brand IP code's id."""
    org, guide_ids = run.org, run.guide_ids
    tags = run.tag_ids()
    store_ids = run.store_ids()
    made: list[int] = []
    for store in org.stores:
        guides = [guide_ids[g.index] for g in org.guides_by_store[store.code] if g.status == Guide.Status.ACTIVE]
        if not guides:
            continue
        flagship = store.weight >= ref.STORE_CODE_FLAGSHIP_WEIGHT
        capped = {g: {"daily_cap": ref.STORE_CODE_FRANCHISE_CAP} for g in guides} if store.franchisee_code else None
        code = live_code_create(
            actor=actor,
            name=ref.STORE_CODE_NAME.format(store=store.name),
            guide_ids=guides,
            state=f"store-{store.code}",
            purpose=LiveCode.Purpose.STORE,
            store_id=store_ids[store.code],
            tag_ids=[tags[(CHANNEL_TAG_GROUP, STORE_CODE_TAG)]],
            strategy=LiveCode.Strategy.LEAST_LOADED if flagship else LiveCode.Strategy.ROUND_ROBIN,
            welcome_text=ref.STORE_CODE_WELCOME,
            welcome_attachments=[_link(ref.STORE_CODE_LINK)],
            guide_options=capped,
        )
        made.append(code.id)
        run.reporter.advance(1)
    brand_ip = guide_ids[org.brand_ip.index]
    leads = [brand_ip] + [guide_ids[org.guides_by_store[s.code][0].index] for s in org.stores]
    fallback = 0
    for ref_code in ref.LIVE_CODES:
        guides = leads if ref_code.leads else [brand_ip]
        code = live_code_create(
            actor=actor,
            name=ref_code.name,
            guide_ids=guides,
            state=ref_code.state,
            tag_ids=[tags[(CHANNEL_TAG_GROUP, ref_code.tag)]] if ref_code.tag else [],
            strategy=ref_code.strategy,
            welcome_text=ref_code.welcome,
            welcome_attachments=[_link(ref_code.link)] if ref_code.link else [],
            guide_options={g: {"daily_cap": ref_code.daily_cap} for g in guides} if ref_code.daily_cap else None,
        )
        made.append(code.id)
        if ref_code.state == ref.FALLBACK_CODE_STATE:
            fallback = code.id
        run.reporter.advance(1)
    # The codes were there before the year of adds the timeline holds: their stats count adds since creation.
    LiveCode.objects.filter(id__in=made).update(created_at=run.load.anchor - dt.timedelta(days=DAYS + 3))
    return fallback


def _welcome_messages(run: DemoRun, actor: Actor) -> None:
    """The brand's default welcome message and the brand IP's own (the codes carry theirs)."""
    welcome_message_save(actor=actor, scope=WelcomeMessage.Scope.DEFAULT, text=ref.DEFAULT_WELCOME)
    brand_ip = run.guide_ids[run.org.brand_ip.index]
    welcome_message_save(actor=actor, scope=WelcomeMessage.Scope.GUIDE, text=ref.BRAND_IP_WELCOME, guide_id=brand_ip)


def _group_codes(run: DemoRun, actor: Actor) -> None:
    """A group code per city of GROUP_CODE_CITIES, over the city's member groups that have room."""
    groups = {g.name: g for g in CustomerGroup.objects.filter(tenant_id=run.tenant_id)}
    store_ids = run.store_ids()
    for city, slug, threshold in ref.GROUP_CODE_CITIES:
        names = [ref.GROUP_NAME.format(city=city, number=n) for n in range(1, 6)]
        chosen = [
            groups[name]
            for name in names
            if name in groups
            and groups[name].status == CustomerGroup.Status.ACTIVE
            and groups[name].member_count < threshold
        ]
        store = next((s for s in run.org.stores if s.city == city), None)
        if not chosen or store is None:
            run.reporter.advance(1)
            continue
        code = group_code_create(
            actor=actor,
            data=GroupCodeInput(
                name=f"澄光{city}会员群",
                state=f"group-{slug}",
                groups=[GroupSlotInput(group_id=g.id) for g in chosen],
                store_id=store_ids[store.code],
                default_threshold=threshold,
                room_base_name=f"澄光{city}会员群",
                room_base_id=len(names) + 1,
                invite_text=ref.GROUP_CODE_INVITE.format(city=city),
            ),
        )
        # The code came with its first group and took each group from its start: the members scanned its QR.
        for group in chosen:
            GroupCodeSlot.objects.filter(code=code, group=group).update(added_at=group.created_at)
        GroupCode.objects.filter(id=code.id).update(created_at=min(g.created_at for g in chosen))
        GroupMember.objects.filter(
            group__in=chosen, member_type=GroupMember.Type.EXTERNAL, join_scene=JOIN_SCENE_QR
        ).update(state=code.state)
        run.reporter.advance(1)


def _device(run: DemoRun, number: int) -> str:
    return device_hash(cookie_id=f"demo-{run.load.seed}-{number}", user_agent=USER_AGENTS[number % len(USER_AGENTS)])


def _fission(run: DemoRun, actor: Actor) -> None:
    """The running fission campaign, hosted by the brand IP, with its joins replayed through the service."""
    plan, tenant_id, ids = run.fission, run.tenant_id, run.customer_ids
    brand_ip = run.guide_ids[run.org.brand_ip.index]
    tiers = [
        TierInput(threshold=n, reward_kind=kind, reward_name=name, stock=stock, payload=dict(payload))
        for n, kind, name, stock, payload in ref.FISSION_TIERS
    ]
    campaign = campaign_create(
        actor=actor,
        name=ref.FISSION_NAME,
        starts_at=plan.starts_at,
        ends_at=plan.ends_at,
        tiers=tiers,
        guide_ids=[brand_ip],
        poster_caption=ref.FISSION_CAPTION,
    )
    campaign = campaign_activate(actor=actor, campaign_id=campaign.id)
    prepared = plan.starts_at - dt.timedelta(days=3)
    campaign_backdate(actor=actor, campaign_id=campaign.id, created_at=prepared)
    LiveCode.objects.filter(id=campaign.entry_live_code_id).update(created_at=prepared)
    run.reporter.advance(1)
    customers = [ids[j.customer] for j in plan.joins]
    # Each join is the customer's first add, of the brand IP (a customer's second guide is never their first).
    relations = dict(
        FollowRelation.objects.filter(tenant_id=tenant_id, guide_id=brand_ip, customer_id__in=customers).values_list(
            "customer_id", "id"
        )
    )
    participants: dict[int, Participant] = {}
    settle_at: list[dt.datetime] = []  # when pending holds end (a minute's grace, as the settle job is scheduled)
    for n, join in enumerate(plan.joins):
        _settle(tenant_id, settle_at, until=join.at)
        customer_id, relation_id = ids[join.customer], relations[ids[join.customer]]
        inviter = participants[join.inviter] if join.inviter is not None else None
        if inviter is None:
            code_id, state = campaign.entry_live_code_id, entry_state(campaign.id)
        else:
            code_id, state = inviter.live_code_id, inviter.code_state
            for k, device in enumerate(join.visits):
                landing_visit_replay(
                    actor=actor,
                    participant_id=inviter.id,
                    fingerprint=_device(run, device),
                    at=join.at - dt.timedelta(minutes=3 * (len(join.visits) - k)),
                )
        _attribute(tenant_id, relation_id, customer_id, brand_ip, join.at, state)
        if code_id is None:  # the plan has inviters share before they invite; activation makes the entry code
            raise RuntimeError(f"fission join {n} has no code to come through")
        hold_until = fission_invite_replay(actor=actor, live_code_id=code_id, follow_relation_id=relation_id)
        if hold_until is not None:
            heapq.heappush(settle_at, hold_until + dt.timedelta(minutes=1))
        participant = participant_of_customer(actor=actor, campaign_id=campaign.id, customer_id=customer_id)
        if join.shared_at is not None:
            # They opened their page (on their own phone) and got their personal code and poster.
            participant_device_replay(
                actor=actor, participant_id=participant.id, fingerprint=_device(run, n), at=join.shared_at
            )
            participant = participant_code_ensure(participant=participant)
            LiveCode.objects.filter(id=participant.live_code_id).update(created_at=join.shared_at)
        participants[n] = participant
        run.reporter.advance(1)
    _settle(tenant_id, settle_at, until=run.load.anchor)
    for grant in grant_list(actor=actor, campaign_id=campaign.id).order_by("id"):
        handed_over = grant.granted_at + HANDED_OVER_AFTER.get(grant.kind, dt.timedelta(days=1))
        if handed_over < run.load.anchor:
            reward_fulfil_replay(actor=actor, grant_id=grant.id, fulfilled_at=handed_over)


def _attribute(tenant_id: int, relation_id: int, customer_id: int, guide_id: int, at: dt.datetime, state: str) -> None:
    """The add came through a campaign code: its follow relation and contact.added event carry the code's state,
    and the add way of a scanned QR code (the timeline had it as a shared business card)."""
    add_way = FollowRelation.AddWay.QR_CODE
    FollowRelation.objects.filter(id=relation_id).update(state=state, add_way=add_way)
    properties: dict[str, Any] = {"guide_id": guide_id, "add_way": int(add_way), "state": state}
    Event.objects.filter(
        tenant_id=tenant_id, type="contact.added", customer_id=customer_id, guide_id=guide_id, occurred_at=at
    ).update(properties=properties)


def _settle(tenant_id: int, due: list[dt.datetime], *, until: dt.datetime) -> None:
    """Run the settle job at each moment a hold ended, up to `until`."""
    while due and due[0] <= until:
        fission_invites_settle(tenant_id=tenant_id, now=heapq.heappop(due))
