"""Writes of the inheritance context (客户继承): start transfers, send them to WeCom, follow them to the end.

The life of a transfer (wecom-api.md §4.8):

1. `transfer_start` checks the request against the actor's scope and siyu's data, and records the transfer with
   one pending item per customer and per group chat. Small transfers are then sent at once (the console and the
   API show WeCom's answer per customer right away); large ones (a departed guide's whole book) by a job.
2. `transfer_submit` sends pending items, 100 per call, and records WeCom's errcode per customer: 0 starts the
   24-hour window (waiting), anything else fails that customer (40128: moved twice in 90 days already). Group
   chats change owner at once (on-job) or after a while (resigned).
3. `transfer_poll` reads transfer_result for waiting customers: taken over (the follow relation moves to the
   takeover guide in siyu), refused, takeover guide at its customer limit, or no longer a customer. A job polls
   when the window ends and again while anything is still waiting; "refresh" polls on demand.

Restart-safe: the rows are the state. A crash between WeCom's answer and our write leaves items pending; sending
them again gets 40129 ("already being transferred"), which is reconciled through transfer_result, so a customer is
never transferred twice and never lost. WeCom's own callbacks for the takeover (add/del_external_contact) may move
the relation first; the customers service converges either way.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends

from siyu.analytics.models import Event
from siyu.analytics.services import event_build, event_bulk_record
from siyu.core.errors import Conflict, ValidationFailed
from siyu.core.jobs import enqueue_on_commit
from siyu.core.models import Guide
from siyu.core.scopes import Actor
from siyu.core.services import audit_record
from siyu.core.validation import clean_text
from siyu.customers import services as customer_services
from siyu.groups import services as group_services
from siyu.groups.models import CustomerGroup
from siyu.groups.selectors import group_list
from siyu.inheritance.models import Transfer, TransferGroupItem, TransferItem, UnassignedCustomer, UnassignedFetch
from siyu.inheritance.selectors import (
    access_handover,
    access_takeover,
    access_transfer,
    brand_ip_guide,
    handover_relations,
    require_manager,
)
from siyu.wecom import transport
from siyu.wecom.client import GroupChat, TransferOutcome, TransferStarted, WeComClient
from siyu.wecom.errors import WeComAPIError
from siyu.wecom.models import WeComConnection
from siyu.wecom.selectors import connection_client, connection_for_tenant

logger = logging.getLogger(__name__)

ClientFactory = Callable[[WeComConnection], WeComClient]

WINDOW = dt.timedelta(hours=24)  # the customer's time to refuse; WeCom takes over automatically afterwards
CHUNK = 100  # transfer_customer and groupchat transfer take at most 100 ids a call
INLINE_LIMIT = 200  # transfers up to this many items are sent within the request; larger ones by a job
CLAIM_TTL = dt.timedelta(minutes=5)  # a submit claim older than this belongs to a process that died
POLL_MARGIN = dt.timedelta(minutes=2)  # poll a little after the window ends: WeCom settles on its own clock
POLL_RETRY = dt.timedelta(minutes=15)  # the next poll when WeCom still reports a due transfer as waiting
MAX_MESSAGE = 200  # transfer_success_msg

# Errcodes of a whole request that are worth another try later (the items stay pending); others fail the items.
TRANSIENT = frozenset({-1, -2, 40014, 42001, 45009, 45033})
IN_TRANSFER = 40129  # the customer is already being transferred (possibly by our own earlier, unrecorded call)
CHAT_GONE = frozenset({40050, 90501})
GROUP_IN_PROGRESS = 90507
GROUP_ALREADY_INHERITED = 90508

# WeCom answers per customer with an errcode only; these are the texts siyu stores beside it (wecom-api.md §4.8).
CUSTOMER_ERRORS = {
    40003: "the guide is not a valid WeCom member",
    40096: "not a valid WeCom customer",
    40097: "the handover guide has not left the WeCom corp",
    40128: "already transferred twice within 90 days",
    40129: "already being transferred to another guide",
    40130: "the handover and takeover guides are the same",
    40131: "not a customer of the handover guide in WeCom",
    610004: "the guide cannot serve customers (customer contact is not enabled)",
}
# transfer_result status → item status.
RESULT_STATUS = {
    1: TransferItem.Status.SUCCEEDED,
    2: TransferItem.Status.WAITING,
    3: TransferItem.Status.REFUSED,
    4: TransferItem.Status.LIMIT_EXCEEDED,
    5: TransferItem.Status.NO_RECORD,
}


def _errmsg(errcode: int, default: str = "") -> str:
    return (CUSTOMER_ERRORS.get(errcode) or default or f"WeCom errcode {errcode}")[:200]


def _at(timestamp: Any) -> dt.datetime | None:
    try:
        value = int(timestamp)
    except (TypeError, ValueError):
        return None
    return dt.datetime.fromtimestamp(value, tz=dt.UTC) if value > 0 else None


def _system(transfer: Transfer) -> Actor:
    # Submitting and polling act for the brand (the requester's scope was checked when the transfer started).
    return Actor.system(transfer.tenant_id)


# -- starting ------------------------------------------------------------------------------------------------


def _clean_customer_ids(value: Sequence[int] | None) -> list[int] | None:
    if value is None:
        return None
    ids: list[int] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise ValidationFailed("customer_ids must be positive integers", field="customer_ids")
        if item not in ids:
            ids.append(item)
    if not ids:
        raise ValidationFailed("choose at least one customer, or leave customer_ids out for all", field="customer_ids")
    return ids


def _check_guides(kind: str, handover: Guide, takeover: Guide) -> None:
    if takeover.id == handover.id:
        raise Conflict("the takeover guide must differ from the handover guide", field="takeover_guide_id")
    if takeover.status != Guide.Status.ACTIVE:
        raise Conflict(f"{takeover.name} has left and cannot take over customers", field="takeover_guide_id")
    if kind == Transfer.Kind.RESIGNED and handover.status != Guide.Status.DEPARTED:
        raise Conflict(f"{handover.name} has not left: use an on-job transfer", field="handover_guide_id")
    if kind == Transfer.Kind.ON_JOB and handover.status != Guide.Status.ACTIVE:
        raise Conflict(f"{handover.name} has left: use resigned inheritance", field="handover_guide_id")


def transfer_start(
    *,
    actor: Actor,
    kind: str,
    handover_guide_id: int,
    takeover_guide_id: int,
    customer_ids: Sequence[int] | None = None,
    include_groups: bool = False,
    message: str = "",
    client_factory: ClientFactory = connection_client,
) -> Transfer:
    """Hand customers of one guide to another: on-job (在职继承) or resigned (离职继承).

    `customer_ids` None means every WeCom customer the handover guide follows now; otherwise each must be one of
    them. `include_groups` adds the handover's customer groups (群主 changes to the takeover). Only HQ, region and
    store managers may start one, for a handover guide in their scope, to a guide in their scope or the brand IP.
    """
    require_manager(actor)
    if kind not in Transfer.Kind.values:
        raise ValidationFailed(f"kind must be one of {', '.join(Transfer.Kind.values)}", field="kind")
    wanted = _clean_customer_ids(customer_ids)
    handover = access_handover(actor=actor, guide_id=handover_guide_id)
    takeover = access_takeover(actor=actor, guide_id=takeover_guide_id)
    _check_guides(kind, handover, takeover)
    message = clean_text(message, field="message", max_length=MAX_MESSAGE)
    if message and kind == Transfer.Kind.RESIGNED:
        raise Conflict("only on-job transfers carry a message to the customer", field="message")

    relations = {
        r.customer_id: r.external_userid
        for r in handover_relations(actor=actor, guide_id=handover.id).only("customer_id", "external_userid")
    }
    # Customers and groups of this guide already on their way (a double click, a second manager): sending them
    # again would only get 40129 from WeCom and show them twice.
    open_items = TransferItem.objects.filter(
        tenant_id=actor.tenant_id,
        transfer__handover=handover,
        status__in=(TransferItem.Status.PENDING, TransferItem.Status.WAITING),
    )
    busy = set(open_items.values_list("customer_id", flat=True))
    if wanted is not None:
        strangers = [i for i in wanted if i not in relations]
        if strangers:
            listed = ", ".join(str(i) for i in strangers[:10])
            raise Conflict(f"not customers of {handover.name} on WeCom: {listed}", field="customer_ids")
        moving = [i for i in wanted if i in busy]
        if moving:
            listed = ", ".join(str(i) for i in moving[:10])
            raise Conflict(f"already being transferred: {listed}", field="customer_ids")
        relations = {i: relations[i] for i in wanted}
    else:
        relations = {i: ext for i, ext in relations.items() if i not in busy}
    groups: list[tuple[int, str]] = []
    if include_groups:
        moving_chats = set(
            TransferGroupItem.objects.filter(
                tenant_id=actor.tenant_id,
                transfer__handover=handover,
                status__in=(TransferGroupItem.Status.PENDING, TransferGroupItem.Status.WAITING),
            ).values_list("chat_id", flat=True)
        )
        owned = group_list(actor=actor, status=CustomerGroup.Status.ACTIVE, owner_guide_id=handover.id)
        groups = [(i, chat) for i, chat in owned.values_list("id", "chat_id") if chat not in moving_chats]
    if not relations and not groups:
        raise Conflict(
            f"{handover.name} has no customers to hand over (or all are being transferred already)",
            field="customer_ids",
        )

    with transaction.atomic():
        transfer = Transfer.objects.create(
            tenant_id=actor.tenant_id,
            kind=kind,
            handover=handover,
            takeover=takeover,
            requested_by_id=actor.user_id,
            message=message,
        )
        TransferItem.objects.bulk_create(
            TransferItem(tenant_id=actor.tenant_id, transfer=transfer, customer_id=customer_id, external_userid=ext)
            for customer_id, ext in relations.items()
        )
        TransferGroupItem.objects.bulk_create(
            TransferGroupItem(tenant_id=actor.tenant_id, transfer=transfer, group_id=group_id, chat_id=chat_id)
            for group_id, chat_id in groups
        )
        audit_record(
            actor=actor,
            action="transfer.start",
            target_type="transfer",
            target_id=transfer.id,
            detail={
                "kind": kind,
                "handover_guide_id": handover.id,
                "takeover_guide_id": takeover.id,
                "customers": len(relations),
                "groups": len(groups),
            },
        )
    if len(relations) + len(groups) <= INLINE_LIMIT:
        return transfer_submit(transfer_id=transfer.id, client_factory=client_factory) or transfer
    from siyu.inheritance.tasks import transfer_submit_run  # tasks import this module: import late, no cycle

    enqueue_on_commit(transfer_submit_run, transfer.id)
    return transfer


def transfer_to_brand_ip(
    *,
    actor: Actor,
    handover_guide_id: int,
    include_groups: bool = True,
    client_factory: ClientFactory = connection_client,
) -> Transfer:
    """Hand every customer (and, by default, every group) of a departed guide to the brand IP account (官方IP)
    in one action: resigned inheritance to the brand's own account, so nobody's customers are left unserved."""
    require_manager(actor)
    access_handover(actor=actor, guide_id=handover_guide_id)
    heir = brand_ip_guide(tenant_id=actor.tenant_id)
    if heir is None:
        raise Conflict("the brand has no active brand IP account to hand customers to", field="takeover")
    return transfer_start(
        actor=actor,
        kind=Transfer.Kind.RESIGNED,
        handover_guide_id=handover_guide_id,
        takeover_guide_id=heir.id,
        include_groups=include_groups,
        client_factory=client_factory,
    )


# -- sending to WeCom ----------------------------------------------------------------------------------------


def _claim(transfer_id: int) -> bool:
    now = timezone.now()
    return bool(
        Transfer.objects.filter(id=transfer_id)
        .filter(Q(submitting_since__isnull=True) | Q(submitting_since__lt=now - CLAIM_TTL))
        .update(submitting_since=now)
    )


def _release(transfer_id: int, *, error: str | None) -> None:
    fields: dict[str, Any] = {"submitting_since": None, "updated_at": timezone.now()}
    if error is not None:
        fields["last_error"] = error[:2000]
    Transfer.objects.filter(id=transfer_id).update(**fields)


def _status_of(transfer_id: int) -> str:
    items = TransferItem.objects.filter(transfer_id=transfer_id)
    groups = TransferGroupItem.objects.filter(transfer_id=transfer_id)
    if (
        items.filter(status=TransferItem.Status.PENDING).exists()
        or groups.filter(status=TransferGroupItem.Status.PENDING).exists()
    ):
        return Transfer.Status.SUBMITTING
    if (
        items.filter(status=TransferItem.Status.WAITING).exists()
        or groups.filter(status=TransferGroupItem.Status.WAITING).exists()
    ):
        return Transfer.Status.IN_PROGRESS
    return Transfer.Status.DONE


def _update_status(transfer_id: int) -> Transfer:
    Transfer.objects.filter(id=transfer_id).update(status=_status_of(transfer_id))
    return Transfer.objects.select_related("handover", "takeover").get(id=transfer_id)


def _event(transfer: Transfer, item: TransferItem, type: str, at: dt.datetime, **props: Any) -> Event:
    return event_build(
        tenant_id=transfer.tenant_id,
        type=type,
        customer_id=item.customer_id,
        guide_id=transfer.takeover_id if type == "contact.transferred" else transfer.handover_id,
        actor_id=transfer.requested_by_id,
        occurred_at=at,
        properties={
            "from_guide_id": transfer.handover_id,
            "to_guide_id": transfer.takeover_id,
            "kind": transfer.kind,
            "transfer_id": transfer.id,
            **props,
        },
    )


def _results(client: WeComClient, transfer: Transfer) -> dict[str, TransferOutcome]:
    """transfer_result between the transfer's two guides: the latest transfer of each customer."""
    found: dict[str, TransferOutcome] = {}
    for page in client.transfer_results(
        handover_userid=transfer.handover.wecom_userid,
        takeover_userid=transfer.takeover.wecom_userid,
        resigned=transfer.kind == Transfer.Kind.RESIGNED,
    ):
        found.update((row["external_userid"], row) for row in page.customers)
    return found


