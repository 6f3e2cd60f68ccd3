"""The demo brand on the offline WeCom (演示企业微信): its connection to the local emulator, and the emulator corp
that holds the same people as siyu's demo tables.

`siyu demo` connects the demo brand to the emulator's URL (`demo_wecom_connect`); `siyu serve` starts the emulator
and hands it the brand (`demo_emulator_attach`): the corp built from the loaded tables (`demo_corp`), the callback
URL pointing back at siyu, and the behaviour simulator at a gentle rate, so the console shows live activity
(customers adding guides through the stores' codes, deleting them, joining groups) arriving through signed
callbacks exactly as from real WeCom. Because the corp mirrors the tables, a `siyu sync` of the demo brand
changes nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass

import httpx
from django.db import transaction

from siyu.core import pii
from siyu.core.models import Guide, Region, Store, Tenant
from siyu.core.scopes import Actor
from siyu.customers.models import Customer, FollowRelation, Identity
from siyu.demo import reference as ref
from siyu.emulator import ids
from siyu.emulator.model import (
    App,
    ContactWay,
    Corp,
    Department,
    ExternalContact,
    Follow,
    GroupChat,
    GroupChatMember,
    Member,
    to_jsonable,
)
from siyu.groups.models import CustomerGroup, GroupMember
from siyu.wecom.crypto import new_callback_token, new_encoding_aes_key
from siyu.wecom.models import WeComConnection
from siyu.wecom.selectors import connection_for_tenant, connection_secrets
from siyu.wecom.services import connection_create, connection_update

CONTACT_AGENTID = 1000002  # the self-built app with customer-contact permission, as in the emulator's seeds
ROOT_DEPARTMENT = 1
# WeCom member status (user/get): 1 active, 5 resigned.
MEMBER_ACTIVE, MEMBER_RESIGNED = 1, 5
# Online campaigns whose 「联系我」 codes the simulated shoppers scan besides the stores' (state → remark).
CAMPAIGN_WAYS = (("ad-douyin-live", "抖音投放"), ("xhs-note-new", "小红书笔记"), ("bag-card-tmall", "天猫包裹卡"))


def emulator_api_url(emulator_url: str) -> str:
    return emulator_url.rstrip("/") + "/cgi-bin/"


@transaction.atomic
def demo_wecom_connect(*, tenant: Tenant, emulator_url: str) -> WeComConnection:
    """Connect the demo brand to the emulator at `emulator_url` (idempotent: an existing connection keeps its
    secrets and only follows the URL). The secret, token and AES key are random per install, like a real corp's."""
    actor = Actor.system(tenant.id)
    api_base_url = emulator_api_url(emulator_url)
    connection = connection_for_tenant(tenant_id=tenant.id)
    if connection is None:
        return connection_create(
            actor=actor,
            corp_id=ref.BRAND_CORP_ID,
            agent_id=str(CONTACT_AGENTID),
            contact_secret=new_encoding_aes_key(),  # any 43 random letters and digits do for the emulator's secret
            callback_token=new_callback_token(),
            encoding_aes_key=new_encoding_aes_key(),
            api_base_url=api_base_url,
        )
    if connection.api_base_url != api_base_url:
        connection = connection_update(actor=actor, changes={"api_base_url": api_base_url})
    return connection


def _unix(value: dt.datetime) -> int:
    return int(value.timestamp())


