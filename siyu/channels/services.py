"""Writes of the channels context: live codes (渠道活码), welcome messages (欢迎语) and the add hook.

A live code is created in WeCom (add_contact_way) and in siyu; every later change is pushed to the way by a job
(live_code_rebalance), so a slow or failing WeCom never leaves a half-saved code: siyu's row is the truth and
the job converges the way onto it. The add hook (`live_code_contact_added`, called by the WeCom connector for
every add) attributes the add, applies the code's tags and sends the welcome message right after the add commits.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends

from siyu.analytics.services import event_record
from siyu.channels import routing
from siyu.channels.models import (
    STATE_MAX,
    LiveCode,
    LiveCodeGuide,
    QrBranding,
    WelcomeAsset,
    WelcomeMessage,
    WelcomeSend,
)
from siyu.channels.welcome import (
    Filling,
    asset_ids_of,
    clean_attachments,
    clean_text_template,
    render,
)
from siyu.core import pii
from siyu.core.errors import Conflict, NotFound, PermissionDenied, SiyuError, ValidationFailed
from siyu.core.jobs import enqueue_on_commit
from siyu.core.models import Guide, Role
from siyu.core.scopes import Actor
from siyu.core.selectors import guide_list, store_list
from siyu.core.services import audit_record
from siyu.core.validation import clean_text
from siyu.customers.models import FollowRelation
from siyu.tags import services as tag_services
from siyu.tags.models import Tag, TagSource
from siyu.tags.selectors import tag_list
from siyu.wecom.client import WeComClient, WelcomeAttachment
from siyu.wecom.errors import WeComAPIError, WeComTransportError
from siyu.wecom.models import WeComConnection
from siyu.wecom.selectors import connection_client, connection_for_tenant

logger = logging.getLogger(__name__)

MAX_GUIDES = 100  # WeCom: at most 100 members on a contact way (41041)
MAX_NAME = 100
MAX_TAGS = 20
DAILY_CAP_MAX = 100_000
_STATE = re.compile(r"^[A-Za-z0-9_.:-]{1,30}$")
# Welcome codes WeCom refuses for good: expired/unknown (41050), already used or already chatting (41051),
# archiving consent missing (41053). Recorded as failures, never retried.
WELCOME_FINAL_ERRORS = frozenset({41050, 41051, 41053})
# WeCom's temporary media lives 3 days; re-upload once an id is older than this.
MEDIA_REFRESH_AFTER = dt.timedelta(days=2, hours=12)
ASSET_MAX_BYTES = {WelcomeAsset.Kind.IMAGE: 2 * 1024 * 1024, WelcomeAsset.Kind.FILE: 20 * 1024 * 1024}
LOGO_MAX_BYTES = 512 * 1024

ClientFactory = Callable[[WeComConnection], WeComClient]


class WeComUnavailable(SiyuError):
    """WeCom could not be reached or answered with a server error: try again later."""

    status_code = 503


class WeComRefused(SiyuError):
    """WeCom refused the change (its errcode is in the message)."""

    status_code = 409


# -- who may do what -----------------------------------------------------------------------------------------------

MANAGERS = (Role.HQ_ADMIN, Role.REGION_MANAGER, Role.STORE_MANAGER)


def _require_manager(actor: Actor) -> None:
    if actor.role not in MANAGERS:
        raise PermissionDenied("only HQ, region and store managers manage live codes")


def _require_hq(actor: Actor) -> None:
    if not actor.is_brand_wide:
        raise PermissionDenied("only HQ changes the brand's default welcome message and QR logo")


def _access_code(actor: Actor, live_code_id: int, *, for_update: bool = False) -> LiveCode:
    from siyu.channels.selectors import access_live_code

    code = access_live_code(actor=actor, live_code_id=live_code_id)
    if for_update:
        code = LiveCode.objects.select_for_update().get(id=code.id)
    _require_editable(actor, code)
    return code


def _require_editable(actor: Actor, code: LiveCode) -> None:
    """A manager edits a code only when every guide on it is in their scope (HQ: any code)."""
    _require_manager(actor)
    if actor.guide_ids is None:
        return
    guide_ids = set(LiveCodeGuide.objects.filter(live_code=code).values_list("guide_id", flat=True))
    if not guide_ids <= actor.guide_ids:
        raise PermissionDenied("this live code also reaches guides outside your scope")


# -- input checks --------------------------------------------------------------------------------------------------


def clean_state(state: str) -> str:
    """The attribution key WeCom echoes in the add event: 1–30 of A–Z a–z 0–9 _ . : - (WeCom's limit is 30)."""
    if not isinstance(state, str):
        raise ValidationFailed("state must be text", field="state")
    state = state.strip()
    if len(state) > STATE_MAX:
        raise ValidationFailed(f"state is longer than {STATE_MAX} characters (WeCom's limit)", field="state")
    if not _STATE.fullmatch(state):
        raise ValidationFailed("state may only hold letters, digits and _ . : -", field="state")
    return state


def _new_state() -> str:
    return "lc" + secrets.token_hex(6)


@dataclass(frozen=True)
class GuideOption:
    """Per-guide settings of a live code: a daily cap of adds (None: no cap) and schedule windows."""

    daily_cap: int | None = None
    schedule: tuple[dict[str, Any], ...] = ()


def clean_schedule(raw: Any, *, field: str) -> list[dict[str, Any]]:
    """[{"days": [0..6], "start": "HH:MM", "end": "HH:MM"}, ...], at most 14 windows. An end at or before the start
    runs past midnight (22:00–02:00)."""
    if raw in (None, ""):
        return []
    if not isinstance(raw, list | tuple) or len(raw) > 14:
        raise ValidationFailed(f"{field} must be a list of at most 14 windows", field=field)
    windows = []
    for i, window in enumerate(raw):
        where = f"{field}.{i}"
        if not isinstance(window, Mapping):
            raise ValidationFailed(f"{where} must be an object with days, start and end", field=where)
        days = window.get("days")
        if (
            not isinstance(days, list | tuple)
            or not days
            or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6 for d in days)
        ):
            raise ValidationFailed(f"{where}.days must list weekdays 0 (Monday) to 6 (Sunday)", field=where)
        try:
            routing.parse_time(str(window.get("start", "")))
            routing.parse_time(str(window.get("end", "")))
        except ValueError as exc:
            raise ValidationFailed(f"{where}: start and end must be HH:MM", field=where) from exc
        windows.append({"days": sorted(set(days)), "start": window["start"], "end": window["end"]})
    return windows