def _start_customers(client: WeComClient, transfer: Transfer, externals: list[str]) -> list[TransferStarted]:
    if transfer.kind == Transfer.Kind.RESIGNED:
        return client.resigned_transfer_customer(
            handover_userid=transfer.handover.wecom_userid,
            takeover_userid=transfer.takeover.wecom_userid,
            external_userids=externals,
        )
    return client.transfer_customer(
        handover_userid=transfer.handover.wecom_userid,
        takeover_userid=transfer.takeover.wecom_userid,
        external_userids=externals,
        transfer_success_msg=transfer.message,
    )


@dataclass
class _Answer:
    """What WeCom said about one customer: an errcode at the start, or a transfer_result row on reconciliation."""

    errcode: int
    result: TransferOutcome | None = None


def _submit_customers(client: WeComClient, transfer: Transfer) -> str | None:
    """Send the pending customers, a chunk at a time, recording each chunk's answers in its own transaction.
    Returns the error that stopped it (the rest stay pending), or None."""
    reconciled: dict[str, TransferOutcome] | None = None
    while True:
        chunk = list(
            TransferItem.objects.filter(transfer=transfer, status=TransferItem.Status.PENDING)
            .order_by("id")
            .values_list("external_userid", flat=True)[:CHUNK]
        )
        if not chunk:
            return None
        try:
            rows = _start_customers(client, transfer, chunk)
        except WeComAPIError as exc:
            if exc.errcode in TRANSIENT:
                return str(exc)
            # The whole request was refused for a reason that will not go away (e.g. 40097: WeCom does not
            # consider the handover resigned): every customer of the chunk fails with it.
            _record_starts(transfer, {e: _Answer(exc.errcode) for e in chunk}, errmsg=exc.errmsg)
            continue
        answers = {r["external_userid"]: _Answer(int(r.get("errcode", 0))) for r in rows}
        if any(a.errcode == IN_TRANSFER for a in answers.values()):
            # Possibly our own call whose answer we never recorded (a crash, a timeout): transfer_result says
            # whether the transfer under way is to this takeover guide.
            try:
                reconciled = reconciled if reconciled is not None else _results(client, transfer)
            except WeComAPIError as exc:
                return str(exc)
            for ext, answer in answers.items():
                result = reconciled.get(ext)
                if answer.errcode == IN_TRANSFER and result is not None and result["status"] in (1, 2):
                    answer.result = result
        _record_starts(transfer, {e: answers.get(e, _Answer(-2)) for e in chunk})


