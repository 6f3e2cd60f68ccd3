"""What people do in the WeCom client or admin console: these change the corp AND fire callbacks.

API calls never produce callbacks (wecom-api.md §3); these are the other half of WeCom's behaviour: a customer
scans a contact way and adds a member, a member deletes a customer, an admin edits corp tags, a customer joins a
group. The admin endpoints (POST /emulator/simulate/...) call them today; the behaviour simulator of issue 4
item 3 will call the same functions.

Every function runs under the emulator's state lock (the caller holds it), validates before it writes, and
returns the events to deliver. Bad input raises `SimulationError` (or the `ApiError` a shared check raises).
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from siyu.emulator import ids
from siyu.emulator.callbacks import Event, chat_event, contact_event, tag_event
from siyu.emulator.cgi.common import contact_member
from siyu.emulator.cgi.groupchat import member_version
from siyu.emulator.cgi.tags import apply_marks, delete_tags, tag_edit, tags_add
from siyu.emulator.inheritance import RESIGNED, transfer_fail_event
from siyu.emulator.model import (
    ChatMessage,
    Corp,
    ExternalContact,
    Follow,
    GroupChat,
    GroupChatMember,
    JoinWay,
    MaterialOpen,
    Moment,
    MomentInteraction,
    MomentTask,
    WelcomeCode,
)

ADD_WAY_QR = 1  # follow_user.add_way: 1 = scanned a QR code (contact way)
TZ = ZoneInfo("Asia/Shanghai")  # WeCom's natural months are China's


class SimulationError(ValueError):
    """The simulated action makes no sense in the current state (unknown member, already a friend, ...)."""


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)


def _contact_for_add(
    corp: Corp, *, external_userid: str | None, name: str | None, gender: int, unionid: str | None
) -> ExternalContact:
    if external_userid and external_userid in corp.contacts:
        return corp.contacts[external_userid]
    n = corp.next_seq()
    customer = ExternalContact(
        external_userid=external_userid or ids.external_userid(corp.corp_id, n),
        name=name or f"客户{n}",
        type=1,
        gender=gender,
        unionid=unionid if unionid is not None else ids.unionid(corp.corp_id, n),
    )
    corp.contacts[customer.external_userid] = customer
    return customer


def contact_add(
    corp: Corp,
    *,
    now: float,
    userid: str = "",
    external_userid: str | None = None,
    name: str | None = None,
    gender: int = 0,
    unionid: str | None = None,
    state: str | None = None,
    config_id: str = "",
    add_way: int = ADD_WAY_QR,
    welcome_code: bool = True,
    half: bool = False,
) -> Outcome:
    """A customer adds a member (e.g. scanned contact way `config_id`, whose `state` the event carries).

    `half` models 免验证添加: add_half_external_contact instead of add_external_contact. The welcome code, when
    issued, is valid for the configured TTL from `now` and usable once.
    """
    if config_id:
        way = corp.contact_ways.get(config_id)
        if way is None:
            raise SimulationError(f"contact way {config_id!r} not found")
        if not userid:
            candidates = way.user or [
                m.userid for m in corp.members.values() if m.customer_contact and set(way.party) & set(m.department)
            ]
            if not candidates:
                raise SimulationError(f"contact way {config_id!r} has no member")
            userid = candidates[0]
        state = way.state if state is None else state
    if not userid:
        raise SimulationError("userid or config_id is required")
    contact_member(corp, userid)
    existing = corp.contacts.get(external_userid or "")
    if existing is not None and userid in existing.follows and not existing.follows[userid].customer_deleted:
        raise SimulationError(f"{external_userid} is already a customer of {userid}")
    customer = _contact_for_add(corp, external_userid=external_userid, name=name, gender=gender, unionid=unionid)
    seq = corp.next_seq()
    follow = Follow(
        userid=userid,
        createtime=int(now),
        seq=seq,
        add_way=add_way,
        state=state or "",
        # The customer initiated the add (scan, search): oper_userid is the customer's id.
        oper_userid=customer.external_userid,
    )
    corp.follow_add(customer, follow)
    extra: dict[str, str] = {}
    if state:
        extra["State"] = state
    code = ""
    if welcome_code:
        code = ids.welcome_code(corp.corp_id, seq)
        corp.welcome_codes[code] = WelcomeCode(code, userid, customer.external_userid, issued_at=now)
        extra["WelcomeCode"] = code
    change_type = "add_half_external_contact" if half else "add_external_contact"
    event = contact_event(
        corp.corp_id, int(now), change_type, userid=userid, external_userid=customer.external_userid, **extra
    )
    return Outcome([event], {"userid": userid, "external_userid": customer.external_userid, "welcome_code": code})


def _follow(corp: Corp, userid: str, external_userid: str) -> tuple[ExternalContact, Follow]:
    customer = corp.contacts.get(external_userid)
    follow = customer.follows.get(userid) if customer else None
    if customer is None or follow is None:
        raise SimulationError(f"{external_userid} is not a customer of {userid}")
    return customer, follow


def contact_delete(corp: Corp, *, now: float, userid: str, external_userid: str, by: str, source: str = "") -> Outcome:
    """`by="member"`: the member deleted the customer (del_external_contact, relationship gone, 84061 after).
    `by="customer"`: the customer deleted the member (del_follow_user, one-way relationship stays readable)."""
    customer, follow = _follow(corp, userid, external_userid)
    if by == "member":
        corp.follow_remove(customer, userid)
        extra = {"Source": source} if source else {}
        event = contact_event(
            corp.corp_id, int(now), "del_external_contact", userid=userid, external_userid=external_userid, **extra
        )
    elif by == "customer":
        if follow.customer_deleted:
            raise SimulationError(f"{external_userid} already deleted {userid}")
        follow.customer_deleted = True
        event = contact_event(corp.corp_id, int(now), "del_follow_user", userid=userid, external_userid=external_userid)
    else:
        raise SimulationError('by must be "member" or "customer"')
    return Outcome([event], {"userid": userid, "external_userid": external_userid})


def contact_edit(
    corp: Corp,
    *,
    now: float,
    userid: str,
    external_userid: str,
    remark: str | None = None,
    description: str | None = None,
    add_tag: list[str] | None = None,
    remove_tag: list[str] | None = None,
) -> Outcome:
    """The member edits the customer's remark, description or corp tags in the client: edit_external_contact."""
    _customer, follow = _follow(corp, userid, external_userid)
    if add_tag or remove_tag:
        apply_marks(corp, userid, external_userid, add_tag or [], remove_tag or [])
    if remark is not None:
        follow.remark = remark
    if description is not None:
        follow.description = description
    event = contact_event(
        corp.corp_id, int(now), "edit_external_contact", userid=userid, external_userid=external_userid
    )
    return Outcome([event], {"tag_ids": list(follow.tag_ids)})