def _clean_options(
    options: Mapping[int, GuideOption | Mapping[str, Any]] | None, guide_ids: Sequence[int]
) -> dict[int, GuideOption]:
    cleaned: dict[int, GuideOption] = {}
    for guide_id, raw in (options or {}).items():
        if guide_id not in guide_ids:
            raise Conflict(f"options for guide {guide_id}, who is not on the code", field="guide_options")
        option = raw if isinstance(raw, GuideOption) else GuideOption(raw.get("daily_cap"), raw.get("schedule") or ())
        cap = option.daily_cap
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= DAILY_CAP_MAX):
            raise ValidationFailed(f"daily cap must be a whole number from 1 to {DAILY_CAP_MAX}", field="daily_cap")
        schedule = clean_schedule(list(option.schedule), field="schedule")
        cleaned[guide_id] = GuideOption(cap, tuple(schedule))
    return cleaned


def _clean_guides(actor: Actor, guide_ids: Sequence[int]) -> list[Guide]:
    """The code's guides, in the given order: 1–100, distinct, active, of this brand and in the actor's scope."""
    if not isinstance(guide_ids, Sequence) or isinstance(guide_ids, str) or not guide_ids:
        raise ValidationFailed("choose at least one guide", field="guide_ids")
    if len(guide_ids) > MAX_GUIDES:
        raise ValidationFailed(f"at most {MAX_GUIDES} guides on a live code (WeCom's limit)", field="guide_ids")
    guide_ids = list(dict.fromkeys(guide_ids))  # a guide listed twice is on the code once
    found = {g.id: g for g in guide_list(actor=actor).filter(id__in=list(guide_ids))}
    for guide_id in guide_ids:
        guide = found.get(guide_id)
        if guide is None:
            raise NotFound(f"unknown guide {guide_id}", field="guide_ids")
        if guide.status != Guide.Status.ACTIVE:
            raise Conflict(f"guide {guide.name} has left WeCom", field="guide_ids")
    return [found[g] for g in guide_ids]


def _clean_fallback(actor: Actor, guide_id: int | None) -> Guide | None:
    if guide_id is None:
        return None
    guide = guide_list(actor=actor).filter(id=guide_id).first()
    if guide is None:
        raise NotFound(f"unknown fallback guide {guide_id}", field="fallback_guide_id")
    if guide.status != Guide.Status.ACTIVE:
        raise Conflict(f"fallback guide {guide.name} has left WeCom", field="fallback_guide_id")
    return guide


def _clean_tags(actor: Actor, tag_ids: Sequence[int]) -> list[Tag]:
    if len(tag_ids) > MAX_TAGS:
        raise ValidationFailed(f"at most {MAX_TAGS} tags on a live code", field="tag_ids")
    found = {t.id: t for t in tag_list(actor=actor).filter(id__in=list(tag_ids))}
    missing = [t for t in tag_ids if t not in found]
    if missing:
        raise NotFound(f"unknown tag {missing[0]}", field="tag_ids")
    return [found[t] for t in dict.fromkeys(tag_ids)]


def _clean_welcome(actor: Actor, text: str, attachments: Sequence[Mapping[str, Any]]) -> tuple[str, list[Any]]:
    text = clean_text_template(text)
    ids = set(WelcomeAsset.objects.filter(tenant_id=actor.tenant_id).values_list("id", flat=True))
    return text, clean_attachments(attachments, asset_ids=ids)


def _connection(tenant_id: int) -> WeComConnection:
    connection = connection_for_tenant(tenant_id=tenant_id)
    if connection is None:
        raise Conflict("connect the brand's WeCom first (Settings → WeCom)", field="wecom")
    return connection


@contextmanager
def _wecom(tenant_id: int, client_factory: ClientFactory | None) -> Iterator[WeComClient]:
    """A client for the brand's WeCom, turning failures into errors people can act on."""
    with (client_factory or connection_client)(_connection(tenant_id)) as client:
        try:
            yield client
        except WeComTransportError as exc:
            raise WeComUnavailable(f"WeCom did not answer ({exc.errmsg}); try again") from exc
        except WeComAPIError as exc:
            raise WeComRefused(f"WeCom refused: errcode {exc.errcode} {exc.errmsg}", field="wecom") from exc