def _record_starts(transfer: Transfer, answers: dict[str, _Answer], *, errmsg: str = "") -> None:
    now = timezone.now()
    events: list[Event] = []
    with transaction.atomic():
        items = TransferItem.objects.select_for_update().filter(
            transfer=transfer, status=TransferItem.Status.PENDING, external_userid__in=list(answers)
        )
        for item in items:
            answer = answers[item.external_userid]
            if answer.result is not None:  # reconciled: our earlier call did start it
                _apply_result(transfer, item, answer.result, events)
                if item.status == TransferItem.Status.WAITING:
                    events.append(_event(transfer, item, "contact.transfer_started", now, due_at=str(item.due_at)))
                item.save(update_fields=["status", "due_at", "takeover_at", "updated_at"])
                continue
            if answer.errcode == 0:
                item.status, item.due_at = TransferItem.Status.WAITING, now + WINDOW
                events.append(_event(transfer, item, "contact.transfer_started", now, due_at=str(item.due_at)))
            else:
                item.status, item.errcode = TransferItem.Status.FAILED, answer.errcode
                item.errmsg = _errmsg(answer.errcode, "no answer from WeCom" if answer.errcode == -2 else errmsg)
                reason = f"errcode {answer.errcode}"
                events.append(_event(transfer, item, "contact.transfer_failed", now, reason=reason))
            item.save(update_fields=["status", "errcode", "errmsg", "due_at", "takeover_at", "updated_at"])
        event_bulk_record(events=[e for e in events if e.customer_id])