# -- corp tags edited in the admin console ---------------------------------------------------------------------


def tags_create(
    corp: Corp, *, now: float, max_tags: int, group_id: str = "", group_name: str = "", tags: list[str]
) -> Outcome:
    """New tags (and possibly a new group): one create event for a new group, else one per new tag."""
    group, created, new_group = tags_add(
        corp,
        now=int(now),
        max_tags=max_tags,
        group_id=group_id,
        group_name=group_name,
        group_order=0,
        tags=[(name, 0) for name in tags],
    )
    if new_group:
        events = [tag_event(corp.corp_id, int(now), "create", id=group.group_id, tag_type="tag_group")]
    else:
        events = [tag_event(corp.corp_id, int(now), "create", id=t.id, tag_type="tag") for t in created]
    return Outcome(events, {"group_id": group.group_id, "tag_ids": [t.id for t in created]})


def tag_update(corp: Corp, *, now: float, id: str, name: str | None = None, order: int | None = None) -> Outcome:
    tag_type = tag_edit(corp, id, name=name, order=order)
    return Outcome([tag_event(corp.corp_id, int(now), "update", id=id, tag_type=tag_type)])


def tags_delete(corp: Corp, *, now: float, tag_ids: list[str], group_ids: list[str]) -> Outcome:
    if not tag_ids and not group_ids:
        raise SimulationError("tag_ids or group_ids is required")
    emptied = delete_tags(corp, tag_ids, group_ids)
    events = [tag_event(corp.corp_id, int(now), "delete", id=t, tag_type="tag") for t in tag_ids]
    events += [tag_event(corp.corp_id, int(now), "delete", id=g, tag_type="tag_group") for g in group_ids]
    events += [tag_event(corp.corp_id, int(now), "delete", id=g.group_id, tag_type="tag_group") for g in emptied]
    return Outcome(events)


