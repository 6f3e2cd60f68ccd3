"""The emulator's own state: plain dataclasses for one or more WeCom corps, with JSON (de)serialisation.

Nothing here knows about HTTP or Django. The whole state lives in memory behind one lock held by
`siyu.emulator.core.Emulator`; `to_jsonable`/`from_jsonable` turn it into the snapshot written under VAR_DIR so
a restarted emulator keeps its corps, customers and tokens.

Field names follow the WeCom JSON they are served as (wecom-api.md §4), so the endpoint code is a thin mapping.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

T = TypeVar("T")


@dataclass
class App:
    """A WeCom application of the corp: its own secret and its own tokens (wecom-api.md §1)."""

    agentid: int
    name: str
    secret: str
    # True for a self-built app configured in 「客户联系 → 可调用接口的应用」;
    # other apps get 48002 on externalcontact/*.
    customer_contact: bool = False


@dataclass
class CallbackConfig:
    """Where and how the corp pushes events: the URL, Token and EncodingAESKey the admin typed in (§2.1)."""

    url: str = ""
    token: str = ""
    encoding_aes_key: str = ""
    agentid: str = ""


@dataclass
class Department:
    id: int
    name: str
    parentid: int
    order: int = 0
    name_en: str = ""
    department_leader: list[str] = field(default_factory=list)


@dataclass
class Member:
    userid: str
    name: str
    department: list[int]
    main_department: int
    position: str = ""
    mobile: str = ""
    gender: str = "0"  # WeCom sends member gender as a string: "0" unknown, "1" male, "2" female
    email: str = ""
    status: int = 1  # 1 active, 2 disabled, 4 not activated, 5 resigned
    # In 「客户联系 → 配置使用范围」: only these members appear in get_follow_user_list and may hold customers.
    customer_contact: bool = True
    alias: str = ""
    open_userid: str = ""
    dimission_time: int = 0  # when the member resigned (status 5); get_unassigned_list reports it


@dataclass
class Follow:
    """One member's side of a customer relationship (a `follow_user` entry)."""

    userid: str
    createtime: int
    seq: int  # corp-wide insertion counter: the stable order cursors page by
    remark: str = ""
    description: str = ""
    tag_ids: list[str] = field(default_factory=list)
    remark_corp_name: str = ""
    remark_mobiles: list[str] = field(default_factory=list)
    oper_userid: str = ""
    add_way: int = 1
    state: str = ""
    # The customer deleted the member (del_follow_user): a one-way relationship that the APIs still return (§5, 84061).
    customer_deleted: bool = False


@dataclass
class ExternalContact:
    external_userid: str
    name: str
    type: int = 1  # 1 WeChat user, 2 WeCom user
    gender: int = 0  # 0 unknown, 1 male, 2 female
    avatar: str = ""
    unionid: str = ""
    position: str = ""
    corp_name: str = ""
    corp_full_name: str = ""
    # Followers by userid, kept in insertion (seq) order so paging over them is stable.
    follows: dict[str, Follow] = field(default_factory=dict)


@dataclass
class Tag:
    id: str
    name: str
    create_time: int
    order: int = 0
    deleted: bool = False


@dataclass
class TagGroup:
    group_id: str
    group_name: str
    create_time: int
    order: int = 0
    deleted: bool = False
    tags: list[Tag] = field(default_factory=list)


@dataclass
class ContactWay:
    config_id: str
    type: int
    scene: int
    create_time: int
    seq: int = 0  # creation order, what list_contact_way's cursor pages by
    style: int = 1
    remark: str = ""
    skip_verify: bool = True
    state: str = ""
    user: list[str] = field(default_factory=list)
    party: list[int] = field(default_factory=list)
    is_temp: bool = False
    expires_in: int = 0
    chat_expires_in: int = 0
    unionid: str = ""
    conclusions: dict[str, Any] = field(default_factory=dict)
    qr_code: str = ""
    # Ways made in the admin console are not visible to list_contact_way (only API-created ones are, §4.3).
    from_api: bool = True


@dataclass
class GroupChatMember:
    userid: str
    type: int  # 1 corp member, 2 external contact
    join_time: int
    join_scene: int = 1  # 1 invited directly, 2 via invite link, 3 scanned the group QR code
    invitor: str = ""
    group_nickname: str = ""
    name: str = ""
    unionid: str = ""
    state: str = ""  # the `state` of the 加入群聊 join way the customer came through


