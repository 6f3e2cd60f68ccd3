"""The typed WeCom API client: the only module that talks to WeCom (or to the emulator, by base URL).

* Tokens: one access_token per (corp, secret), cached in Django's cache until shortly before it expires, fetched
  by one caller at a time (a lock in the process, and a cache-based lock across processes), refreshed once and
  the call retried when WeCom says the token is invalid or expired (40014, 42001, 40001).
* Retries with exponential backoff and jitter on rate limits (45009), "system busy" (-1), timeouts, connection
  errors, HTTP 5xx and unreadable bodies. A call that may have reached WeCom (read timeout, 5xx, truncated body)
  is retried only when it is idempotent; a connection that never opened is always safe to retry.
* Any other errcode raises WeComAPIError(errcode, errmsg, endpoint). Secrets and tokens never appear in errors
  or logs: endpoints are named by path only.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NotRequired, Self, TypedDict, cast

import httpx
from django.core.cache import BaseCache, caches

from siyu.wecom.errors import WeComAPIError, WeComTransportError

logger = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({40001, 40014, 42001})  # invalid credential, invalid token, expired token
RETRYABLE_ERRORS = frozenset({-1, 45009})  # system busy, frequency limit
TOKEN_MARGIN = 300  # seconds before WeCom's expiry that a cached token is dropped
MAX_PAGE = 100  # batch/get_by_user clamps limit to 100


# -- response shapes (wecom-api.md §4; fields WeCom may omit are NotRequired) -------------------------------------


class Department(TypedDict):
    id: int
    name: str
    parentid: int
    order: NotRequired[int]
    name_en: NotRequired[str]
    department_leader: NotRequired[list[str]]


class Member(TypedDict):
    userid: str
    name: str
    department: list[int]
    status: NotRequired[int]  # 1 active, 2 disabled, 4 not yet activated, 5 left
    mobile: NotRequired[str]
    position: NotRequired[str]
    main_department: NotRequired[int]


class ExternalContact(TypedDict):
    external_userid: str
    name: str
    type: int  # 1 WeChat user, 2 WeCom user
    avatar: NotRequired[str]
    gender: NotRequired[int]
    unionid: NotRequired[str]
    position: NotRequired[str]
    corp_name: NotRequired[str]
    corp_full_name: NotRequired[str]


class FollowUserTag(TypedDict):
    group_name: str
    tag_name: str
    type: int  # 1 corp tag, 2 user-defined, 3 rule-group
    tag_id: NotRequired[str]


class FollowUser(TypedDict):
    userid: str
    createtime: int
    remark: NotRequired[str]
    description: NotRequired[str]
    tags: NotRequired[list[FollowUserTag]]
    remark_corp_name: NotRequired[str]
    remark_mobiles: NotRequired[list[str]]
    oper_userid: NotRequired[str]
    add_way: NotRequired[int]
    state: NotRequired[str]


class ContactDetail(TypedDict):
    """externalcontact/get: one customer and (a page of) its followers."""

    external_contact: ExternalContact
    follow_user: list[FollowUser]
    next_cursor: NotRequired[str]


class FollowInfo(TypedDict):
    userid: str
    createtime: int
    remark: NotRequired[str]
    description: NotRequired[str]
    tag_id: NotRequired[list[str]]
    remark_corp_name: NotRequired[str]
    remark_mobiles: NotRequired[list[str]]
    oper_userid: NotRequired[str]
    add_way: NotRequired[int]
    state: NotRequired[str]


class ContactWithFollowInfo(TypedDict):
    external_contact: ExternalContact
    follow_info: FollowInfo


@dataclass(frozen=True)
class ContactPage:
    """One page of batch/get_by_user; `next_cursor` is "" on the last page. Store it to resume a sync."""

    contacts: list[ContactWithFollowInfo]
    next_cursor: str


class CorpTag(TypedDict):
    id: str
    name: str
    create_time: NotRequired[int]
    order: NotRequired[int]
    deleted: NotRequired[bool]


class CorpTagGroup(TypedDict):
    group_id: str
    group_name: str
    create_time: NotRequired[int]
    order: NotRequired[int]
    deleted: NotRequired[bool]
    tag: list[CorpTag]


class NewTag(TypedDict):
    name: str
    order: NotRequired[int]


class GroupChatRef(TypedDict):
    chat_id: str
    status: int  # 0 normal, 1 owner resigned, 2 inheritance in progress, 3 inheritance done


@dataclass(frozen=True)
class GroupChatPage:
    """One page of groupchat/list; `next_cursor` is "" on the last page. Store it to resume a sync."""

    chats: list[GroupChatRef]
    next_cursor: str


class GroupChatInvitor(TypedDict):
    userid: str


class GroupChatMember(TypedDict):
    userid: str  # a corp member's userid (type 1) or a customer's external_userid (type 2)
    type: int
    join_time: int
    join_scene: int  # 1 invited directly, 2 via an invite link, 3 scanned the group QR code
    invitor: NotRequired[GroupChatInvitor]
    unionid: NotRequired[str]
    group_nickname: NotRequired[str]
    name: NotRequired[str]
    state: NotRequired[str]


class GroupChatAdmin(TypedDict):
    userid: str


class GroupChat(TypedDict):
    chat_id: str
    name: str
    owner: str
    create_time: int
    notice: NotRequired[str]
    member_list: list[GroupChatMember]
    admin_list: NotRequired[list[GroupChatAdmin]]
    member_version: NotRequired[str]


class TransferStarted(TypedDict):
    """One customer of a transfer_customer answer: errcode 0 means the 24-hour takeover started."""

    external_userid: str
    errcode: int


class TransferOutcome(TypedDict):
    """One customer of transfer_result: 1 done, 2 waiting, 3 refused, 4 takeover at limit, 5 no transfer record."""

    external_userid: str
    status: int
    takeover_time: int  # when it was taken over or, while waiting, when it will be


@dataclass(frozen=True)
class TransferResultPage:
    """One page of transfer_result (≤1000 customers); `next_cursor` is "" on the last page."""

    customers: list[TransferOutcome]
    next_cursor: str


class UnassignedCustomer(TypedDict):
    """A customer of a resigned member not yet handed to anyone (get_unassigned_list)."""

    handover_userid: str
    external_userid: str
    dimission_time: int


@dataclass(frozen=True)
class UnassignedPage:
    customers: list[UnassignedCustomer]
    next_cursor: str  # "" on the last page


class GroupChatTransferFailure(TypedDict):
    chat_id: str
    errcode: int
    errmsg: str


class ContactWay(TypedDict):
    """get_contact_way: a 「联系我」 way (qr_code only for scene 2)."""

    config_id: str
    type: int  # 1 single member, 2 several members
    scene: int  # 1 mini-program, 2 QR code
    style: NotRequired[int]
    remark: NotRequired[str]
    skip_verify: NotRequired[bool]
    state: NotRequired[str]
    qr_code: NotRequired[str]
    user: NotRequired[list[str]]
    party: NotRequired[list[int]]


@dataclass(frozen=True)
class ContactWayCreated:
    config_id: str
    qr_code: str  # "" for a mini-program way


@dataclass(frozen=True)
class ContactWayPage:
    """One page of list_contact_way (only ways created through the API); `next_cursor` is "" on the last page."""

    config_ids: list[str]
    next_cursor: str


@dataclass(frozen=True)
class MsgTemplateCreated:
    """add_msg_template's answer: the mass message's id and the customers it could not address."""

    msgid: str
    fail_list: list[str]


class WelcomeAttachment(TypedDict):
    """One attachment of a welcome or mass message: {"msgtype": "link", "link": {...}} and the like."""

    msgtype: str
    image: NotRequired[dict[str, str]]
    link: NotRequired[dict[str, str]]
    miniprogram: NotRequired[dict[str, str]]
    video: NotRequired[dict[str, str]]
    file: NotRequired[dict[str, str]]


class JoinWay(TypedDict):
    """groupchat/get_join_way: a 「加入群聊」 way over up to five groups."""

    config_id: str
    scene: int
    remark: NotRequired[str]
    auto_create_room: NotRequired[int]
    room_base_name: NotRequired[str]
    room_base_id: NotRequired[int]
    chat_id_list: list[str]
    qr_code: NotRequired[str]
    state: NotRequired[str]


# -- retries -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently transient failures are retried (`attempts` counts the first try)."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": between half and all of base * 2^(attempt-1), capped."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        # Jitter spreads the retries of many workers hit by the same rate limit; it is not security-relevant.
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311


class _Transient(Exception):
    """A failed exchange worth retrying; `maybe_applied` when WeCom may have acted on the request."""

    def __init__(self, message: str, *, maybe_applied: bool) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


# Per-process locks, one per token cache key, so threads of one worker fetch a token once.
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _process_lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context, built once per process: loading the CA bundle takes ~40 ms, and a client is
    built for every callback a worker processes."""
    return httpx.create_ssl_context()