def _submit_groups(client: WeComClient, transfer: Transfer) -> str | None:
    resigned = transfer.kind == Transfer.Kind.RESIGNED
    new_owner = transfer.takeover.wecom_userid
    while True:
        chunk = list(
            TransferGroupItem.objects.filter(transfer=transfer, status=TransferGroupItem.Status.PENDING)
            .order_by("id")
            .values_list("chat_id", flat=True)[:CHUNK]
        )
        if not chunk:
            return None
        try:
            if resigned:
                failed = client.groupchat_transfer(chat_ids=chunk, new_owner=new_owner)
            else:
                failed = client.groupchat_onjob_transfer(chat_ids=chunk, new_owner=new_owner)
        except WeComAPIError as exc:
            if exc.errcode in TRANSIENT:
                return str(exc)
            failed = [{"chat_id": c, "errcode": exc.errcode, "errmsg": exc.errmsg} for c in chunk]
        failures = {f["chat_id"]: f for f in failed}
        with transaction.atomic():
            for item in TransferGroupItem.objects.select_for_update().filter(
                transfer=transfer, status=TransferGroupItem.Status.PENDING, chat_id__in=chunk
            ):
                failure = failures.get(item.chat_id)
                # In progress or already inherited: possibly our own earlier call; the owner check decides.
                if failure is None or failure["errcode"] in (GROUP_IN_PROGRESS, GROUP_ALREADY_INHERITED):
                    item.status = TransferGroupItem.Status.WAITING
                else:
                    item.status, item.errcode = TransferGroupItem.Status.FAILED, int(failure["errcode"])
                    item.errmsg = str(failure.get("errmsg") or "")[:200]
                item.save(update_fields=["status", "errcode", "errmsg", "updated_at"])