def demo_corp(*, tenant: Tenant, public_url: str) -> Corp:
    """The demo brand as WeCom would hold it: departments for HQ, regions and stores, the guides and the brand IP as
    members, every customer with a WeCom identity and their active follow relations, and a 「联系我」 code per store
    (state `store-<code>`, the store's active guides) plus a few campaign codes. Reads only."""
    connection = connection_for_tenant(tenant_id=tenant.id)
    if connection is None:
        raise LookupError("the demo brand has no WeCom connection: run `siyu demo` first")
    corp_id = connection.corp_id
    corp = Corp(
        corp_id=corp_id,
        name=tenant.name,
        apps=[
            App(
                agentid=CONTACT_AGENTID,
                name="私域助手",
                secret=connection_secrets(connection).contact_secret,
                customer_contact=True,
            )
        ],
    )
    corp.departments[ROOT_DEPARTMENT] = Department(id=ROOT_DEPARTMENT, name=tenant.name, parentid=0)
    department_of_region: dict[int, int] = {}
    department_of_store: dict[int, int] = {}
    next_id = ROOT_DEPARTMENT + 1
    for order, region in enumerate(Region.objects.filter(tenant=tenant).order_by("id")):
        corp.departments[next_id] = Department(id=next_id, name=region.name, parentid=ROOT_DEPARTMENT, order=order)
        department_of_region[region.id] = next_id
        next_id += 1
    for order, store in enumerate(Store.objects.filter(tenant=tenant).order_by("id")):
        parent = department_of_region[store.region_id]
        corp.departments[next_id] = Department(id=next_id, name=store.name, parentid=parent, order=order)
        department_of_store[store.id] = next_id
        next_id += 1

    guides = list(Guide.objects.filter(tenant=tenant).order_by("id"))
    userid_of = {g.id: g.wecom_userid for g in guides}
    for guide in guides:
        department = department_of_store.get(guide.store_id or 0, ROOT_DEPARTMENT)
        departed = guide.status == Guide.Status.DEPARTED
        corp.members[guide.wecom_userid] = Member(
            userid=guide.wecom_userid,
            name=guide.name,
            department=[department],
            main_department=department,
            position="品牌IP" if guide.kind == Guide.Kind.BRAND_IP else "导购",
            status=MEMBER_RESIGNED if departed else MEMBER_ACTIVE,
            # A departed guide's customers wait in get_unassigned_list until someone inherits them (离职继承).
            dimission_time=_unix(guide.joined_at or dt.datetime(2025, 1, 1, tzinfo=dt.UTC)) if departed else 0,
        )

    external = dict(
        Identity.objects.filter(tenant=tenant, kind=Identity.Kind.WECOM_EXTERNAL_USERID).values_list(
            "customer_id", "value"
        )
    )
    unionids = dict(
        Identity.objects.filter(tenant=tenant, kind=Identity.Kind.UNIONID).values_list("customer_id", "value")
    )
    follows: dict[int, list[FollowRelation]] = defaultdict(list)
    for relation in FollowRelation.objects.filter(tenant=tenant, status=FollowRelation.Status.ACTIVE).order_by(
        "added_at", "id"
    ):
        follows[relation.customer_id].append(relation)
    seq = 0
    customers = Customer.objects.filter(tenant=tenant).order_by("id").values_list("id", "name_enc", "gender")
    for customer_id, name_enc, gender in customers.iterator(chunk_size=5000):
        if customer_id not in follows:
            continue
        external_userid = external.get(customer_id)
        if external_userid is None:
            continue
        contact = ExternalContact(
            external_userid=external_userid,
            name=pii.decrypt(name_enc, field="name") if name_enc else "",
            gender=int(gender or 0),
            unionid=unionids.get(customer_id, ""),
        )
        for relation in follows[customer_id]:
            seq += 1
            contact.follows[userid_of[relation.guide_id]] = Follow(
                userid=userid_of[relation.guide_id],
                createtime=_unix(relation.added_at),
                seq=seq,
                remark=relation.remark,
                description=relation.description,
                add_way=relation.add_way,
                state=relation.state,
            )
        corp.contacts[external_userid] = contact
    corp.seq = seq
    _add_group_chats(corp, tenant=tenant, userid_of=userid_of, unionid_of=unionids, external_of=external)
    _add_contact_ways(corp, tenant=tenant, guides=guides, public_url=public_url)
    corp.reindex()
    return corp