@dataclass
class GroupChat:
    chat_id: str
    name: str
    owner: str
    create_time: int
    notice: str = ""
    status: int = 0  # 0 normal, 1 owner resigned, 2 inheritance in progress, 3 inheritance done
    member_list: list[GroupChatMember] = field(default_factory=list)
    admin_list: list[str] = field(default_factory=list)
    # A resigned owner's group being inherited (status 2): who takes it over, and when that completes.
    transfer_to: str = ""
    transfer_due: float = 0.0


@dataclass
class JoinWay:
    """A 「加入群聊」 way (groupchat/add_join_way): a QR code or mini-program button that puts customers in groups."""

    config_id: str
    scene: int  # 1 mini-program plugin, 2 QR code plugin
    create_time: int
    seq: int
    agentid: int  # the app that made it: apps only see their own join ways (§4.5)
    chat_id_list: list[str] = field(default_factory=list)
    remark: str = ""
    auto_create_room: int = 1
    room_base_name: str = ""
    room_base_id: int = 0
    state: str = ""
    mark_source: bool = False
    qr_code: str = ""


@dataclass
class Transfer:
    """One customer handed from one member to another (在职继承 transfer_customer or 离职继承
    resigned/transfer_customer). Waiting (2) for 24 hours, then taken over (1) unless the customer refused (3),
    the takeover member was at their customer limit (4) or the relationship was gone by then (5)."""

    seq: int
    kind: str  # "onjob" | "resigned"
    external_userid: str
    handover_userid: str
    takeover_userid: str
    started_at: float
    takeover_at: float  # while waiting: when it will complete; afterwards: when it completed or failed
    status: int = 2
    message: str = ""  # transfer_success_msg


@dataclass
class ChatMessage:
    """One chat message as the session archive (会话存档) hands it out after decryption.

    Real WeCom delivers chat content only through that archive (a C SDK pulled by `seq`, content RSA-encrypted per
    message), never through callbacks; the emulator keeps the decrypted form, served under /emulator/chat_messages.
    Field names follow the archive's JSON (msgid, action, from, tolist, roomid, msgtime in ms, msgtype, text).
    """

    seq: int  # the archive's pull position: strictly increasing per corp
    msgid: str
    sender: str  # "from" in the archive's JSON
    tolist: list[str]
    roomid: str  # the group chat's chat_id, "" for a one-to-one chat
    msgtime: int  # milliseconds
    content: str
    msgtype: str = "text"
    action: str = "send"

    def as_archive(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "msgid": self.msgid,
            "action": self.action,
            "from": self.sender,
            "tolist": list(self.tolist),
            "roomid": self.roomid,
            "msgtime": self.msgtime,
            "msgtype": self.msgtype,
            "text": {"content": self.content},
        }


@dataclass
class Material:
    """A piece of content guides share (an article, a product page): what the simulated customers open."""

    material_id: str
    title: str
    url: str


@dataclass
class MaterialOpen:
    """A customer opened a material a member shared. WeCom never reports this; siyu's own tracked link would see
    the visit. The emulator only logs it (GET /emulator/material_opens) so the siyu side can be checked later."""

    seq: int
    at: int
    external_userid: str
    userid: str  # the member who shared it
    material_id: str
    url: str


@dataclass
class Media:
    """A temporary media file (media/upload): only its metadata is kept; it can be used for 3 days."""

    media_id: str
    type: str
    filename: str
    size: int
    created_at: int


@dataclass
class WelcomeCode:
    code: str
    userid: str
    external_userid: str
    issued_at: float
    used: bool = False


@dataclass
class GroupMsgTask:
    userid: str
    status: int = 0  # 0 not sent yet, 2 sent (get_groupmsg_task)
    send_time: int = 0


@dataclass
class GroupMsgResult:
    userid: str
    external_userid: str = ""
    chat_id: str = ""
    # 0 not sent, 1 sent, 2 failed (not a friend any more), 3 failed (the customer's receive quota was used up)
    status: int = 0
    send_time: int = 0