# -- customer groups ---------------------------------------------------------------------------------------------


def _chat(corp: Corp, chat_id: str) -> GroupChat:
    chat = corp.group_chats.get(chat_id)
    if chat is None:
        raise SimulationError(f"chat {chat_id!r} not found")
    return chat


def _chat_member(corp: Corp, member_id: str, *, now: float, join_scene: int, invitor: str) -> GroupChatMember:
    if member_id in corp.members:
        return GroupChatMember(
            member_id,
            type=1,
            join_time=int(now),
            join_scene=join_scene,
            invitor=invitor,
            name=corp.members[member_id].name,
        )
    customer = corp.contacts.get(member_id)
    if customer is None:
        raise SimulationError(f"{member_id!r} is neither a member nor a customer")
    return GroupChatMember(
        member_id,
        type=2,
        join_time=int(now),
        join_scene=join_scene,
        invitor=invitor,
        name=customer.name,
        unionid=customer.unionid,
    )


def chat_create(corp: Corp, *, now: float, owner: str, name: str, members: list[str]) -> Outcome:
    contact_member(corp, owner)
    chat = GroupChat(chat_id=ids.chat_id(corp.corp_id, corp.next_seq()), name=name, owner=owner, create_time=int(now))
    chat.member_list.append(_chat_member(corp, owner, now=now, join_scene=1, invitor=""))
    for member_id in dict.fromkeys(members):
        if member_id != owner:
            chat.member_list.append(_chat_member(corp, member_id, now=now, join_scene=1, invitor=owner))
    corp.group_chats[chat.chat_id] = chat
    return Outcome([chat_event(corp.corp_id, int(now), "create", chat_id=chat.chat_id)], {"chat_id": chat.chat_id})


def chat_join(corp: Corp, *, now: float, chat_id: str, members: list[str], join_scene: int = 3) -> Outcome:
    """Members join (callback JoinScene 0 = invited by a member, 3 = scanned the group QR code)."""
    if join_scene not in (0, 3):
        raise SimulationError("join_scene must be 0 (invited) or 3 (scanned the group QR code)")
    chat = _chat(corp, chat_id)
    present = {m.userid for m in chat.member_list}
    joining = [m for m in dict.fromkeys(members) if m not in present]
    if not joining:
        raise SimulationError("nobody new to add")
    before = member_version(chat)
    # groupchat/get's member join_scene uses 1/2/3, the callback 0/3 (§4.5 note): an invite is 1 there.
    scene, invitor = (3, "") if join_scene == 3 else (1, chat.owner)
    chat.member_list += [_chat_member(corp, m, now=now, join_scene=scene, invitor=invitor) for m in joining]
    event = chat_event(
        corp.corp_id,
        int(now),
        "update",
        chat_id=chat_id,
        UpdateDetail="add_member",
        JoinScene=join_scene,
        MemChangeCnt=len(joining),
        MemChangeList=joining,
        LastMemVer=before,
        CurMemVer=member_version(chat),
    )
    return Outcome([event])


def join_way_target(corp: Corp, way: JoinWay, external_userid: str, *, room_limit: int) -> str | None:
    """The chat of `way` a customer scanning it now lands in: the first listed chat with room; "" when a new chat
    would be created (auto_create_room); None when they cannot join (already in one of its chats, all full)."""
    chats = [corp.group_chats[c] for c in way.chat_id_list if c in corp.group_chats]
    if any(m.userid == external_userid for chat in chats for m in chat.member_list):
        return None
    for chat in chats:
        if len(chat.member_list) < room_limit:
            return chat.chat_id
    return "" if way.auto_create_room and chats else None