def transfer_submit(*, transfer_id: int, client_factory: ClientFactory = connection_client) -> Transfer | None:
    """Send a transfer's pending customers and groups to WeCom (one process at a time per transfer), then check
    the groups' new owners and schedule the poll. Safe to run any number of times; None if there is no such
    transfer."""
    transfer = Transfer.objects.select_related("handover", "takeover").filter(id=transfer_id).first()
    if transfer is None:
        return None
    if not _claim(transfer.id):
        return transfer  # another process is sending it right now
    error: str | None = ""
    try:
        connection = connection_for_tenant(tenant_id=transfer.tenant_id)
        if connection is None:
            error = "WeCom is not connected for this brand: set up the connection, then refresh"
        else:
            with client_factory(connection) as client:
                error = _submit_customers(client, transfer) or _submit_groups(client, transfer) or ""
                if not error:
                    _check_groups(client, transfer)
    except WeComAPIError as exc:
        error = str(exc)
    finally:
        _release(transfer.id, error=error)
    if error:
        logger.warning("transfer %s: %s", transfer.id, error)
    transfer = _update_status(transfer.id)
    _schedule_poll(transfer)
    return transfer


# -- following up --------------------------------------------------------------------------------------------


def _apply_result(transfer: Transfer, item: TransferItem, result: TransferOutcome, events: list[Event]) -> bool:
    """Move a waiting (or just reconciled) item to what transfer_result says; True when its status changed."""
    status = RESULT_STATUS.get(int(result.get("status", 0)))
    when = _at(result.get("takeover_time")) or timezone.now()
    if status is None:
        return False
    if status == TransferItem.Status.WAITING:
        changed = item.status != status
        item.status, item.due_at = status, when
        return changed
    item.status, item.takeover_at = status, when
    if status == TransferItem.Status.SUCCEEDED:
        if item.customer_id:
            customer_services.follow_relation_transfer(
                actor=_system(transfer),
                customer_id=item.customer_id,
                from_guide_id=transfer.handover_id,
                to_guide_id=transfer.takeover_id,
                external_userid=item.external_userid,
                at=when,
            )
        events.append(_event(transfer, item, "contact.transferred", when))
    else:
        events.append(_event(transfer, item, "contact.transfer_failed", when, reason=status))
    return True