@dataclass
class GroupMsg:
    """A mass message (企业群发) made with add_msg_template: nothing is sent until each member confirms."""

    msgid: str
    chat_type: str
    create_time: int
    seq: int
    creator: str = ""
    create_type: int = 0  # 0 created by the corp (API or admin), 1 by a member
    text: dict[str, Any] = field(default_factory=dict)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    allow_select: bool = False
    tasks: list[GroupMsgTask] = field(default_factory=list)
    results: list[GroupMsgResult] = field(default_factory=list)
    cancelled: bool = False
    reminders: list[float] = field(default_factory=list)  # remind_groupmsg_send calls: at most 3 per 24 h


@dataclass
class MomentJob:
    """add_moment_task's asynchronous job: validated at once, the moment exists when the job is done."""

    jobid: str
    created_at: float
    moment_id: str  # assigned up front, published (visible to the moment APIs) when the job completes
    errcode: int = 0
    errmsg: str = "ok"
    invalid_users: list[str] = field(default_factory=list)
    invalid_departments: list[int] = field(default_factory=list)
    invalid_tags: list[str] = field(default_factory=list)


@dataclass
class MomentTask:
    userid: str
    publish_status: int = 0  # 0 not yet published, 1 published
    publish_time: int = 0


@dataclass
class MomentInteraction:
    create_time: int
    external_userid: str = ""
    userid: str = ""


@dataclass
class Moment:
    """A customer-moment (客户朋友圈) post: made by the corp (add_moment_task, members still publish it in the
    client) or by a member themselves."""

    moment_id: str
    seq: int
    create_time: int
    create_type: int  # 0 corp, 1 personal
    visible_type: int  # 0 visible to part of the customers (a tag filter), 1 public
    creator: str = ""  # "" for moments made through add_moment_task (get_moment_list then omits creator)
    text: str = ""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    tag_list: list[str] = field(default_factory=list)
    tasks: list[MomentTask] = field(default_factory=list)
    # Per publishing member, fixed when they published: the customers in the range they published to (their
    # customers, tag-filtered) and those it actually reached (the relationship still two-way).
    visible: dict[str, list[str]] = field(default_factory=dict)
    sent: dict[str, list[str]] = field(default_factory=dict)
    comments: dict[str, list[MomentInteraction]] = field(default_factory=dict)  # by publishing member
    likes: dict[str, list[MomentInteraction]] = field(default_factory=dict)
    cancelled: bool = False
    visible_from: float = 0.0  # the job's completion time: before it, the moment APIs do not know the id yet


@dataclass
class Token:
    token: str
    corp_id: str
    agentid: int
    expires_at: float