# -- creating a live code ------------------------------------------------------------------------------------------


def live_code_create(
    *,
    actor: Actor,
    name: str,
    guide_ids: Sequence[int],
    state: str = "",
    purpose: str = LiveCode.Purpose.CHANNEL,
    store_id: int | None = None,
    tag_ids: Sequence[int] = (),
    strategy: str = LiveCode.Strategy.ROUND_ROBIN,
    welcome_text: str = "",
    welcome_attachments: Sequence[Mapping[str, Any]] = (),
    guide_options: Mapping[int, GuideOption | Mapping[str, Any]] | None = None,
    fallback_guide_id: int | None = None,
    client_factory: ClientFactory | None = None,
) -> LiveCode:
    """Create a live code and its WeCom contact way; one WeCom call and a few rows.

    Safe to re-run with the same state: the row is written first (its state reserved) and the way created
    after. If add_contact_way's answer was lost (timeout, cut body), the way is looked up by its state
    (list_contact_way since the row was written + get_contact_way) before another is created; a re-run of a
    create that failed midway resumes it. A state already used by a finished code is a 409 naming `state`.
    """
    _require_manager(actor)
    name = clean_text(name, field="name", max_length=MAX_NAME, required=True)
    if purpose not in LiveCode.Purpose.values:
        raise ValidationFailed(f"unknown purpose {purpose!r}", field="purpose")
    if strategy not in LiveCode.Strategy.values:
        raise ValidationFailed(f"unknown strategy {strategy!r}", field="strategy")
    state = clean_state(state) if state else _new_state()
    guides = _clean_guides(actor, guide_ids)
    options = _clean_options(guide_options, [g.id for g in guides])
    fallback = _clean_fallback(actor, fallback_guide_id)
    tags = _clean_tags(actor, tag_ids)
    text, attachments = _clean_welcome(actor, welcome_text, welcome_attachments)
    store = None
    if store_id is not None:
        store = store_list(actor=actor).filter(id=store_id).first()
        if store is None:
            raise NotFound(f"unknown store {store_id}", field="store_id")
    _connection(actor.tenant_id)

    existing = LiveCode.objects.filter(tenant_id=actor.tenant_id, state=state).exclude(status=LiveCode.Status.DELETED)
    pending = existing.filter(config_id="").first()
    if pending is None and existing.exists():
        raise Conflict(f"state {state!r} is already used by another live code", field="state")
    if pending is None:
        try:
            code = _live_code_insert(
                actor=actor,
                name=name,
                purpose=purpose,
                store_id=store.id if store else None,
                strategy=strategy,
                state=state,
                guides=guides,
                options=options,
                fallback=fallback,
                tags=tags,
                welcome=(text, attachments),
            )
        except IntegrityError as exc:  # a concurrent create took the state between the check and the insert
            raise Conflict(f"state {state!r} is already used by another live code", field="state") from exc
    else:
        code = pending
    _contact_way_ensure(code, client_factory)
    return code


@transaction.atomic
def _live_code_insert(
    *,
    actor: Actor,
    name: str,
    purpose: str,
    store_id: int | None,
    strategy: str,
    state: str,
    guides: list[Guide],
    options: dict[int, GuideOption],
    fallback: Guide | None,
    tags: list[Tag],
    welcome: tuple[str, list[Any]],
) -> LiveCode:
    first = guides[0]
    code = LiveCode.objects.create(
        tenant_id=actor.tenant_id,
        name=name,
        purpose=purpose,
        store_id=store_id,
        strategy=strategy,
        state=state,
        fallback_guide=fallback,
        qr_token=secrets.token_urlsafe(24),
        created_by_id=actor.user_id,
        wecom_users=[first.wecom_userid],
    )
    _guides_write(code, guides, options)
    code.tags.set(tags)
    text, attachments = welcome
    if text or attachments:
        WelcomeMessage.objects.create(
            tenant_id=actor.tenant_id,
            scope=WelcomeMessage.Scope.CODE,
            live_code=code,
            text=text,
            attachments=attachments,
        )
    audit_record(
        actor=actor,
        action="live_code.create",
        target_type="live_code",
        target_id=code.id,
        detail={"name": name, "state": state, "purpose": purpose, "guides": [g.id for g in guides]},
    )
    return code


def _guides_write(code: LiveCode, guides: list[Guide], options: dict[int, GuideOption]) -> None:
    LiveCodeGuide.objects.filter(live_code=code).delete()
    LiveCodeGuide.objects.bulk_create(
        [
            LiveCodeGuide(
                tenant_id=code.tenant_id,
                live_code=code,
                guide=g,
                position=i,
                daily_cap=options.get(g.id, GuideOption()).daily_cap,
                schedule=list(options.get(g.id, GuideOption()).schedule),
            )
            for i, g in enumerate(guides)
        ]
    )


def _way_by_state(client: WeComClient, state: str, since: dt.datetime) -> tuple[str, str] | None:
    """(config_id, qr_code) of the API-created way with this state made since `since`, if WeCom has one."""
    cursor = ""
    start = int(since.timestamp()) - 300  # clocks differ; a few minutes earlier costs one more page at most
    while True:
        page = client.contact_way_list_page(start_time=start, cursor=cursor)
        for config_id in page.config_ids:
            way = client.contact_way_get(config_id)
            if way.get("state") == state:
                return config_id, str(way.get("qr_code") or "")
        if not page.next_cursor:
            return None
        cursor = page.next_cursor