def _check_groups(client: WeComClient, transfer: Transfer) -> int:
    """Re-read every group waiting for its new owner; mirror those WeCom shows owned by the takeover guide."""
    done = 0
    for item in TransferGroupItem.objects.filter(transfer=transfer, status=TransferGroupItem.Status.WAITING):
        try:
            chat: GroupChat | None = client.groupchat_get(item.chat_id)
        except WeComAPIError as exc:
            if exc.errcode not in CHAT_GONE:
                raise
            chat = None
        with transaction.atomic():
            locked = (
                TransferGroupItem.objects.select_for_update()
                .filter(id=item.id, status=TransferGroupItem.Status.WAITING)
                .first()
            )
            if locked is None:
                continue
            if chat is None:
                locked.status, locked.errcode = TransferGroupItem.Status.FAILED, 90501
                locked.errmsg = "the group no longer exists"
            elif chat["owner"] == transfer.takeover.wecom_userid:
                group_services.group_upsert(
                    actor=_system(transfer), data=transport.group_input(chat, transfer.takeover_id)
                )
                locked.status = TransferGroupItem.Status.SUCCEEDED
                done += 1
            else:
                continue  # still in progress (a resigned owner's group takes a while)
            locked.save(update_fields=["status", "errcode", "errmsg", "updated_at"])
    return done