class WeComClient:
    """WeCom's server API for one corp and one app secret (the customer-contact secret or an app's)."""

    def __init__(
        self,
        base_url: str,
        corp_id: str,
        secret: str,
        timeout: float = 10.0,
        *,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        cache: BaseCache | None = None,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.corp_id = corp_id
        self._secret = secret
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._cache = cache or caches["default"]
        # Keyed by a hash of the secret: two apps of one corp have two tokens, and no secret sits in a cache key.
        digest = hashlib.sha256(f"{corp_id}\0{secret}\0{self.base_url}".encode()).hexdigest()[:24]
        self._token_key = f"wecom:token:{corp_id}:{digest}"
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
            verify=_tls_context(),
            headers={"User-Agent": "siyu-wecom/1"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------------------------------

    def _exchange(self, method: str, path: str, params: dict[str, Any], body: Any | None) -> dict[str, Any]:
        """One HTTP exchange; raises _Transient for anything worth retrying."""
        try:
            response = self._http.request(method, path, params=params, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _Transient(f"cannot connect: {type(exc).__name__}", maybe_applied=False) from exc
        except httpx.TransportError as exc:  # read/write timeouts, protocol errors: the request may have landed
            raise _Transient(type(exc).__name__, maybe_applied=True) from exc
        if response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code}", maybe_applied=True)
        if response.status_code != 200:
            raise WeComTransportError(f"HTTP {response.status_code}", path)
        try:
            data = response.json()
        except ValueError as exc:  # a truncated or non-JSON body
            raise _Transient("unreadable body", maybe_applied=True) from exc
        if not isinstance(data, dict):
            raise _Transient("body is not a JSON object", maybe_applied=True)
        return data

    def _request(
        self, method: str, path: str, params: dict[str, Any], body: Any | None, *, idempotent: bool
    ) -> dict[str, Any]:
        """Exchange with retries on transient failures and on WeCom's retryable errcodes; returns errcode-0 data.

        Token errors are returned to the caller (with their errcode) so it can refresh the token.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                data = self._exchange(method, path, params, body)
            except _Transient as exc:
                if (exc.maybe_applied and not idempotent) or attempt >= self.retry.attempts:
                    raise WeComTransportError(str(exc), path) from exc
                logger.info("WeCom %s: %s, retry %d", path, exc, attempt)
                self._sleep(self.retry.delay(attempt))
                continue
            errcode = _errcode(data)
            if errcode in RETRYABLE_ERRORS and attempt < self.retry.attempts:
                # WeCom refused the call without acting on it, so even a non-idempotent call is safe to repeat.
                logger.info("WeCom %s: errcode %s, retry %d", path, errcode, attempt)
                self._sleep(self.retry.delay(attempt))
                continue
            return data

    # -- token -------------------------------------------------------------------------------------------------

    def _fetch_token(self) -> tuple[str, int]:
        data = self._request(
            "GET", "gettoken", {"corpid": self.corp_id, "corpsecret": self._secret}, None, idempotent=True
        )
        errcode = _errcode(data)
        if errcode != 0:
            # A wrong secret stays wrong: no refresh loop (and WeCom blocks callers that keep trying).
            raise WeComAPIError(errcode, str(data.get("errmsg", "")), "gettoken")
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeComTransportError("gettoken returned no access_token", "gettoken")
        expires_in = data.get("expires_in")
        return token, expires_in if isinstance(expires_in, int) and expires_in > 0 else 7200

    def access_token(self, *, stale: str | None = None) -> str:
        """A valid token: the cached one, unless it is `stale` (WeCom just rejected it), then a fresh one.

        Only one caller fetches: threads of this process queue on a lock; other processes wait on a cache lock
        (bounded: a holder that died releases it after 30 s). Whoever waited re-reads the cache first, so a
        token rejected by many concurrent calls is refreshed once.
        """
        token = self._cache.get(self._token_key)
        if token and token != stale:
            return cast(str, token)
        with _process_lock(self._token_key):
            token = self._cache.get(self._token_key)
            if token and token != stale:
                return cast(str, token)
            lock_key = self._token_key + ":lock"
            deadline = time.monotonic() + 10
            while not self._cache.add(lock_key, "1", timeout=30):
                time.sleep(0.05)  # a real wait: another process is fetching right now
                token = self._cache.get(self._token_key)
                if token and token != stale:
                    return cast(str, token)
                if time.monotonic() > deadline:
                    break
            try:
                token, expires_in = self._fetch_token()
                self._cache.set(self._token_key, token, timeout=max(expires_in - TOKEN_MARGIN, 60))
            finally:
                self._cache.delete(lock_key)
            return token

    # -- calls -------------------------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """Call `path` with the access token; returns the response when errcode is 0, else raises WeComAPIError."""
        token = self.access_token()
        refreshed = False
        while True:
            data = self._request(method, path, {**(params or {}), "access_token": token}, body, idempotent=idempotent)
            errcode = _errcode(data)
            if errcode == 0:
                return data
            if errcode in TOKEN_ERRORS and not refreshed:
                # Invalidated early or expired under us: refresh once (shared with concurrent callers) and retry.
                refreshed = True
                logger.info("WeCom %s: errcode %s, refreshing the access token", path, errcode)
                token = self.access_token(stale=token)
                continue
            raise WeComAPIError(errcode, str(data.get("errmsg", "")), path)

    # Members and departments.

    def department_list(self, department_id: int | None = None) -> list[Department]:
        """department/list: the department and its sub-departments (all visible ones when no id is given)."""
        params = {"id": department_id} if department_id is not None else {}
        return cast(list[Department], self.call("GET", "department/list", params=params).get("department", []))

    def user_list(self, department_id: int, *, fetch_child: bool = False) -> list[Member]:
        """user/list: members of a department (with details), optionally of its sub-departments too."""
        params = {"department_id": department_id, "fetch_child": int(fetch_child)}
        return cast(list[Member], self.call("GET", "user/list", params=params).get("userlist", []))

    # Customers (externalcontact).

    def follow_user_list(self) -> list[str]:
        """externalcontact/get_follow_user_list: userids of members with customer contact enabled."""
        return cast(list[str], self.call("GET", "externalcontact/get_follow_user_list").get("follow_user", []))

    def external_contact_list(self, userid: str) -> list[str]:
        """externalcontact/list: external userids of one member's customers."""
        data = self.call("GET", "externalcontact/list", params={"userid": userid})
        return cast(list[str], data.get("external_userid", []))

    def external_contact_get(self, external_userid: str, *, cursor: str = "") -> ContactDetail:
        """externalcontact/get: a customer and its followers (paged by cursor beyond 500 followers)."""
        params = {"external_userid": external_userid}
        if cursor:
            params["cursor"] = cursor
        return cast(ContactDetail, self.call("GET", "externalcontact/get", params=params))

    def external_contact_batch_page(
        self, userids: Sequence[str], *, cursor: str = "", limit: int = MAX_PAGE
    ) -> ContactPage:
        """externalcontact/batch/get_by_user: one page of the customers of up to 100 members."""
        if not 1 <= len(userids) <= 100:
            raise ValueError("batch/get_by_user takes 1 to 100 userids")
        body: dict[str, Any] = {"userid_list": list(userids), "limit": min(max(limit, 1), MAX_PAGE)}
        if cursor:
            body["cursor"] = cursor
        data = self.call("POST", "externalcontact/batch/get_by_user", body=body)
        return ContactPage(
            contacts=cast(list[ContactWithFollowInfo], data.get("external_contact_list", [])),
            next_cursor=str(data.get("next_cursor") or ""),
        )

    def external_contacts_by_user(
        self, userids: Sequence[str], *, cursor: str = "", limit: int = MAX_PAGE
    ) -> Iterator[ContactPage]:
        """Every page of batch/get_by_user from `cursor` on (a resumed sync passes the cursor it stored)."""
        while True:
            page = self.external_contact_batch_page(userids, cursor=cursor, limit=limit)
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # Corp customer tags.

    def corp_tag_list(self, *, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()) -> list[CorpTagGroup]:
        """externalcontact/get_corp_tag_list: all tag groups, or those of the given tags or groups."""
        body: dict[str, Any] = {}
        if tag_ids:
            body["tag_id"] = list(tag_ids)
        if group_ids:
            body["group_id"] = list(group_ids)
        data = self.call("POST", "externalcontact/get_corp_tag_list", body=body)
        return cast(list[CorpTagGroup], data.get("tag_group", []))

    def corp_tag_add(
        self,
        *,
        tags: Sequence[NewTag],
        group_id: str = "",
        group_name: str = "",
        order: int | None = None,
    ) -> CorpTagGroup:
        """externalcontact/add_corp_tag: add tags to a group (by id, or by name, creating it if new).

        Not idempotent: after a timeout the tags may exist, so it is not retried then; re-read the tag list.
        """
        if bool(group_id) == bool(group_name):
            raise ValueError("give exactly one of group_id or group_name")
        if not tags:
            raise ValueError("give at least one tag")
        body: dict[str, Any] = {"tag": [dict(t) for t in tags]}
        if group_id:
            body["group_id"] = group_id
        else:
            body["group_name"] = group_name
        if order is not None:
            body["order"] = order
        data = self.call("POST", "externalcontact/add_corp_tag", body=body, idempotent=False)
        return cast(CorpTagGroup, data["tag_group"])

    def corp_tag_edit(self, *, id: str, name: str = "", order: int | None = None) -> None:
        """externalcontact/edit_corp_tag: rename or reorder a corp tag or tag group by its id (idempotent)."""
        body: dict[str, Any] = {"id": id}
        if name:
            body["name"] = name
        if order is not None:
            body["order"] = order
        self.call("POST", "externalcontact/edit_corp_tag", body=body)

    def corp_tag_delete(self, *, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()) -> None:
        """externalcontact/del_corp_tag: delete corp tags and/or whole groups (a group goes with its last tag)."""
        if not tag_ids and not group_ids:
            raise ValueError("give tags or groups to delete")
        body: dict[str, Any] = {}
        if tag_ids:
            body["tag_id"] = list(tag_ids)
        if group_ids:
            body["group_id"] = list(group_ids)
        self.call("POST", "externalcontact/del_corp_tag", body=body)

    def mark_tag(
        self, *, userid: str, external_userid: str, add_tag: Sequence[str] = (), remove_tag: Sequence[str] = ()
    ) -> None:
        """externalcontact/mark_tag: set corp tags on a customer as one member sees it (idempotent)."""
        if not add_tag and not remove_tag:
            raise ValueError("give tags to add or to remove")
        body = {
            "userid": userid,
            "external_userid": external_userid,
            "add_tag": list(add_tag),
            "remove_tag": list(remove_tag),
        }
        self.call("POST", "externalcontact/mark_tag", body=body)

    # Customer groups.

    def groupchat_list_page(
        self, *, owner_userids: Sequence[str] = (), cursor: str = "", limit: int = 100, status_filter: int = 0
    ) -> GroupChatPage:
        """externalcontact/groupchat/list: one page of chat ids, of the given owners (at most 100) or of all.

        Without owners WeCom scans the app's whole visible range and refuses (81017) beyond 1000 people, so a
        sync names the owners.
        """
        if len(owner_userids) > 100:
            raise ValueError("groupchat/list takes at most 100 owners")
        body: dict[str, Any] = {"status_filter": status_filter, "limit": min(max(limit, 1), 1000)}
        if owner_userids:
            body["owner_filter"] = {"userid_list": list(owner_userids)}
        if cursor:
            body["cursor"] = cursor
        data = self.call("POST", "externalcontact/groupchat/list", body=body)
        return GroupChatPage(
            chats=cast(list[GroupChatRef], data.get("group_chat_list", [])),
            next_cursor=str(data.get("next_cursor") or ""),
        )

    def groupchat_get(self, chat_id: str, *, need_name: bool = False) -> GroupChat:
        """externalcontact/groupchat/get: a group with its owner, notice and member list."""
        body = {"chat_id": chat_id, "need_name": int(need_name)}
        return cast(GroupChat, self.call("POST", "externalcontact/groupchat/get", body=body)["group_chat"])

    # 「联系我」 contact ways (wecom-api.md §4.3). Adding one is not idempotent: after a timeout the way may exist,
    # so it is not retried then; the caller finds it again by its state (list_contact_way + get_contact_way).

    def contact_way_add(
        self,
        *,
        users: Sequence[str] = (),
        parties: Sequence[int] = (),
        state: str = "",
        remark: str = "",
        skip_verify: bool = True,
        scene: int = 2,
        style: int | None = None,
    ) -> ContactWayCreated:
        """externalcontact/add_contact_way: a QR code (scene 2) or mini-program button (scene 1) for one member
        (type 1) or several (type 2, up to 100 with departments expanded)."""
        if not users and not parties:
            raise ValueError("give at least one user or party")
        single = len(users) == 1 and not parties
        body: dict[str, Any] = {"type": 1 if single else 2, "scene": scene, "skip_verify": skip_verify}
        body["user"] = list(users)
        if parties:
            body["party"] = list(parties)
        if state:
            body["state"] = state
        if remark:
            body["remark"] = remark
        if style is not None:
            body["style"] = style
        data = self.call("POST", "externalcontact/add_contact_way", body=body, idempotent=False)
        return ContactWayCreated(config_id=str(data["config_id"]), qr_code=str(data.get("qr_code") or ""))

    def contact_way_get(self, config_id: str) -> ContactWay:
        """externalcontact/get_contact_way."""
        data = self.call("POST", "externalcontact/get_contact_way", body={"config_id": config_id})
        return cast(ContactWay, data["contact_way"])

    def contact_way_list_page(
        self, *, start_time: int | None = None, end_time: int | None = None, cursor: str = "", limit: int = 1000
    ) -> ContactWayPage:
        """externalcontact/list_contact_way: one page of the API-created ways made in [start_time, end_time]
        (WeCom's default: the last 90 days)."""
        body: dict[str, Any] = {"limit": min(max(limit, 1), 1000)}
        if start_time is not None:
            body["start_time"] = start_time
        if end_time is not None:
            body["end_time"] = end_time
        if cursor:
            body["cursor"] = cursor
        data = self.call("POST", "externalcontact/list_contact_way", body=body)
        return ContactWayPage(
            config_ids=[str(w["config_id"]) for w in data.get("contact_way", [])],
            next_cursor=str(data.get("next_cursor") or ""),
        )

    def contact_way_update(
        self,
        config_id: str,
        *,
        users: Sequence[str] | None = None,
        parties: Sequence[int] | None = None,
        state: str | None = None,
        remark: str | None = None,
        skip_verify: bool | None = None,
        style: int | None = None,
    ) -> None:
        """externalcontact/update_contact_way: only the fields given change; users and parties overwrite.
        Idempotent."""
        fields: dict[str, Any] = {
            "user": None if users is None else list(users),
            "party": None if parties is None else list(parties),
            "state": state,
            "remark": remark,
            "skip_verify": skip_verify,
            "style": style,
        }
        body = {"config_id": config_id, **{name: value for name, value in fields.items() if value is not None}}
        self.call("POST", "externalcontact/update_contact_way", body=body)

    def contact_way_delete(self, config_id: str) -> None:
        """externalcontact/del_contact_way. Deleting one already gone answers 41044 (invalid config_id)."""
        self.call("POST", "externalcontact/del_contact_way", body={"config_id": config_id})

    # Application messages (message/send): alerts to members, e.g. a lost customer.

    def message_send_text(self, *, agentid: int, userids: Sequence[str], content: str) -> list[str]:
        """message/send a text to members by userid; returns the userids WeCom did not know (invaliduser).
        Not idempotent: a retry after a lost answer may deliver twice, so it is not retried on a timeout."""
        body = {"touser": "|".join(userids), "msgtype": "text", "agentid": agentid, "text": {"content": content}}
        data = self.call("POST", "message/send", body=body, idempotent=False)
        return [u for u in str(data.get("invaliduser") or "").split("|") if u]

    # Welcome messages (wecom-api.md §4.4).

    def welcome_send(self, *, welcome_code: str, text: str = "", attachments: Sequence[WelcomeAttachment] = ()) -> None:
        """externalcontact/send_welcome_msg with the add event's welcome_code (valid 20 s, usable once).

        Never retried after it may have reached WeCom: a second send of a used code answers 41051, which would
        hide whether the first one went out. 41050: the code expired or is unknown.
        """
        if not text and not attachments:
            raise ValueError("text and attachments cannot both be empty")
        if len(attachments) > 9:
            raise ValueError("at most 9 attachments")
        body: dict[str, Any] = {"welcome_code": welcome_code}
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = [dict(a) for a in attachments]
        self.call("POST", "externalcontact/send_welcome_msg", body=body, idempotent=False)

    # 「加入群聊」 join ways (wecom-api.md §4.5): a code over up to five groups, the next group created when full.

    def join_way_add(
        self,
        *,
        chat_ids: Sequence[str],
        state: str = "",
        remark: str = "",
        auto_create_room: bool = True,
        room_base_name: str = "",
        room_base_id: int = 0,
        scene: int = 2,
        mark_source: bool = False,
    ) -> str:
        """externalcontact/groupchat/add_join_way: returns the config_id (its qr_code comes from join_way_get).
        Not idempotent, like contact_way_add."""
        body = self._join_way_body(chat_ids, state, remark, auto_create_room, room_base_name, room_base_id, scene)
        body["mark_source"] = mark_source
        data = self.call("POST", "externalcontact/groupchat/add_join_way", body=body, idempotent=False)
        return str(data["config_id"])

    def join_way_get(self, config_id: str) -> JoinWay:
        """externalcontact/groupchat/get_join_way (only ways this app created)."""
        data = self.call("POST", "externalcontact/groupchat/get_join_way", body={"config_id": config_id})
        return cast(JoinWay, data["join_way"])

    def join_way_update(
        self,
        config_id: str,
        *,
        chat_ids: Sequence[str],
        state: str = "",
        remark: str = "",
        auto_create_room: bool = True,
        room_base_name: str = "",
        room_base_id: int = 0,
        scene: int = 2,
    ) -> None:
        """externalcontact/groupchat/update_join_way: restates the whole way (idempotent)."""
        body = self._join_way_body(chat_ids, state, remark, auto_create_room, room_base_name, room_base_id, scene)
        body["config_id"] = config_id
        self.call("POST", "externalcontact/groupchat/update_join_way", body=body)

    def join_way_delete(self, config_id: str) -> None:
        """externalcontact/groupchat/del_join_way."""
        self.call("POST", "externalcontact/groupchat/del_join_way", body={"config_id": config_id})

    @staticmethod
    def _join_way_body(
        chat_ids: Sequence[str],
        state: str,
        remark: str,
        auto_create_room: bool,
        room_base_name: str,
        room_base_id: int,
        scene: int,
    ) -> dict[str, Any]:
        if not 1 <= len(chat_ids) <= 5:
            raise ValueError("a join way takes 1 to 5 chats")
        body: dict[str, Any] = {
            "scene": scene,
            "chat_id_list": list(chat_ids),
            "auto_create_room": int(auto_create_room),
        }
        if state:
            body["state"] = state
        if remark:
            body["remark"] = remark
        if auto_create_room:
            body["room_base_name"] = room_base_name
            body["room_base_id"] = room_base_id
        return body

    # Inheritance (在职继承 / 离职继承, wecom-api.md §4.8). Starting a transfer twice is harmless: WeCom answers
    # 40129 ("already being transferred") for the repeat instead of starting a second one, so the calls may be
    # retried after a timeout like idempotent ones; the caller reconciles 40129 through transfer_result.

    def transfer_customer(
        self,
        *,
        handover_userid: str,
        takeover_userid: str,
        external_userids: Sequence[str],
        transfer_success_msg: str = "",
    ) -> list[TransferStarted]:
        """externalcontact/transfer_customer (on-job): start moving up to 100 customers; one errcode per customer."""
        if not 1 <= len(external_userids) <= 100:
            raise ValueError("transfer_customer takes 1 to 100 customers")
        body: dict[str, Any] = {
            "handover_userid": handover_userid,
            "takeover_userid": takeover_userid,
            "external_userid": list(external_userids),
        }
        if transfer_success_msg:  # omitted: WeCom sends its default text
            body["transfer_success_msg"] = transfer_success_msg
        data = self.call("POST", "externalcontact/transfer_customer", body=body)
        return cast(list[TransferStarted], data.get("customer", []))

    def resigned_transfer_customer(
        self, *, handover_userid: str, takeover_userid: str, external_userids: Sequence[str]
    ) -> list[TransferStarted]:
        """externalcontact/resigned/transfer_customer: hand up to 100 customers of a member who left (40097 if
        the member has not resigned)."""
        if not 1 <= len(external_userids) <= 100:
            raise ValueError("resigned/transfer_customer takes 1 to 100 customers")
        body = {
            "handover_userid": handover_userid,
            "takeover_userid": takeover_userid,
            "external_userid": list(external_userids),
        }
        data = self.call("POST", "externalcontact/resigned/transfer_customer", body=body)
        return cast(list[TransferStarted], data.get("customer", []))

    def transfer_result_page(
        self, *, handover_userid: str, takeover_userid: str, cursor: str = "", resigned: bool = False
    ) -> TransferResultPage:
        """externalcontact/transfer_result (or resigned/transfer_result): one page of the transfers between two
        members, the latest per customer."""
        path = "externalcontact/resigned/transfer_result" if resigned else "externalcontact/transfer_result"
        body: dict[str, Any] = {"handover_userid": handover_userid, "takeover_userid": takeover_userid}
        if cursor:
            body["cursor"] = cursor
        data = self.call("POST", path, body=body)
        return TransferResultPage(
            customers=cast(list[TransferOutcome], data.get("customer", [])),
            next_cursor=str(data.get("next_cursor") or ""),
        )

    def transfer_results(
        self, *, handover_userid: str, takeover_userid: str, resigned: bool = False
    ) -> Iterator[TransferResultPage]:
        """Every page of transfer_result between two members."""
        cursor = ""
        while True:
            page = self.transfer_result_page(
                handover_userid=handover_userid, takeover_userid=takeover_userid, cursor=cursor, resigned=resigned
            )
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def unassigned_page(self, *, cursor: str = "", page_size: int = 1000) -> UnassignedPage:
        """externalcontact/get_unassigned_list: one page of resigned members' customers awaiting inheritance."""
        body: dict[str, Any] = {"page_size": min(max(page_size, 1), 1000)}
        if cursor:
            body["cursor"] = cursor
        data = self.call("POST", "externalcontact/get_unassigned_list", body=body)
        # WeCom says "is_last"; a next_cursor on the last page is ignored so a caller's loop always ends.
        next_cursor = "" if data.get("is_last", True) else str(data.get("next_cursor") or "")
        return UnassignedPage(customers=cast(list[UnassignedCustomer], data.get("info", [])), next_cursor=next_cursor)

    def unassigned_customers(self, *, page_size: int = 1000) -> Iterator[UnassignedPage]:
        """Every page of get_unassigned_list."""
        cursor = ""
        while True:
            page = self.unassigned_page(cursor=cursor, page_size=page_size)
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def groupchat_transfer(self, *, chat_ids: Sequence[str], new_owner: str) -> list[GroupChatTransferFailure]:
        """externalcontact/groupchat/transfer: give up to 100 groups of a resigned owner a new owner; returns the
        chats that failed, each with its errcode (empty: all accepted). 90500 if the owner has not resigned."""
        return self._groupchat_transfer("externalcontact/groupchat/transfer", chat_ids, new_owner)

    def groupchat_onjob_transfer(self, *, chat_ids: Sequence[str], new_owner: str) -> list[GroupChatTransferFailure]:
        """externalcontact/groupchat/onjob_transfer: the same for an owner still in the corp (90502 if resigned)."""
        return self._groupchat_transfer("externalcontact/groupchat/onjob_transfer", chat_ids, new_owner)

    def _groupchat_transfer(self, path: str, chat_ids: Sequence[str], new_owner: str) -> list[GroupChatTransferFailure]:
        # Repeating it is harmless (90507 in progress, 90508 already inherited, 90504 owner unchanged).
        if not 1 <= len(chat_ids) <= 100:
            raise ValueError("groupchat transfer takes 1 to 100 chats")
        data = self.call("POST", path, body={"chat_id_list": list(chat_ids), "new_owner": new_owner})
        return cast(list[GroupChatTransferFailure], data.get("failed_chat_list", []))

    def msg_template_add(
        self,
        *,
        sender: str,
        external_userids: Sequence[str],
        text: str = "",
        attachments: Sequence[WelcomeAttachment] = (),
    ) -> MsgTemplateCreated:
        """externalcontact/add_msg_template (chat_type single, wecom-api.md §4.6): a message from `sender` to these
        customers, sent once the member confirms it in WeCom. Not idempotent: a repeat is a second message.
        Customers WeCom could not address come back in `fail_list`."""
        if not 1 <= len(external_userids) <= 10_000:
            raise ValueError("add_msg_template takes 1 to 10,000 customers")
        body: dict[str, Any] = {"chat_type": "single", "sender": sender, "external_userid": list(external_userids)}
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = [dict(a) for a in attachments]
        data = self.call("POST", "externalcontact/add_msg_template", body=body, idempotent=False)
        return MsgTemplateCreated(msgid=str(data.get("msgid") or ""), fail_list=list(data.get("fail_list") or []))

    # Temporary media (临时素材): images and files for welcome/mass-message attachments, valid 3 days.

    def media_upload(self, *, media_type: str, filename: str, content: bytes, content_type: str = "") -> str:
        """media/upload (multipart, the file in the part "media"); returns the media_id. Not retried after it may
        have landed (a repeat only uploads a second copy, but the caller decides)."""
        if media_type not in ("image", "voice", "video", "file"):
            raise ValueError("media_type must be image, voice, video or file")
        token, refreshed = self.access_token(), False
        files = {"media": (filename, content, content_type or "application/octet-stream")}
        while True:
            try:
                params = {"access_token": token, "type": media_type}
                response = self._http.post("media/upload", params=params, files=files)
            except httpx.TransportError as exc:
                raise WeComTransportError(type(exc).__name__, "media/upload") from exc
            if response.status_code != 200:
                raise WeComTransportError(f"HTTP {response.status_code}", "media/upload")
            try:
                data = response.json()
            except ValueError as exc:
                raise WeComTransportError("unreadable body", "media/upload") from exc
            errcode = _errcode(data)
            if errcode in TOKEN_ERRORS and not refreshed:
                refreshed, token = True, self.access_token(stale=token)
                continue
            if errcode != 0:
                raise WeComAPIError(errcode, str(data.get("errmsg", "")), "media/upload")
            return str(data["media_id"])


def _errcode(data: dict[str, Any]) -> int:
    value = data.get("errcode", 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        return -2