def _contact_way_ensure(code: LiveCode, client_factory: ClientFactory | None) -> None:
    """Create the code's WeCom way unless it has one (see live_code_create); stores config_id and qr_code."""
    if code.config_id:
        return
    first = routing.pick(code)
    users = [first.guide.wecom_userid] if first.guide else list(code.wecom_users)
    with _wecom(code.tenant_id, client_factory) as client:
        found = None
        try:
            created = client.contact_way_add(users=users, state=code.state, remark=code.name[:30])
            found = (created.config_id, created.qr_code)
        except WeComTransportError:
            # The way may exist although the answer was lost: find it by its state before creating another.
            found = _way_by_state(client, code.state, code.created_at)
            if found is None:
                created = client.contact_way_add(users=users, state=code.state, remark=code.name[:30])
                found = (created.config_id, created.qr_code)
        except WeComAPIError as exc:
            # WeCom refused (a guide without customer contact, the corp's quota...): nothing exists there, so the
            # reserved row goes and the state is free again.
            LiveCode.objects.filter(id=code.id, config_id="").delete()
            raise WeComRefused(
                f"WeCom refused the contact way: errcode {exc.errcode} {exc.errmsg}", field="guide_ids"
            ) from exc
    code.config_id, code.qr_code = found
    code.wecom_users = users
    code.rebalance_at = routing.next_change(code)
    LiveCode.objects.filter(id=code.id).update(
        config_id=code.config_id,
        qr_code=code.qr_code,
        wecom_users=users,
        wecom_state=code.state,
        rebalance_at=code.rebalance_at,
    )
    _schedule_rebalance(code)


def live_code_retry(*, actor: Actor, live_code_id: int, client_factory: ClientFactory | None = None) -> LiveCode:
    """Finish a code whose WeCom way was not created (WeCom was down): the console's "retry" button."""
    code = _access_code(actor, live_code_id)
    _contact_way_ensure(code, client_factory)
    code.refresh_from_db()
    return code


# -- changing a live code ------------------------------------------------------------------------------------------


def live_code_update(
    *,
    actor: Actor,
    live_code_id: int,
    name: str | None = None,
    guide_ids: Sequence[int] | None = None,
    guide_options: Mapping[int, GuideOption | Mapping[str, Any]] | None = None,
    strategy: str | None = None,
    state: str | None = None,
    tag_ids: Sequence[int] | None = None,
    fallback_guide_id: int | bool | None = False,
    welcome_text: str | None = None,
    welcome_attachments: Sequence[Mapping[str, Any]] | None = None,
) -> LiveCode:
    """Change what is given (None: unchanged; `fallback_guide_id=None` clears the fallback). The WeCom way follows
    by a job (member list, state), so the change is saved even while WeCom is away."""
    with transaction.atomic():
        code = _access_code(actor, live_code_id, for_update=True)
        if code.status == LiveCode.Status.DELETED:
            raise NotFound(f"live code {live_code_id} not found", field="live_code_id")
        changed: list[str] = []
        if name is not None:
            code.name = clean_text(name, field="name", max_length=MAX_NAME, required=True)
            changed.append("name")
        if strategy is not None:
            if strategy not in LiveCode.Strategy.values:
                raise ValidationFailed(f"unknown strategy {strategy!r}", field="strategy")
            code.strategy = strategy
            changed.append("strategy")
        if state is not None and state != code.state:
            code.state = clean_state(state)
            taken = LiveCode.objects.filter(tenant_id=code.tenant_id, state=code.state).exclude(
                status=LiveCode.Status.DELETED
            )
            if taken.exclude(id=code.id).exists():
                raise Conflict(f"state {code.state!r} is already used by another live code", field="state")
            changed.append("state")
        if fallback_guide_id is not False:
            code.fallback_guide = _clean_fallback(actor, fallback_guide_id if fallback_guide_id else None)
            changed.append("fallback_guide")
        if guide_ids is not None or guide_options is not None:
            current = list(
                LiveCodeGuide.objects.filter(live_code=code)
                .order_by("position", "id")
                .values_list("guide_id", flat=True)
            )
            guides = _clean_guides(actor, list(guide_ids) if guide_ids is not None else current)
            if guide_options is None:
                kept = {m.guide_id: m for m in LiveCodeGuide.objects.filter(live_code=code)}
                options = {
                    g: GuideOption(kept[g].daily_cap, tuple(kept[g].schedule))
                    for g in kept
                    if g in [x.id for x in guides]
                }
            else:
                options = _clean_options(guide_options, [g.id for g in guides])
            _guides_write(code, guides, options)
            changed.append("guides")
        if tag_ids is not None:
            code.tags.set(_clean_tags(actor, tag_ids))
            changed.append("tags")
        if welcome_text is not None or welcome_attachments is not None:
            _code_welcome_write(actor, code, welcome_text, welcome_attachments)
            changed.append("welcome")
        code.save()
        audit_record(
            actor=actor,
            action="live_code.update",
            target_type="live_code",
            target_id=code.id,
            detail={"fields": changed},
        )
        _rebalance_on_commit(code)
    return code