def _add_group_chats(
    corp: Corp,
    *,
    tenant: Tenant,
    userid_of: dict[int, str],
    unionid_of: dict[int, str],
    external_of: dict[int, str],
) -> None:
    """The brand's active customer groups with their current members, as groupchat/get lists them."""
    members: dict[int, list[GroupMember]] = defaultdict(list)
    for member in GroupMember.objects.filter(tenant=tenant, left_at__isnull=True).order_by("join_time", "id"):
        members[member.group_id].append(member)
    for group in CustomerGroup.objects.filter(tenant=tenant, status=CustomerGroup.Status.ACTIVE).order_by("id"):
        corp.group_chats[group.chat_id] = GroupChat(
            chat_id=group.chat_id,
            name=group.name,
            owner=userid_of[group.owner_id],
            create_time=_unix(group.created_at),
            notice=group.notice,
            member_list=[
                GroupChatMember(
                    userid=m.userid,
                    type=m.member_type,
                    join_time=_unix(m.join_time),
                    join_scene=m.join_scene,
                    invitor=m.invitor,
                    unionid=unionid_of.get(m.customer_id or 0, "")
                    if m.member_type == GroupMember.Type.EXTERNAL
                    else "",
                    state=m.state,
                )
                for m in members[group.id]
            ],
        )


def _add_contact_ways(corp: Corp, *, tenant: Tenant, guides: list[Guide], public_url: str) -> None:
    now = int(time.time())
    active = [g for g in guides if g.status == Guide.Status.ACTIVE]
    by_store: dict[int, list[str]] = defaultdict(list)
    for guide in active:
        if guide.store_id is not None:
            by_store[guide.store_id].append(guide.wecom_userid)
    ways: list[tuple[str, str, list[str]]] = [
        (f"store-{store.code}", f"{store.name} 门店码", by_store[store.id])
        for store in Store.objects.filter(tenant=tenant).order_by("id")
        if by_store.get(store.id)
    ]
    brand_ip = [g.wecom_userid for g in active if g.kind == Guide.Kind.BRAND_IP]
    first_guides = [users[0] for _, _, users in ways[:5]]
    ways += [(state, remark, brand_ip + first_guides) for state, remark in CAMPAIGN_WAYS]
    for state, remark, users in ways:
        corp.seq += 1
        config_id = ids.config_id(corp.corp_id, corp.seq)
        corp.contact_ways[config_id] = ContactWay(
            config_id=config_id,
            type=2,  # multi-member code
            scene=2,  # QR code
            create_time=now,
            seq=corp.seq,
            remark=remark[:30],
            state=state[:30],
            user=users[:100],
            qr_code=f"{public_url.rstrip('/')}/emulator/qr/{config_id}.svg",
        )


@dataclass(frozen=True)
class Attached:
    corp_id: str
    pushed: bool  # False: the emulator already held the corp (its state survives restarts)
    customers: int
    simulate_rate: float


def demo_emulator_attach(
    *, tenant: Tenant, emulator_url: str, callback_base_url: str, simulate_rate: float, seed: int = ref.DEFAULT_SEED
) -> Attached:
    """Give the running emulator the demo brand's corp (once: it keeps its state), point its callbacks at siyu,
    and start the behaviour simulator at `simulate_rate` actions per second (0: none)."""
    connection = connection_for_tenant(tenant_id=tenant.id)
    if connection is None:
        raise LookupError("the demo brand has no WeCom connection: run `siyu demo` first")
    secrets_ = connection_secrets(connection)
    base = emulator_url.rstrip("/")
    with httpx.Client(base_url=base, timeout=httpx.Timeout(120, connect=5)) as client:
        held = client.get("/emulator/corps").raise_for_status().json()["corps"]
        summary = next((c for c in held if c["corp_id"] == connection.corp_id), None)
        pushed = summary is None
        if pushed:
            corp = demo_corp(tenant=tenant, public_url=base)
            client.post("/emulator/corps", json=to_jsonable(corp)).raise_for_status()
            customers = len(corp.contacts)
        else:
            customers = int(summary["counts"]["contacts"])
        client.post(
            "/emulator/callback",
            json={
                "corp_id": connection.corp_id,
                "url": f"{callback_base_url.rstrip('/')}/wecom/callback/{connection.corp_id}/",
                "token": secrets_.callback_token,
                "encoding_aes_key": secrets_.encoding_aes_key,
            },
        ).raise_for_status()
        if simulate_rate > 0:
            client.post(
                "/emulator/simulate/run", json={"corp_id": connection.corp_id, "rate": simulate_rate, "seed": seed}
            ).raise_for_status()
    return Attached(corp_id=connection.corp_id, pushed=pushed, customers=customers, simulate_rate=simulate_rate)