def join_way_scan(corp: Corp, *, now: float, config_id: str, external_userid: str, room_limit: int) -> Outcome:
    """A customer scans a 「加入群聊」 code: they join its first chat with room (JoinScene 3, the way's state on
    their member entry); when all are full and auto_create_room is on, the owner of the last chat gets a new chat
    named room_base_name + room_base_id (which then counts up), and the customer joins that."""
    way = corp.join_ways.get(config_id)
    if way is None:
        raise SimulationError(f"join way {config_id!r} not found")
    if external_userid not in corp.contacts:
        raise SimulationError(f"{external_userid!r} is not a customer")
    target = join_way_target(corp, way, external_userid, room_limit=room_limit)
    if target is None:
        raise SimulationError("cannot join: already in one of the way's chats, or every chat is full")
    events: list[Event] = []
    if not target:
        owner = corp.group_chats[next(c for c in reversed(way.chat_id_list) if c in corp.group_chats)].owner
        created = chat_create(corp, now=now, owner=owner, name=f"{way.room_base_name}{way.room_base_id}", members=[])
        way.room_base_id += 1
        target = created.result["chat_id"]
        way.chat_id_list.append(target)
        events += created.events
    joined = chat_join(corp, now=now, chat_id=target, members=[external_userid], join_scene=3)
    corp.group_chats[target].member_list[-1].state = way.state
    return Outcome([*events, *joined.events], {"chat_id": target, "created": len(events) > 0})


def chat_leave(corp: Corp, *, now: float, chat_id: str, members: list[str], quit_scene: int = 0) -> Outcome:
    """Members leave (QuitScene 0 = left by themselves, 1 = removed by the owner or an admin)."""
    if quit_scene not in (0, 1):
        raise SimulationError("quit_scene must be 0 (left) or 1 (removed)")
    chat = _chat(corp, chat_id)
    leaving = [m for m in dict.fromkeys(members) if any(x.userid == m for x in chat.member_list)]
    if not leaving or chat.owner in leaving:
        raise SimulationError("nobody to remove (the owner cannot leave without a new owner)")
    before = member_version(chat)
    chat.member_list = [m for m in chat.member_list if m.userid not in leaving]
    event = chat_event(
        corp.corp_id,
        int(now),
        "update",
        chat_id=chat_id,
        UpdateDetail="del_member",
        QuitScene=quit_scene,
        MemChangeCnt=len(leaving),
        MemChangeList=leaving,
        LastMemVer=before,
        CurMemVer=member_version(chat),
    )
    return Outcome([event])


def chat_update(
    corp: Corp,
    *,
    now: float,
    chat_id: str,
    name: str | None = None,
    notice: str | None = None,
    owner: str | None = None,
) -> Outcome:
    chat = _chat(corp, chat_id)
    events = []
    if owner is not None:
        contact_member(corp, owner)
        chat.owner = owner
        events.append(chat_event(corp.corp_id, int(now), "update", chat_id=chat_id, UpdateDetail="change_owner"))
    if name is not None:
        chat.name = name
        events.append(chat_event(corp.corp_id, int(now), "update", chat_id=chat_id, UpdateDetail="change_name"))
    if notice is not None:
        chat.notice = notice
        events.append(chat_event(corp.corp_id, int(now), "update", chat_id=chat_id, UpdateDetail="change_notice"))
    if not events:
        raise SimulationError("name, notice or owner is required")
    return Outcome(events)


def chat_dismiss(corp: Corp, *, now: float, chat_id: str) -> Outcome:
    _chat(corp, chat_id)
    del corp.group_chats[chat_id]
    return Outcome([chat_event(corp.corp_id, int(now), "dismiss", chat_id=chat_id)])


# -- members leaving, customers refusing a transfer ---------------------------------------------------------------


def member_resign(corp: Corp, *, now: float, userid: str) -> Outcome:
    """The member leaves the corp: their customers await 离职继承 (get_unassigned_list), their groups get status 1.

    Address-book callbacks (change_contact) are not part of the customer-contact events and are not emulated.
    """
    member = corp.members.get(userid)
    if member is None:
        raise SimulationError(f"member {userid!r} not found")
    if member.status == RESIGNED:
        raise SimulationError(f"{userid} already resigned")
    member.status, member.dimission_time = RESIGNED, int(now)
    chats = [c.chat_id for c in corp.group_chats.values() if c.owner == userid]
    for chat_id in chats:
        corp.group_chats[chat_id].status = 1
    return Outcome([], {"userid": userid, "chat_ids": chats})