def _code_welcome_write(
    actor: Actor, code: LiveCode, text: str | None, attachments: Sequence[Mapping[str, Any]] | None
) -> None:
    message = WelcomeMessage.objects.filter(
        tenant_id=code.tenant_id, scope=WelcomeMessage.Scope.CODE, live_code=code
    ).first()
    new_text = text if text is not None else (message.text if message else "")
    new_attachments = attachments if attachments is not None else (message.attachments if message else [])
    new_text, cleaned = _clean_welcome(actor, new_text, new_attachments)
    if not new_text and not cleaned:
        if message is not None:
            message.delete()
        return
    if message is None:
        WelcomeMessage.objects.create(
            tenant_id=code.tenant_id,
            scope=WelcomeMessage.Scope.CODE,
            live_code=code,
            text=new_text,
            attachments=cleaned,
        )
    else:
        message.text, message.attachments = new_text, cleaned
        message.save()


def _set_status(actor: Actor, live_code_id: int, status: str, action: str) -> LiveCode:
    with transaction.atomic():
        code = _access_code(actor, live_code_id, for_update=True)
        if code.status == LiveCode.Status.DELETED:
            raise NotFound(f"live code {live_code_id} not found", field="live_code_id")
        if code.status != status:
            code.status = status
            code.save(update_fields=["status", "updated_at"])
            audit_record(actor=actor, action=action, target_type="live_code", target_id=code.id)
            _rebalance_on_commit(code)
    return code


def live_code_pause(*, actor: Actor, live_code_id: int) -> LiveCode:
    """Pause a code. Its printed QR keeps working (WeCom has no paused way): scans reach the fallback guide (or
    the brand IP), get the default welcome and no code tags; adds still count for the code."""
    return _set_status(actor, live_code_id, LiveCode.Status.PAUSED, "live_code.pause")


def live_code_resume(*, actor: Actor, live_code_id: int) -> LiveCode:
    return _set_status(actor, live_code_id, LiveCode.Status.ACTIVE, "live_code.resume")


def live_code_delete(*, actor: Actor, live_code_id: int, client_factory: ClientFactory | None = None) -> LiveCode:
    """Delete the code's WeCom way (its QR stops working) and hide the code; its adds and sends stay. The state is
    free for a new code. Deleting twice, or a way WeCom no longer has (41044), is fine."""
    code = _access_code(actor, live_code_id)
    if code.status == LiveCode.Status.DELETED:
        return code
    if code.config_id:
        try:
            with _wecom(code.tenant_id, client_factory) as client:
                client.contact_way_delete(code.config_id)
        except WeComRefused as exc:
            if "errcode 41044" not in exc.message:
                raise
    with transaction.atomic():
        LiveCode.objects.filter(id=code.id).update(
            status=LiveCode.Status.DELETED, deleted_at=timezone.now(), rebalance_at=None
        )
        audit_record(actor=actor, action="live_code.delete", target_type="live_code", target_id=code.id)
    code.refresh_from_db()
    return code


# -- keeping the way's member on the strategy's pick -----------------------------------------------------------------


def _rebalance_on_commit(code: LiveCode) -> None:
    from siyu.channels.tasks import live_code_rebalance_run

    enqueue_on_commit(live_code_rebalance_run, code.id)


def _schedule_rebalance(code: LiveCode) -> None:
    """Run a rebalance when the pick may change by itself (schedule window, midnight); backends that cannot
    defer a job get none: `live_codes_rebalance_due` (the worker's sweep) catches up."""
    if code.rebalance_at is None or not task_backends[DEFAULT_TASK_BACKEND_ALIAS].supports_defer:
        return
    from siyu.channels.tasks import live_code_rebalance_run

    enqueue_on_commit(live_code_rebalance_run.using(run_after=code.rebalance_at), code.id)


def live_code_rebalance(*, live_code_id: int, client_factory: ClientFactory | None = None) -> str:
    """Point the code's WeCom way at the strategy's pick (and the code's state), if it is not already; idempotent.

    Returns what happened ("unchanged", "moved to <userid>", ...), for the job's result.
    """
    code = LiveCode.objects.select_related("fallback_guide").filter(id=live_code_id).first()
    if code is None or code.status == LiveCode.Status.DELETED or not code.config_id:
        return "gone"
    chosen = routing.pick(code)
    users = [chosen.guide.wecom_userid] if chosen.guide else list(code.wecom_users)
    rebalance_at = routing.next_change(code)
    note = "unchanged"
    if users != code.wecom_users or code.state != code.wecom_state:
        with (client_factory or connection_client)(_connection(code.tenant_id)) as client:
            client.contact_way_update(code.config_id, users=users, state=code.state, remark=code.name[:30])
        note = f"moved to {','.join(users)} ({chosen.reason})"
    LiveCode.objects.filter(id=code.id).update(wecom_users=users, wecom_state=code.state, rebalance_at=rebalance_at)
    if rebalance_at != code.rebalance_at:
        code.rebalance_at = rebalance_at
        _schedule_rebalance(code)
    return note


def _rebalance_now(live_code_id: int) -> None:
    """Rebalance right after an add commits (a job per add would double the worker's jobs); a failure leaves it to
    a job, which retries with the client's backoff."""
    try:
        live_code_rebalance(live_code_id=live_code_id)
    except Exception:
        logger.warning("live code %s: rebalance after an add failed; a job will retry", live_code_id, exc_info=True)
        from siyu.channels.tasks import live_code_rebalance_run

        enqueue_on_commit(live_code_rebalance_run, live_code_id)


