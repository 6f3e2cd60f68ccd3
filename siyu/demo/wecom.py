"""The demo brand on the offline WeCom (演示企业微信): its connection to the local emulator, and the emulator corp
that holds the same people as siyu's demo tables.

`siyu demo` connects the demo brand to the emulator's URL (`demo_wecom_connect`); `siyu serve` starts the emulator
and hands it the brand (`demo_emulator_attach`): the corp built from the loaded tables (`demo_corp`), the callback
URL pointing back at siyu, and the behaviour simulator at a gentle rate, so the console shows live activity
(customers adding guides through the brand's live codes, deleting them, joining groups) arriving through signed
callbacks exactly as from real WeCom. Because the corp mirrors the tables, a `siyu sync` of the demo brand
changes nothing. The emulator keeps its state across restarts (VAR_DIR/emulator/state.json); after a `siyu demo`
the next `siyu serve` hands it the brand afresh, so a corp an earlier version left there gets the brand's codes.

The loader makes the brand's live codes, group codes and fission codes through the owning contexts' services, which
create their WeCom ways as they would in production. It runs before any emulator is up, so for that phase the
connection points at a private emulator in the loader's own process (`demo_wecom_offline`), holding the same
corp; the ways it answers with (config_id, qr_code, users, chats) are what siyu stores, and what `demo_corp`
later gives the real emulator, so the two agree without the loader needing a network.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from siyu.channels.models import LiveCode
from siyu.core import pii
from siyu.core.models import Guide, Region, Store, Tenant
from siyu.core.scopes import Actor
from siyu.customers.models import Customer, FollowRelation, Identity
from siyu.demo import reference as ref
from siyu.demo.models import DemoLoad
from siyu.emulator.config import EmulatorConfig
from siyu.emulator.core import Emulator
from siyu.emulator.model import (
    App,
    ContactWay,
    Corp,
    Department,
    ExternalContact,
    Follow,
    GroupChat,
    GroupChatMember,
    JoinWay,
    Member,
    to_jsonable,
)
from siyu.emulator.server import serve_in_thread
from siyu.groups.models import CustomerGroup, GroupCode, GroupMember, MigrationSource
from siyu.wecom.crypto import new_callback_token, new_encoding_aes_key
from siyu.wecom.models import WeComConnection
from siyu.wecom.selectors import connection_for_tenant, connection_secrets
from siyu.wecom.services import connection_create, connection_update

CONTACT_AGENTID = 1000002  # the self-built app with customer-contact permission, as in the emulator's seeds
ROOT_DEPARTMENT = 1
# WeCom member status (user/get): 1 active, 5 resigned.
MEMBER_ACTIVE, MEMBER_RESIGNED = 1, 5
# The loader's private emulator numbers the ways it creates from here (ids derive from the corp's counter): far
# above where a pushed demo corp's counter continues (one step per follow relation), so a way created later on
# the real emulator never gets the id of one the loader made.
LOADER_SEQ_BASE = 30_000_000


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
            corp_id=tenant.wecom_corp_id or ref.BRAND_CORP_ID,
            agent_id=str(CONTACT_AGENTID),
            contact_secret=new_encoding_aes_key(),  # any 43 random letters and digits do for the emulator's secret
            callback_token=new_callback_token(),
            encoding_aes_key=new_encoding_aes_key(),
            api_base_url=api_base_url,
        )
    if connection.api_base_url != api_base_url:
        connection = connection_update(actor=actor, changes={"api_base_url": api_base_url})
    return connection


@contextmanager
def demo_wecom_offline(*, tenant: Tenant) -> Iterator[WeComConnection]:
    """Within the block, the demo brand's WeCom is a private emulator in this process holding the brand's corp (its
    members and groups): services calling WeCom get the answers the real emulator would give, without a network.

    The brand is connected first (`demo_wecom_connect`, to SIYU_EMULATOR_URL), its connection pointed at the private
    emulator for the block and back at SIYU_EMULATOR_URL after it; the QR links the private emulator hands out
    already name SIYU_EMULATOR_URL, where `siyu serve` runs the real one. Use inside a transaction: should the block
    fail, the rollback restores the connection as it was.
    """
    connection = demo_wecom_connect(tenant=tenant, emulator_url=settings.SIYU_EMULATOR_URL)
    corp = demo_corp(tenant=tenant, contacts=False)
    corp.seq = max(corp.seq, LOADER_SEQ_BASE)
    server = serve_in_thread(Emulator(EmulatorConfig(public_url=settings.SIYU_EMULATOR_URL.rstrip("/")), [corp]))
    try:
        WeComConnection.objects.filter(pk=connection.pk).update(api_base_url=emulator_api_url(server.url))
        yield connection
        WeComConnection.objects.filter(pk=connection.pk).update(api_base_url=connection.api_base_url)
    finally:
        server.stop()


def _unix(value: dt.datetime) -> int:
    return int(value.timestamp())


def demo_corp(*, tenant: Tenant, contacts: bool = True) -> Corp:
    """The demo brand as WeCom would hold it: departments for HQ, regions and stores, the guides and the brand IP as
    members, every customer with a WeCom identity and their active follow relations (unless `contacts` is False),
    the customer groups, and the 「联系我」 and 「加入群聊」 ways of the brand's live codes and group codes as siyu
    stored them when WeCom created them. Reads only."""
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

    # Without contacts (the loader's private emulator) group members need no unionid either.
    identities = Identity.objects.filter(tenant=tenant) if contacts else Identity.objects.none()
    external = dict(identities.filter(kind=Identity.Kind.WECOM_EXTERNAL_USERID).values_list("customer_id", "value"))
    unionids = dict(identities.filter(kind=Identity.Kind.UNIONID).values_list("customer_id", "value"))
    follows: dict[int, list[FollowRelation]] = defaultdict(list)
    relations = FollowRelation.objects.filter(tenant=tenant, status=FollowRelation.Status.ACTIVE)
    for relation in relations.order_by("added_at", "id") if contacts else ():
        follows[relation.customer_id].append(relation)
    seq = 0
    customers = Customer.objects.filter(tenant=tenant).order_by("id").values_list("id", "name_enc", "gender")
    for customer_id, name_enc, gender in customers.iterator(chunk_size=5000) if contacts else ():
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
    _add_contact_ways(corp, tenant=tenant)
    _add_join_ways(corp, tenant=tenant)
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


def _add_contact_ways(corp: Corp, *, tenant: Tenant) -> None:
    """The 「联系我」 ways of the brand's live codes (paused ones too: WeCom has no paused way), as their code's
    service created and last updated them: one member (the strategy's pick) and the code's state."""
    codes = LiveCode.objects.filter(tenant=tenant).exclude(status=LiveCode.Status.DELETED).exclude(config_id="")
    for code in codes.order_by("id"):
        users = list(code.wecom_users)
        corp.contact_ways[code.config_id] = ContactWay(
            config_id=code.config_id,
            type=1 if len(users) == 1 else 2,  # as contact_way_add asks for it
            scene=2,  # QR code
            create_time=_unix(code.created_at),
            seq=corp.next_seq(),
            remark=code.name[:30],
            state=code.wecom_state or code.state,
            user=users,
            qr_code=code.qr_code,
        )


def _add_join_ways(corp: Corp, *, tenant: Tenant) -> None:
    """The 「加入群聊」 ways of the brand's group codes and migration posters, as siyu last wrote them to WeCom."""
    owners: list[tuple[GroupCode | MigrationSource, GroupCode, str]] = [
        (code, code, code.name) for code in GroupCode.objects.filter(tenant=tenant).exclude(config_id="")
    ]
    sources = MigrationSource.objects.filter(tenant=tenant).exclude(config_id="").select_related("migration__code")
    owners += [(s, s.migration.code, f"{s.migration.name}·{s.name}") for s in sources]
    for owner, code, remark in sorted(owners, key=lambda o: o[0].config_id):
        corp.join_ways[owner.config_id] = JoinWay(
            config_id=owner.config_id,
            scene=2,  # QR code
            create_time=_unix(code.created_at),
            seq=corp.next_seq(),
            agentid=CONTACT_AGENTID,
            chat_id_list=list(owner.way_chat_ids),
            remark=remark[:30],
            auto_create_room=int(code.auto_create),
            room_base_name=code.room_base_name,
            room_base_id=code.room_base_id,
            state=owner.state,
            qr_code=owner.qr_code,
        )


@dataclass(frozen=True)
class Attached:
    corp_id: str
    # False: the emulator already held the corp as handed over since the last `siyu demo` (its state survives
    # restarts); True: it was handed the brand now (it held no corp, or one from before the last `siyu demo`).
    pushed: bool
    customers: int
    simulate_rate: float


# What `demo_corp` builds from siyu's tables. The rest of a corp the emulator holds (corp tags created there, chat
# messages, moments, transfers, welcome codes, ...) only the emulator knows: handing the brand over again keeps it.
MIRRORED = ("name", "apps", "departments", "members", "contacts", "group_chats", "contact_ways", "join_ways")


def _corp_outdated(load: DemoLoad | None) -> bool:
    """Whether the emulator's copy of the brand's corp predates the last `siyu demo` (or is of unknown age)."""
    if load is None:
        return False  # not a loaded demo brand: the emulator's corp is whatever was pushed
    if load.emulator_corp_at is None:
        return True
    return load.reloaded_at is not None and load.reloaded_at > load.emulator_corp_at


def demo_emulator_attach(
    *, tenant: Tenant, emulator_url: str, callback_base_url: str, simulate_rate: float, seed: int = ref.DEFAULT_SEED
) -> Attached:
    """Give the running emulator the demo brand's corp, point its callbacks at siyu, and start the behaviour
    simulator at `simulate_rate` actions per second (0: none).

    The emulator keeps its state, so the corp is handed over when it holds none, or one from before the brand's last
    `siyu demo` (an earlier version's, say, without the ways of the brand's codes): what siyu mirrors (MIRRORED) is
    then replaced by the brand as siyu holds it, the rest kept, and the corp's id counter never steps back (the ids
    of ways, contacts and chats the emulator makes derive from it, and must not repeat one siyu stores).
    """
    connection = connection_for_tenant(tenant_id=tenant.id)
    if connection is None:
        raise LookupError("the demo brand has no WeCom connection: run `siyu demo` first")
    secrets_ = connection_secrets(connection)
    load = DemoLoad.objects.filter(tenant=tenant).first()
    started = timezone.now()  # a `siyu demo` from now on is newer than the corp handed over below
    base = emulator_url.rstrip("/")
    with httpx.Client(base_url=base, timeout=httpx.Timeout(120, connect=5)) as client:
        held = client.get("/emulator/corps").raise_for_status().json()["corps"]
        summary = next((c for c in held if c["corp_id"] == connection.corp_id), None)
        pushed = summary is None or _corp_outdated(load)
        if pushed:
            corp = to_jsonable(demo_corp(tenant=tenant))
            if summary is not None:
                kept = client.get("/emulator/corps/export", params={"corp_id": connection.corp_id})
                previous = kept.raise_for_status().json()
                corp = {**previous, **{key: corp[key] for key in MIRRORED}, "seq": max(previous["seq"], corp["seq"])}
            client.post("/emulator/corps", json=corp).raise_for_status()
            customers = len(corp["contacts"])
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
    if pushed and load is not None:
        DemoLoad.objects.filter(pk=load.pk).update(emulator_corp_at=started)
    return Attached(corp_id=connection.corp_id, pushed=pushed, customers=customers, simulate_rate=simulate_rate)
