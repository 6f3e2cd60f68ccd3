"""Customer and group inheritance (在职继承 / 离职继承, wecom-api.md §4.8): the rules checked when a transfer
starts, and WeCom's own time-driven completion of it.

A customer transfer starts through the API (transfer_customer on-job, resigned/transfer_customer for a member
who left) and waits 24 hours, during which the customer may refuse (POST /emulator/simulate/transfer/refuse →
transfer_fail with FailReason customer_refused). When the window ends `settle` completes it, as WeCom does on its
own: the takeover member gets the customer (add_external_contact, unless they already were friends) and the
handover member loses them (del_external_contact with Source DELETE_BY_TRANSFER for an on-job transfer). A takeover
member at their customer cap gets status 4 and transfer_fail with customer_limit_exceed.

Choices where the doc is silent, so a reader knows they are the emulator's:
- status 5 ("no transfer record") is given to a transfer whose handover relationship was gone (deleted by either
  side) when it came due: there was nothing left to take over;
- the takeover member's new follow keeps the handover's remark, description and corp tags, add_way 202 (assigned by
  an admin, WeCom's add_way table), no state; a resigned member's side ends silently (their account is gone);
- every started on-job transfer counts towards the "2 within 90 days" limit, refused ones included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from siyu.emulator.callbacks import Event, contact_event
from siyu.emulator.errors import ErrCode
from siyu.emulator.model import Corp, Follow, GroupChat, GroupChatMember, Transfer

if TYPE_CHECKING:
    from siyu.emulator.config import EmulatorConfig

ADD_WAY_ASSIGNED = 202  # follow_user.add_way: assigned by an admin / owner (inheritance)
RESIGNED = 5  # Member.status of a member who left the corp


def transfer_check(
    corp: Corp, *, kind: str, handover: str, external_userid: str, now: float, config: EmulatorConfig
) -> ErrCode:
    """The per-customer errcode of a transfer request (0: it may start)."""
    customer = corp.contacts.get(external_userid)
    if customer is None:
        return ErrCode.INVALID_EXTERNAL_USERID
    if handover not in customer.follows:
        return ErrCode.NOT_HANDOVER_FOLLOWER
    if any(t.status == 2 and t.external_userid == external_userid for t in corp.transfers):
        return ErrCode.IN_TRANSFER
    if kind == "onjob":
        since = now - config.transfer_limit_days * 86_400
        recent = sum(
            1
            for t in corp.transfers
            if t.kind == "onjob" and t.external_userid == external_userid and t.started_at > since
        )
        if recent >= config.transfer_limit_count:
            return ErrCode.TRANSFERRED_TOO_OFTEN
    return ErrCode.OK


def transfer_start(
    corp: Corp,
    *,
    kind: str,
    handover: str,
    takeover: str,
    external_userids: list[str],
    message: str,
    now: float,
    config: EmulatorConfig,
) -> list[dict[str, object]]:
    """Start what may start; one {external_userid, errcode} row per requested customer, in request order."""
    rows: list[dict[str, object]] = []
    for external_userid in external_userids:
        code = transfer_check(
            corp, kind=kind, handover=handover, external_userid=external_userid, now=now, config=config
        )
        if code == ErrCode.OK:
            corp.transfers.append(
                Transfer(
                    seq=corp.next_seq(),
                    kind=kind,
                    external_userid=external_userid,
                    handover_userid=handover,
                    takeover_userid=takeover,
                    started_at=now,
                    takeover_at=now + config.transfer_window_seconds,
                    message=message,
                )
            )
        rows.append({"external_userid": external_userid, "errcode": int(code)})
    corp.due_changed()
    return rows


def transfer_fail_event(corp: Corp, transfer: Transfer, reason: str) -> Event:
    # The UserID of transfer_fail is the takeover member (§3.1).
    return contact_event(
        corp.corp_id,
        int(transfer.takeover_at),
        "transfer_fail",
        userid=transfer.takeover_userid,
        external_userid=transfer.external_userid,
        FailReason=reason,
    )


def _complete(corp: Corp, transfer: Transfer, member_limit: int) -> list[Event]:
    at = int(transfer.takeover_at)
    customer = corp.contacts[transfer.external_userid]
    old = customer.follows.get(transfer.handover_userid)
    if old is None or old.customer_deleted:
        transfer.status = 5
        return []
    current = customer.follows.get(transfer.takeover_userid)
    already = current is not None and not current.customer_deleted
    if not already and len(corp.customers_of(transfer.takeover_userid)) >= member_limit:
        transfer.status = 4
        return [transfer_fail_event(corp, transfer, "customer_limit_exceed")]
    events: list[Event] = []
    if not already:
        corp.follow_add(
            customer,
            Follow(
                userid=transfer.takeover_userid,
                createtime=at,
                seq=corp.next_seq(),
                remark=old.remark,
                description=old.description,
                tag_ids=list(old.tag_ids),
                remark_corp_name=old.remark_corp_name,
                remark_mobiles=list(old.remark_mobiles),
                oper_userid=transfer.takeover_userid,
                add_way=ADD_WAY_ASSIGNED,
            ),
        )
        # No event when they already were friends (§4.8); no WelcomeCode: transfer_success_msg is the greeting.
        events.append(
            contact_event(
                corp.corp_id,
                at,
                "add_external_contact",
                userid=transfer.takeover_userid,
                external_userid=transfer.external_userid,
            )
        )
    corp.follow_remove(customer, transfer.handover_userid)
    if transfer.kind == "onjob":
        events.append(
            contact_event(
                corp.corp_id,
                at,
                "del_external_contact",
                userid=transfer.handover_userid,
                external_userid=transfer.external_userid,
                Source="DELETE_BY_TRANSFER",
            )
        )
    transfer.status = 1
    return events


def group_take_over(corp: Corp, chat: GroupChat, new_owner: str, now: float, *, resigned: bool) -> None:
    """Make `new_owner` the owner (joining the chat if they were not in it); a resigned owner's chat is then
    "inheritance done" (status 3)."""
    chat.owner = new_owner
    if all(m.userid != new_owner for m in chat.member_list):
        member = corp.members[new_owner]
        chat.member_list.append(GroupChatMember(new_owner, 1, int(now), 1, name=member.name))
    chat.transfer_to, chat.transfer_due = "", 0.0
    if resigned:
        chat.status = 3


def settle(corp: Corp, now: float, *, member_limit: int) -> list[Event]:
    """Complete the transfers whose time has come (in the order they started); returns the events WeCom pushes."""
    if corp.next_due() > now:
        return []
    events: list[Event] = []
    for transfer in corp.transfers:
        if transfer.status == 2 and transfer.takeover_at <= now:
            events += _complete(corp, transfer, member_limit)
    for chat in corp.group_chats.values():
        if chat.status == 2 and chat.transfer_due <= now:
            group_take_over(corp, chat, chat.transfer_to, chat.transfer_due, resigned=True)
    corp.due_changed()
    return events