@dataclass
class Corp:
    corp_id: str
    name: str
    apps: list[App] = field(default_factory=list)
    callback: CallbackConfig = field(default_factory=CallbackConfig)
    departments: dict[int, Department] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    contacts: dict[str, ExternalContact] = field(default_factory=dict)
    tag_groups: dict[str, TagGroup] = field(default_factory=dict)
    contact_ways: dict[str, ContactWay] = field(default_factory=dict)
    group_chats: dict[str, GroupChat] = field(default_factory=dict)
    welcome_codes: dict[str, WelcomeCode] = field(default_factory=dict)
    # What the app sent through send_welcome_msg, for tests and the demo to look at (WeCom shows it in the chat).
    welcome_messages: list[dict[str, Any]] = field(default_factory=list)
    # What the app sent through message/send (application messages to members), for tests and the demo.
    app_messages: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, Media] = field(default_factory=dict)  # temporary media by media_id (media/upload)
    group_msgs: dict[str, GroupMsg] = field(default_factory=dict)
    join_ways: dict[str, JoinWay] = field(default_factory=dict)
    moment_jobs: dict[str, MomentJob] = field(default_factory=dict)
    moments: dict[str, Moment] = field(default_factory=dict)
    transfers: list[Transfer] = field(default_factory=list)  # every customer transfer, in start order
    # What customers and members said (the session archive's content) and which materials customers opened; both
    # are capped (EmulatorConfig.activity_log_max) with the oldest dropped, their seq counters keep counting.
    chat_messages: list[ChatMessage] = field(default_factory=list)
    archive_seq: int = 0
    materials: list[Material] = field(default_factory=list)
    material_opens: list[MaterialOpen] = field(default_factory=list)
    open_seq: int = 0
    # Counter behind every generated id and follow seq: ids stay deterministic for a given sequence of calls.
    seq: int = 0

    def __post_init__(self) -> None:
        self._member_follows: dict[str, dict[str, int]] = {}
        self._next_due: float | None = None
        self.reindex()

    # -- derived indexes (not persisted) ---------------------------------------------------------------------

    def reindex(self) -> None:
        """Rebuild member → customers, ordered by follow seq (the order `list` and `batch/get_by_user` page in)."""
        pairs: list[tuple[int, str, str]] = [
            (f.seq, f.userid, c.external_userid) for c in self.contacts.values() for f in c.follows.values()
        ]
        pairs.sort()
        index: dict[str, dict[str, int]] = {}
        for seq, userid, external_userid in pairs:
            index.setdefault(userid, {})[external_userid] = seq
        self._member_follows = index

    def next_due(self) -> float:
        """When the earliest waiting customer or group transfer completes (inf if none): lets the emulator skip
        the settling pass on every call until something is due."""
        if self._next_due is None:
            due = [t.takeover_at for t in self.transfers if t.status == 2]
            due += [c.transfer_due for c in self.group_chats.values() if c.status == 2]
            self._next_due = min(due, default=float("inf"))
        return self._next_due

    def due_changed(self) -> None:
        self._next_due = None

    def customers_of(self, userid: str) -> dict[str, int]:
        """external_userid → follow seq for one member, in seq order."""
        return self._member_follows.get(userid, {})

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def follow_add(self, contact: ExternalContact, follow: Follow) -> None:
        # Re-adding moves the follow to the end (new seq), as a fresh relationship would be listed last.
        contact.follows.pop(follow.userid, None)
        contact.follows[follow.userid] = follow
        index = self._member_follows.setdefault(follow.userid, {})
        index.pop(contact.external_userid, None)
        index[contact.external_userid] = follow.seq

    def follow_remove(self, contact: ExternalContact, userid: str) -> Follow | None:
        follow = contact.follows.pop(userid, None)
        self._member_follows.get(userid, {}).pop(contact.external_userid, None)
        return follow

    def app_by_secret(self, secret: str) -> App | None:
        return next((a for a in self.apps if a.secret == secret), None)

    def app_by_agentid(self, agentid: int) -> App | None:
        return next((a for a in self.apps if a.agentid == agentid), None)

    def tag_index(self) -> dict[str, tuple[TagGroup, Tag]]:
        """Live (not deleted) tags by id."""
        return {t.id: (g, t) for g in self.tag_groups.values() if not g.deleted for t in g.tags if not t.deleted}

    def live_tag_count(self) -> int:
        return sum(1 for g in self.tag_groups.values() if not g.deleted for t in g.tags if not t.deleted)


# -- JSON snapshot ---------------------------------------------------------------------------------------------


def _public_fields(value: Any) -> dict[str, Any]:
    if isinstance(value, Corp):
        # The corp's derived indexes are "_"-prefixed attributes and stay out of the snapshot.
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return vars(value)  # the other state classes hold exactly their fields
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    """JSON text of a state object: the C encoder walks it, calling back only per dataclass (fast for 50k contacts)."""
    return json.dumps(value, default=_public_fields, ensure_ascii=False, separators=(",", ":"))


def to_jsonable(value: Any) -> Any:
    """Dataclasses → dicts, recursively, without `dataclasses.asdict`'s deep copies (snapshots can be large)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


Converter = typing.Callable[[Any], Any] | None  # None: the JSON value is used as it is


def _converter(tp: Any) -> Converter:
    """How to turn the JSON value of a field of type `tp` into the in-memory value (None when no work is needed)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _converter(args[0])
        return None if inner is None else (lambda v: None if v is None else inner(v))
    if origin is list:
        item = _converter(typing.get_args(tp)[0])
        return None if item is None else (lambda v: [item(x) for x in v])
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        item = _converter(value_type)
        # JSON object keys are strings; department ids are ints in memory.
        key = int if key_type is int else None
        if key is None and item is None:
            return None
        return lambda v: {(key(k) if key else k): (item(x) if item else x) for k, x in v.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return lambda v: from_jsonable(tp, v)
    return None


_PLANS: dict[type, dict[str, Converter]] = {}


def from_jsonable(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a dataclass (and its nested dataclasses) from JSON; unknown keys are ignored, missing ones default."""
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = _PLANS[cls] = {f.name: _converter(hints[f.name]) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        if key in plan:
            convert = plan[key]
            kwargs[key] = value if convert is None else convert(value)
    return cls(**kwargs)