def transfer_refuse(corp: Corp, *, now: float, external_userid: str) -> Outcome:
    """The customer refuses a waiting transfer within its 24 hours: status 3 and transfer_fail (customer_refused),
    addressed to the takeover member."""
    waiting = [t for t in corp.transfers if t.status == 2 and t.external_userid == external_userid]
    if not waiting:
        raise SimulationError(f"{external_userid} has no transfer waiting")
    transfer = waiting[-1]
    transfer.status, transfer.takeover_at = 3, now
    corp.due_changed()
    event = transfer_fail_event(corp, transfer, "customer_refused")
    return Outcome([event], {"handover_userid": transfer.handover_userid, "takeover_userid": transfer.takeover_userid})


# -- customer moments (no callbacks) -----------------------------------------------------------------------------


def _moment_reach(corp: Corp, moment: Moment, userid: str) -> tuple[list[str], list[str]]:
    """The member's customers a moment is published to (with a tag filter: those carrying one of its tags), and
    those it reaches (the customer has not deleted the member)."""
    wanted = set(moment.tag_list)
    visible, sent = [], []
    for external_userid in corp.customers_of(userid):
        follow = corp.contacts[external_userid].follows[userid]
        if wanted and not wanted.intersection(follow.tag_ids):
            continue
        visible.append(external_userid)
        if not follow.customer_deleted:
            sent.append(external_userid)
    return visible, sent


def moment_publish(corp: Corp, *, now: float, moment_id: str, userid: str) -> Outcome:
    """The member publishes a corp moment (add_moment_task) from their client."""
    moment = corp.moments.get(moment_id)
    if moment is None or moment.visible_from > now:
        raise SimulationError(f"moment {moment_id!r} not found (or its job is still running)")
    if moment.cancelled:
        raise SimulationError(f"moment {moment_id!r} was cancelled")
    task = next((t for t in moment.tasks if t.userid == userid), None)
    if task is None:
        raise SimulationError(f"{userid} is not asked to publish {moment_id}")
    if task.publish_status == 1:
        raise SimulationError(f"{userid} already published {moment_id}")
    task.publish_status, task.publish_time = 1, int(now)
    moment.visible[userid], moment.sent[userid] = _moment_reach(corp, moment, userid)
    return Outcome([], {"visible": len(moment.visible[userid]), "sent": len(moment.sent[userid])})


def moment_post(corp: Corp, *, now: float, userid: str, content: str) -> Outcome:
    """The member posts a moment of their own (create_type 1), visible to all their customers."""
    contact_member(corp, userid)
    if not content:
        raise SimulationError("content is required")
    seq = corp.next_seq()
    moment_id = ids.moment_id(corp.corp_id, seq)
    moment = Moment(
        moment_id=moment_id,
        seq=seq,
        create_time=int(now),
        create_type=1,
        visible_type=1,
        creator=userid,
        text=content,
        tasks=[MomentTask(userid, 1, int(now))],
        visible_from=now,
    )
    moment.visible[userid], moment.sent[userid] = _moment_reach(corp, moment, userid)
    corp.moments[moment_id] = moment
    return Outcome([], {"moment_id": moment_id})


def moment_interact(corp: Corp, *, now: float, moment_id: str, userid: str, external_userid: str, kind: str) -> Outcome:
    """A customer who saw the member's moment comments on it or likes it."""
    moment = corp.moments.get(moment_id)
    if moment is None or external_userid not in moment.sent.get(userid, []):
        raise SimulationError(f"{external_userid} did not receive {userid}'s moment {moment_id!r}")
    if kind not in ("comment", "like"):
        raise SimulationError('kind must be "comment" or "like"')
    target = moment.comments if kind == "comment" else moment.likes
    target.setdefault(userid, []).append(MomentInteraction(int(now), external_userid=external_userid))
    return Outcome([], {})


# -- chat content and material opens (no callbacks) ------------------------------------------------------------