def live_codes_rebalance_due(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Enqueue a rebalance for codes whose schedule window or day changed (for a periodic sweep)."""
    from siyu.channels.tasks import live_code_rebalance_run

    ids = list(
        LiveCode.objects.filter(rebalance_at__lte=now or timezone.now())
        .exclude(status=LiveCode.Status.DELETED)
        .order_by("rebalance_at")
        .values_list("id", flat=True)[:limit]
    )
    for code_id in ids:
        enqueue_on_commit(live_code_rebalance_run, code_id)
    return len(ids)


# -- the add hook ----------------------------------------------------------------------------------------------------


def live_code_contact_added(
    *,
    actor: Actor,
    follow_relation_id: int,
    state: str,
    welcome_code: str,
    userid: str,
    external_userid: str,
    received_at: dt.datetime | None = None,
) -> WelcomeSend | None:
    """A customer added a guide (called by the WeCom connector inside the callback's processing transaction).

    Attributes the add to the live code owning `state`, applies the code's tags, moves a round-robin/least-loaded
    code on to its next guide, and records the welcome message to send; the message goes out right after the
    processing commits (in the same process, no queue in between: the welcome code lives 20 seconds). The most
    specific welcome wins: the code's, else the guide's, else the brand's default. Re-running for the same welcome
    code does nothing. Returns the send row, if there is anything to send or to record.
    """
    relation = (
        FollowRelation.objects.select_related("guide", "guide__store", "customer")
        .filter(tenant_id=actor.tenant_id, id=follow_relation_id)
        .first()
    )
    if relation is None:
        return None
    if welcome_code and WelcomeSend.objects.filter(tenant_id=actor.tenant_id, welcome_code=welcome_code).exists():
        return None  # already handled (the callback was processed before)
    code = None
    if state:
        code = (
            LiveCode.objects.filter(tenant_id=actor.tenant_id, state=state)
            .exclude(status=LiveCode.Status.DELETED)
            .first()
        )
    active = code is not None and code.status == LiveCode.Status.ACTIVE
    if code is not None and active:
        for tag in code.tags.all():
            tag_services.customer_tag_add(
                actor=actor,
                customer_id=relation.customer_id,
                tag_id=tag.id,
                source=TagSource.CHANNEL,
                rule=f"live_code:{code.id}",
                at=relation.added_at,
            )
        if code.tags.exclude(wecom_tag_id="").exists():
            from siyu.channels.tasks import live_code_mark_tags_run

            enqueue_on_commit(live_code_mark_tags_run, code.id, relation.id)
        LiveCode.objects.filter(id=code.id).update(rotation=F("rotation") + 1)
    message = _welcome_for(actor.tenant_id, code if active else None, relation.guide_id)
    send = None
    if message is not None or code is not None:
        send = _send_record(actor, relation, code, message, welcome_code, received_at)
    if code is not None and active:
        # After the welcome message (on_commit callbacks run in order): the next scan's guide, in this process.
        code_id = code.id
        transaction.on_commit(lambda: _rebalance_now(code_id), robust=True)
    if code is not None and code.purpose == LiveCode.Purpose.FISSION:
        _fission_invite(actor, code, relation)
    return send


def _fission_invite(actor: Actor, code: LiveCode, relation: FollowRelation) -> None:
    try:
        from siyu.campaigns.services import fission_invite_record  # the campaigns context owns fission
    except ImportError:
        logger.warning("live code %s is a fission code but campaigns has no fission_invite_record", code.id)
        return
    fission_invite_record(actor=actor, live_code_id=code.id, follow_relation_id=relation.id)


def _welcome_for(tenant_id: int, code: LiveCode | None, guide_id: int) -> WelcomeMessage | None:
    """The most specific welcome message: the code's, then the guide's, then the brand's default."""
    candidates = Q(scope=WelcomeMessage.Scope.DEFAULT) | Q(scope=WelcomeMessage.Scope.GUIDE, guide_id=guide_id)
    if code is not None:
        candidates |= Q(scope=WelcomeMessage.Scope.CODE, live_code_id=code.id)
    messages = {m.scope: m for m in WelcomeMessage.objects.filter(candidates, tenant_id=tenant_id)}
    for scope in (WelcomeMessage.Scope.CODE, WelcomeMessage.Scope.GUIDE, WelcomeMessage.Scope.DEFAULT):
        if scope in messages:
            return messages[scope]
    return None


def _send_record(
    actor: Actor,
    relation: FollowRelation,
    code: LiveCode | None,
    message: WelcomeMessage | None,
    welcome_code: str,
    received_at: dt.datetime | None,
) -> WelcomeSend:
    guide = relation.guide
    filling = Filling(
        nickname=pii.decrypt(relation.customer.name_enc, field="name"),
        guide=guide.name,
        store=guide.store.name if guide.store else "",
    )
    status, error = WelcomeSend.Status.PENDING, ""
    if message is None:
        status, error = WelcomeSend.Status.SKIPPED, "no welcome message for this code, guide or brand"
    elif not welcome_code:
        # WeCom gives no code when the guide already chatted with the customer or a console welcome is set.
        status, error = WelcomeSend.Status.SKIPPED, "the add came without a welcome code"
    try:
        with transaction.atomic():
            send = WelcomeSend.objects.create(
                tenant_id=actor.tenant_id,
                live_code=code,
                welcome_message=message,
                follow_relation=relation,
                customer_id=relation.customer_id,
                guide=guide,
                state=relation.state,
                welcome_code=welcome_code,
                status=status,
                error=error,
                # The customer's nickname is filled in: personal data, so encrypted at rest like every name.
                text=pii.encrypt(render(message.text, filling), field=WELCOME_TEXT_FIELD) if message else "",
                attachment_count=len(message.attachments) if message is not None else 0,
                received_at=received_at or timezone.now(),
            )
    except IntegrityError:
        return WelcomeSend.objects.get(tenant_id=actor.tenant_id, welcome_code=welcome_code)
    if status == WelcomeSend.Status.PENDING:
        # Right after commit, in this process: a queue in between would spend the 20 seconds waiting.
        transaction.on_commit(lambda: welcome_send_deliver(welcome_send_id=send.id), robust=True)
    return send


def _attachment_payload(
    client: WeComClient, tenant_id: int, attachments: Sequence[Mapping[str, Any]]
) -> list[WelcomeAttachment]:
    assets = {a.id: a for a in WelcomeAsset.objects.filter(tenant_id=tenant_id, id__in=list(asset_ids_of(attachments)))}
    payload: list[WelcomeAttachment] = []
    for item in attachments:
        kind = item["msgtype"]
        if kind == "link":
            link = {k: item[k] for k in ("title", "url", "desc", "picurl") if item.get(k)}
            payload.append({"msgtype": "link", "link": link})
        elif kind == "image" and item.get("pic_url"):
            payload.append({"msgtype": "image", "image": {"pic_url": item["pic_url"]}})
        else:
            asset = assets.get(item["asset_id"])
            if asset is None:
                continue  # deleted since the message was saved: send the rest
            media_id = _media_id(client, asset)
            if kind == "miniprogram":
                mini = {"title": item["title"], "appid": item["appid"], "page": item["page"], "pic_media_id": media_id}
                payload.append({"msgtype": "miniprogram", "miniprogram": mini})
            else:
                payload.append({"msgtype": kind, kind: {"media_id": media_id}})  # type: ignore[misc]
    return payload


def _media_id(client: WeComClient, asset: WelcomeAsset) -> str:
    """The asset's WeCom temporary media id, uploaded again when it is older than 2.5 of its 3 days."""
    now = timezone.now()
    if asset.media_id and asset.media_uploaded_at and now - asset.media_uploaded_at < MEDIA_REFRESH_AFTER:
        return asset.media_id
    media_type = "image" if asset.kind == WelcomeAsset.Kind.IMAGE else "file"
    media_id = client.media_upload(
        media_type=media_type, filename=asset.name, content=bytes(asset.content), content_type=asset.content_type
    )
    WelcomeAsset.objects.filter(id=asset.id).update(media_id=media_id, media_uploaded_at=now)
    return media_id


# The PII field name bound to the encrypted text of a welcome send (siyu.core.pii: associated data).
WELCOME_TEXT_FIELD = "welcome_send_text"


def welcome_send_deliver(*, welcome_send_id: int, client_factory: ClientFactory | None = None) -> WelcomeSend | None:
    """Send one recorded welcome message with its welcome code; exactly once (claimed by a status update).

    WeCom's answer is recorded: 41050 (expired/unknown code) and 41051 (already used) are final failures and are
    never retried; a lost answer is recorded as a failure too, since a second try could only answer 41051.
    """
    claimed = WelcomeSend.objects.filter(id=welcome_send_id, status=WelcomeSend.Status.PENDING).update(
        status=WelcomeSend.Status.SENDING
    )
    send = WelcomeSend.objects.select_related("welcome_message").filter(id=welcome_send_id).first()
    if not claimed or send is None:
        return send
    status, errcode, error = WelcomeSend.Status.SENT, 0, ""
    try:
        connection = _connection(send.tenant_id)
        attachments = send.welcome_message.attachments if send.welcome_message else []
        with (client_factory or connection_client)(connection) as client:
            payload = _attachment_payload(client, send.tenant_id, attachments)
            text = pii.decrypt(send.text, field=WELCOME_TEXT_FIELD)
            client.welcome_send(welcome_code=send.welcome_code, text=text, attachments=payload)
    except WeComAPIError as exc:
        status, errcode, error = WelcomeSend.Status.FAILED, exc.errcode, exc.errmsg[:300]
    except Exception as exc:  # anything else is recorded on the row, never lost in a log only
        logger.exception("welcome send %s failed", welcome_send_id)
        status, errcode, error = WelcomeSend.Status.FAILED, -1, f"{type(exc).__name__}: {exc}"[:300]
    now = timezone.now()
    latency = max(0, int((now - send.received_at).total_seconds() * 1000))
    WelcomeSend.objects.filter(id=send.id).update(
        status=status,
        errcode=errcode,
        error=error,
        sent_at=now if status == WelcomeSend.Status.SENT else None,
        latency_ms=latency,
    )
    # On the customer's timeline: the guide and the operators see that the welcome went out, or why it did not.
    sent = status == WelcomeSend.Status.SENT
    event_record(
        tenant_id=send.tenant_id,
        type="welcome.sent" if sent else "welcome.failed",
        customer_id=send.customer_id,
        guide_id=send.guide_id,
        occurred_at=now,
        properties={"welcome_send_id": send.id, "live_code_id": send.live_code_id, "latency_ms": latency}
        | ({} if sent else {"errcode": errcode, "error": error}),
    )
    send.refresh_from_db()
    return send


def live_code_mark_tags(
    *, live_code_id: int, follow_relation_id: int, client_factory: ClientFactory | None = None
) -> str:
    """Mark the code's WeCom corp tags on the customer as the guide sees them (mark_tag is idempotent)."""
    code = LiveCode.objects.filter(id=live_code_id).first()
    relation = FollowRelation.objects.select_related("guide").filter(id=follow_relation_id).first()
    if code is None or relation is None:
        return "gone"
    wecom_tags = list(code.tags.exclude(wecom_tag_id="").values_list("wecom_tag_id", flat=True))
    if not wecom_tags:
        return "no WeCom tags"
    with (client_factory or connection_client)(_connection(code.tenant_id)) as client:
        client.mark_tag(
            userid=relation.guide.wecom_userid, external_userid=relation.external_userid, add_tag=wecom_tags
        )
    return f"marked {len(wecom_tags)}"


# -- welcome messages per guide and the default ------------------------------------------------------------------------


@transaction.atomic
def welcome_message_save(
    *,
    actor: Actor,
    scope: str,
    text: str,
    attachments: Sequence[Mapping[str, Any]] = (),
    guide_id: int | None = None,
) -> WelcomeMessage | None:
    """Set the brand's default welcome (HQ) or a guide's (a manager of the guide); empty text and no attachments
    removes it. Per-code welcomes are saved with the code (live_code_update)."""
    _require_manager(actor)
    if scope == WelcomeMessage.Scope.DEFAULT:
        _require_hq(actor)
        guide = None
    elif scope == WelcomeMessage.Scope.GUIDE:
        guide = guide_list(actor=actor).filter(id=guide_id).first() if guide_id else None
        if guide is None:
            raise NotFound(f"unknown guide {guide_id}", field="guide_id")
    else:
        raise ValidationFailed(f"scope must be default or guide, not {scope!r}", field="scope")
    text, cleaned = _clean_welcome(actor, text, attachments)
    existing = WelcomeMessage.objects.filter(tenant_id=actor.tenant_id, scope=scope, guide=guide).first()
    audit_record(actor=actor, action="welcome_message.save", target_type="welcome_message", detail={"scope": scope})
    if not text and not cleaned:
        if existing is not None:
            existing.delete()
        return None
    if existing is None:
        return WelcomeMessage.objects.create(
            tenant_id=actor.tenant_id, scope=scope, guide=guide, text=text, attachments=cleaned
        )
    existing.text, existing.attachments = text, cleaned
    existing.save()
    return existing


_IMAGE_TYPES = {"image/png", "image/jpeg"}


@transaction.atomic
def welcome_asset_upload(*, actor: Actor, kind: str, name: str, content: bytes, content_type: str) -> WelcomeAsset:
    """Keep an image (PNG/JPEG ≤ 2 MB) or a file (≤ 20 MB) for welcome attachments; WeCom's own limits."""
    _require_manager(actor)
    if kind not in WelcomeAsset.Kind.values:
        raise ValidationFailed("kind must be image or file", field="kind")
    name = clean_text(name or "file", field="name", max_length=128, required=True)
    if not content:
        raise ValidationFailed("the file is empty", field="file")
    if len(content) > ASSET_MAX_BYTES[WelcomeAsset.Kind(kind)]:
        raise ValidationFailed("the file is larger than WeCom accepts", field="file")
    if kind == WelcomeAsset.Kind.IMAGE and not (content.startswith((b"\x89PNG", b"\xff\xd8"))):
        raise ValidationFailed("images must be PNG or JPEG", field="file")
    if kind == WelcomeAsset.Kind.IMAGE:
        content_type = "image/png" if content.startswith(b"\x89PNG") else "image/jpeg"
    asset = WelcomeAsset.objects.create(
        tenant_id=actor.tenant_id,
        kind=kind,
        name=name,
        content=content,
        content_type=(content_type or "application/octet-stream")[:100],
        size=len(content),
    )
    audit_record(actor=actor, action="welcome_asset.upload", target_type="welcome_asset", target_id=asset.id)
    return asset


@transaction.atomic
def qr_branding_save(*, actor: Actor, logo: bytes | None = None, caption: str | None = None) -> QrBranding:
    """The brand's QR logo (PNG/JPEG ≤ 512 KB; b"" removes it: the default mark is drawn) and poster caption."""
    _require_hq(actor)
    branding, _ = QrBranding.objects.get_or_create(tenant_id=actor.tenant_id)
    if logo is not None:
        if logo and not (logo.startswith((b"\x89PNG", b"\xff\xd8"))):
            raise ValidationFailed("the logo must be a PNG or JPEG image", field="logo")
        if len(logo) > LOGO_MAX_BYTES:
            raise ValidationFailed("the logo must be at most 512 KB", field="logo")
        if logo:
            from siyu.channels.qr import logo_check

            logo_check(logo)
        branding.logo = logo
        branding.logo_content_type = ("image/png" if logo.startswith(b"\x89PNG") else "image/jpeg") if logo else ""
    if caption is not None:
        branding.caption = clean_text(caption, field="caption", max_length=60)
    branding.save()
    audit_record(actor=actor, action="qr_branding.save", target_type="qr_branding", target_id=branding.id)
    return branding