def transfer_poll(
    *, transfer_id: int, client_factory: ClientFactory = connection_client, reschedule: bool = False
) -> Transfer | None:
    """Ask WeCom how the transfer's waiting customers and groups are doing and record it: a customer taken over
    moves to the takeover guide in siyu. With `reschedule` (the periodic job) another poll is scheduled while
    anything is still waiting. WeCom errors are recorded on the transfer, never raised."""
    transfer = Transfer.objects.select_related("handover", "takeover").filter(id=transfer_id).first()
    if transfer is None:
        return None
    waiting = TransferItem.objects.filter(transfer=transfer, status=TransferItem.Status.WAITING)
    groups_waiting = TransferGroupItem.objects.filter(transfer=transfer, status=TransferGroupItem.Status.WAITING)
    if not waiting.exists() and not groups_waiting.exists():
        return _update_status(transfer.id)
    connection = connection_for_tenant(tenant_id=transfer.tenant_id)
    if connection is None:
        _release(transfer.id, error="WeCom is not connected for this brand: set up the connection, then refresh")
        return _update_status(transfer.id)
    try:
        with client_factory(connection) as client:
            results = _results(client, transfer) if waiting.exists() else {}
            groups_done = _check_groups(client, transfer)
    except WeComAPIError as exc:
        logger.warning("transfer %s poll: %s", transfer.id, exc)
        Transfer.objects.filter(id=transfer.id).update(last_error=str(exc)[:2000], last_polled_at=timezone.now())
        transfer = _update_status(transfer.id)
        if reschedule:
            _schedule_poll(transfer, retry=True)
        return transfer

    changed: dict[str, int] = {}
    events: list[Event] = []
    with transaction.atomic():
        for item in waiting.select_for_update().filter(external_userid__in=list(results)):
            due = item.due_at
            if _apply_result(transfer, item, results[item.external_userid], events):
                changed[item.status] = changed.get(item.status, 0) + 1
            elif item.due_at == due:
                continue  # still waiting, same end of window: nothing to write
            item.save(update_fields=["status", "due_at", "takeover_at", "updated_at"])
        event_bulk_record(events=[e for e in events if e.customer_id])
        Transfer.objects.filter(id=transfer.id).update(last_error="", last_polled_at=timezone.now())
        if changed or groups_done:
            audit_record(
                actor=_system(transfer),
                action="transfer.progress",
                target_type="transfer",
                target_id=transfer.id,
                detail={"customers": changed, "groups_taken_over": groups_done},
            )
    transfer = _update_status(transfer.id)
    if reschedule:
        _schedule_poll(transfer)
    return transfer


def transfer_refresh(*, actor: Actor, transfer_id: int, client_factory: ClientFactory = connection_client) -> Transfer:
    """ "Refresh status" (console button, API): send what is still pending, then poll what is waiting."""
    require_manager(actor)
    transfer = access_transfer(actor=actor, transfer_id=transfer_id)
    if transfer.status == Transfer.Status.SUBMITTING:
        transfer_submit(transfer_id=transfer.id, client_factory=client_factory)
    return transfer_poll(transfer_id=transfer.id, client_factory=client_factory) or transfer


def _next_poll_at(transfer: Transfer, *, retry: bool) -> dt.datetime | None:
    now = timezone.now()
    due = (
        TransferItem.objects.filter(transfer=transfer, status=TransferItem.Status.WAITING)
        .order_by("due_at")
        .values_list("due_at", flat=True)
        .first()
    )
    if (
        due is None
        and not TransferGroupItem.objects.filter(transfer=transfer, status=TransferGroupItem.Status.WAITING).exists()
    ):
        return None
    at = (due + POLL_MARGIN) if due is not None else now + POLL_RETRY
    # A window that already ended (WeCom settles late, or clocks differ) is asked about again every 15 minutes.
    return max(at, now + POLL_RETRY) if retry or at <= now else at


def _schedule_poll(transfer: Transfer, *, retry: bool = False) -> None:
    """Enqueue the poll for when the earliest waiting window ends. Backends that cannot defer a job (the
    in-process one) get no schedule: the refresh button and the sweep follow up instead."""
    at = _next_poll_at(transfer, retry=retry)
    if at is None or not task_backends[DEFAULT_TASK_BACKEND_ALIAS].supports_defer:
        return
    from siyu.inheritance.tasks import transfer_poll_run

    enqueue_on_commit(transfer_poll_run.using(run_after=at), transfer.id)


def transfer_failed_heard(*, tenant_id: int, takeover_userid: str, external_userid: str) -> list[int]:
    """WeCom said a transfer of this customer to this member failed (transfer_fail: refused, or the member is at
    their customer cap). The event cannot tell which request it is about, so every matching waiting transfer is
    polled now (transfer_result has the answer) instead of at the end of its 24 hours. Returns their ids."""
    from siyu.inheritance.selectors import transfers_awaiting
    from siyu.inheritance.tasks import transfer_poll_run

    ids = transfers_awaiting(tenant_id=tenant_id, takeover_userid=takeover_userid, external_userid=external_userid)
    for transfer_id in ids:
        enqueue_on_commit(transfer_poll_run, transfer_id)
    return ids