def _trim(log: list[Any], keep: int) -> None:
    # Dropping in chunks of a tenth keeps appends amortised O(1) instead of shifting the list on every message.
    if len(log) > keep + max(1, keep // 10):
        del log[: len(log) - keep]


def _live_follow(corp: Corp, userid: str, external_userid: str) -> Follow:
    """A relationship both sides still have: the member did not delete the customer nor the customer the member."""
    _customer, follow = _follow(corp, userid, external_userid)
    if follow.customer_deleted:
        raise SimulationError(f"{external_userid} deleted {userid}: they can no longer chat")
    return follow


def message_send(
    corp: Corp, *, now: float, sender: str, receiver: str = "", chat_id: str = "", content: str, keep: int
) -> Outcome:
    """Someone says `content` in a one-to-one chat (member ↔ customer) or in a customer group.

    Real WeCom pushes no callback for chat content; it is only readable through the session archive, which the
    emulator stands in for with its message store (GET /emulator/chat_messages).
    """
    if not content:
        raise SimulationError("content is required")
    if chat_id:
        chat = _chat(corp, chat_id)
        present = [m.userid for m in chat.member_list]
        if sender not in present:
            raise SimulationError(f"{sender!r} is not in chat {chat_id}")
        tolist = [m for m in present if m != sender]
    else:
        if sender in corp.members:
            _live_follow(corp, sender, receiver)
        elif receiver in corp.members:
            _live_follow(corp, receiver, sender)
        else:
            raise SimulationError("a one-to-one chat is between a member and one of their customers")
        tolist = [receiver]
    corp.archive_seq += 1
    seq = corp.archive_seq
    message = ChatMessage(
        seq=seq,
        msgid=ids.archive_msgid(corp.corp_id, seq, int(now)),
        sender=sender,
        tolist=tolist,
        roomid=chat_id,
        msgtime=int(now * 1000),
        content=content,
    )
    corp.chat_messages.append(message)
    _trim(corp.chat_messages, keep)
    return Outcome([], {"seq": seq, "msgid": message.msgid})


def material_open(
    corp: Corp, *, now: float, external_userid: str, userid: str, material_id: str, keep: int, url: str = ""
) -> Outcome:
    """A customer opens a material `userid` shared with them; logged only (WeCom does not see link visits)."""
    _live_follow(corp, userid, external_userid)
    material = next((m for m in corp.materials if m.material_id == material_id), None)
    if material is None and not url:
        raise SimulationError(f"material {material_id!r} not found (give its url)")
    corp.open_seq += 1
    opened = MaterialOpen(
        seq=corp.open_seq,
        at=int(now),
        external_userid=external_userid,
        userid=userid,
        material_id=material_id,
        url=url or (material.url if material else ""),
    )
    corp.material_opens.append(opened)
    _trim(corp.material_opens, keep)
    return Outcome([], {"seq": opened.seq})


# -- mass messages -----------------------------------------------------------------------------------------------


def _month(moment: float) -> tuple[int, int]:
    local = dt.datetime.fromtimestamp(moment, TZ)
    return local.year, local.month


def groupmsg_send(corp: Corp, *, now: float, msgid: str, userid: str) -> Outcome:
    """The member confirms a mass message in the client: it goes out to their share of its recipients.

    A customer receives at most (days in the month) mass messages per natural month (§4.6, the current default
    rule); beyond that the send result is status 3. Customers who are no longer friends get status 2.
    """
    msg = corp.group_msgs.get(msgid)
    if msg is None:
        raise SimulationError(f"mass message {msgid!r} not found")
    if msg.cancelled:
        raise SimulationError(f"mass message {msgid!r} was cancelled")
    task = next((t for t in msg.tasks if t.userid == userid), None)
    if task is None:
        raise SimulationError(f"{userid} has no task in {msgid}")
    if task.status == 2:
        raise SimulationError(f"{userid} already sent {msgid}")
    task.status, task.send_time = 2, int(now)
    year, month = _month(now)
    quota = calendar.monthrange(year, month)[1]
    received: dict[str, int] = {}
    for other in corp.group_msgs.values():
        for r in other.results:
            if r.external_userid and r.status == 1 and _month(r.send_time) == (year, month):
                received[r.external_userid] = received.get(r.external_userid, 0) + 1
    counts = {1: 0, 2: 0, 3: 0}
    for result in msg.results:
        if result.userid != userid:
            continue
        if result.chat_id:
            result.status = 1 if result.chat_id in corp.group_chats else 2
        else:
            customer = corp.contacts.get(result.external_userid)
            follow = customer.follows.get(userid) if customer else None
            if follow is None or follow.customer_deleted:
                result.status = 2
            elif received.get(result.external_userid, 0) >= quota:
                result.status = 3
            else:
                result.status = 1
                received[result.external_userid] = received.get(result.external_userid, 0) + 1
        result.send_time = int(now) if result.status == 1 else 0
        counts[result.status] += 1
    return Outcome([], {"sent": counts[1], "not_friend": counts[2], "over_quota": counts[3]})