def transfer_sweep(*, older_than: dt.timedelta = CLAIM_TTL) -> int:
    """Re-enqueue work whose job was lost: transfers with items still pending (not sent) for longer than
    `older_than`, or waiting past their window without a poll since. Returns how many transfers were enqueued."""
    from siyu.inheritance.tasks import transfer_poll_run, transfer_submit_run

    now = timezone.now()
    stale = Q(last_polled_at__isnull=True) | Q(last_polled_at__lt=now - older_than)
    submits = set(
        TransferItem.objects.filter(status=TransferItem.Status.PENDING, transfer__created_at__lt=now - older_than)
        .values_list("transfer_id", flat=True)
        .distinct()
    )
    polls = set(
        Transfer.objects.filter(stale, status=Transfer.Status.IN_PROGRESS)
        .filter(
            Q(items__status=TransferItem.Status.WAITING, items__due_at__lt=now)
            | Q(group_items__status=TransferGroupItem.Status.WAITING)
        )
        .values_list("id", flat=True)
        .distinct()
    )
    for transfer_id in sorted(submits):
        enqueue_on_commit(transfer_submit_run, transfer_id)
    for transfer_id in sorted(polls - submits):
        enqueue_on_commit(transfer_poll_run, transfer_id)
    return len(submits | polls)


# -- unassigned customers (待分配离职成员的客户) ---------------------------------------------------------------


def unassigned_refresh(*, actor: Actor, client_factory: ClientFactory = connection_client) -> UnassignedFetch:
    """Fetch get_unassigned_list (every page) and replace the brand's list with it. A failure is recorded on the
    fetch state and the previous list is kept; nothing is raised."""
    require_manager(actor)
    now = timezone.now()
    state, _ = UnassignedFetch.objects.get_or_create(tenant_id=actor.tenant_id)
    connection = connection_for_tenant(tenant_id=actor.tenant_id)
    rows: list[tuple[str, str, int]] = []
    error = ""
    if connection is None:
        error = "WeCom is not connected for this brand"
    else:
        try:
            with client_factory(connection) as client:
                for page in client.unassigned_customers():
                    rows += [
                        (str(r["handover_userid"]), str(r["external_userid"]), int(r.get("dimission_time") or 0))
                        for r in page.customers
                    ]
        except WeComAPIError as exc:
            error = str(exc)
    with transaction.atomic():
        state = UnassignedFetch.objects.select_for_update().get(id=state.id)
        state.attempted_at, state.error = now, error[:2000]
        if not error:
            _replace_unassigned(actor, rows)
            state.fetched_at, state.count = now, len(rows)
        state.save()
        audit_record(
            actor=actor,
            action="transfer.unassigned_refresh",
            target_type="unassigned_customer",
            detail={"count": len(rows), "error": error[:200]},
        )
    return state


def _replace_unassigned(actor: Actor, rows: Iterable[tuple[str, str, int]]) -> None:
    from siyu.customers.models import Identity
    from siyu.customers.selectors import customer_ids_by_identity

    unique = {(h, e): d for h, e, d in rows}
    guides = dict(
        Guide.objects.filter(tenant_id=actor.tenant_id, wecom_userid__in={h for h, _ in unique}).values_list(
            "wecom_userid", "id"
        )
    )
    customers = customer_ids_by_identity(
        actor=Actor.system(actor.tenant_id),
        kind=Identity.Kind.WECOM_EXTERNAL_USERID,
        values={e for _, e in unique},
    )
    UnassignedCustomer.objects.filter(tenant_id=actor.tenant_id).delete()
    UnassignedCustomer.objects.bulk_create(
        (
            UnassignedCustomer(
                tenant_id=actor.tenant_id,
                handover_userid=h[:64],
                external_userid=e[:64],
                dimission_time=_at(d) or timezone.now(),
                handover_id=guides.get(h),
                customer_id=customers.get(e),
            )
            for (h, e), d in unique.items()
        ),
        batch_size=1000,
    )
