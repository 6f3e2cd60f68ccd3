"""Loss alerts (流失提醒): a customer deleted a guide, or a guide deleted a customer.

`follow_relation_delete` (the del_follow_user / del_external_contact callbacks) calls `loss_alert_raise` in its
transaction, and the WeCom sync's prune calls `loss_alerts_raise` for many relations at once (a constant number of
queries); one alert per ended relation and end time, so a retried callback alerts once. After commit a job sends
a WeCom application message (message/send) to the guide and to the store's managers who are WeCom members too.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from siyu.analytics.models import Event
from siyu.core.errors import ValidationFailed
from siyu.core.jobs import enqueue_on_commit
from siyu.core.models import Guide, Membership, Role
from siyu.core.scopes import Actor
from siyu.customers.lifecycle import INTERACTION_TYPES
from siyu.customers.models import FollowRelation, LossAlert
from siyu.customers.selectors import customer_card

logger = logging.getLogger(__name__)

# The interactions worth naming as "last interaction" (adds and orders included; the loss itself excluded).
LAST_INTERACTION_TYPES = INTERACTION_TYPES


def loss_alert_raise(*, relation: FollowRelation, at: dt.datetime) -> LossAlert | None:
    """Record the loss of `relation` (already marked deleted) and schedule the alert; None when already recorded.

    Called inside the caller's transaction, so the alert exists exactly when the deletion does.
    """
    created = loss_alerts_raise(relations=[relation], at=at)
    return created[0] if created else None


def loss_alerts_raise(*, relations: Sequence[FollowRelation], at: dt.datetime) -> list[LossAlert]:
    """Record the losses of `relations` (all of one tenant, already marked deleted at `at`) and schedule one alert
    job each; returns the alerts created (those already recorded are skipped, so a retry alerts once).

    A constant number of queries for any number of relations (the WeCom sync prunes thousands at once): one for the
    last interactions, one for the guides' stores, one for the alerts already recorded, one bulk insert.
    """
    if not relations:
        return []
    for relation in relations:
        if relation.status == FollowRelation.Status.ACTIVE:
            raise ValidationFailed("the follow relation has not ended", field="relation")
    tenant_ids = {r.tenant_id for r in relations}
    if len(tenant_ids) != 1:
        raise ValidationFailed("loss alerts are raised for one brand at a time", field="relations")
    tenant_id = tenant_ids.pop()
    by_id = {r.id: r for r in relations}
    # The customer's latest interaction up to the loss, per relation, as correlated subqueries of one query
    # (served by the event_customer_time index); the loss event itself is no interaction.
    interactions = Event.objects.filter(
        tenant_id=tenant_id, customer_id=OuterRef("customer_id"), type__in=LAST_INTERACTION_TYPES, occurred_at__lte=at
    ).order_by("-occurred_at", "-id")
    last = {
        row["id"]: (row["last_at"], row["last_type"])
        for row in FollowRelation.objects.filter(tenant_id=tenant_id, id__in=sorted(by_id))
        .annotate(
            last_at=Subquery(interactions.values("occurred_at")[:1]),
            last_type=Subquery(interactions.values("type")[:1]),
        )
        .values("id", "last_at", "last_type")
    }
    stores = dict(
        Guide.objects.filter(tenant_id=tenant_id, id__in={r.guide_id for r in relations}).values_list("id", "store_id")
    )
    recorded = set(
        LossAlert.objects.filter(relation_id__in=sorted(by_id), occurred_at=at).values_list("relation_id", flat=True)
    )
    now = timezone.now()
    new = [
        LossAlert(
            tenant_id=tenant_id,
            relation_id=r.id,
            customer_id=r.customer_id,
            guide_id=r.guide_id,
            store_id=stores[r.guide_id],
            kind=r.status,
            occurred_at=at,
            last_interaction_at=last.get(r.id, (None, None))[0],
            last_interaction_type=last.get(r.id, (None, None))[1] or "",
            created_at=now,
        )
        for r in by_id.values()
        if r.id not in recorded
    ]
    try:
        with transaction.atomic():
            created = LossAlert.objects.bulk_create(new)
    except IntegrityError:
        # A concurrent callback recorded one of these losses meanwhile: fall back to one at a time, skipping it.
        created = []
        for alert in new:
            row, made = LossAlert.objects.get_or_create(
                relation_id=alert.relation_id, occurred_at=at, defaults=_alert_defaults(alert)
            )
            if made:
                created.append(row)
    from siyu.customers.tasks import loss_alert_notify_run

    # One job per alert, after commit: each message is sent, retried and recorded on its own alert.
    for alert in created:
        enqueue_on_commit(loss_alert_notify_run, alert.id)
    return created


def _alert_defaults(alert: LossAlert) -> dict[str, object]:
    fields = ("tenant_id", "customer_id", "guide_id", "store_id", "kind", "last_interaction_at",
              "last_interaction_type", "created_at")  # fmt: skip
    return {f: getattr(alert, f) for f in fields}


def _recipients(alert: LossAlert) -> list[str]:
    """The guide's WeCom userid, then those of the store's managers who are WeCom members (linked guides)."""
    userids = [alert.guide.wecom_userid]
    if alert.store_id:
        managers = Membership.objects.filter(
            tenant_id=alert.tenant_id, role=Role.STORE_MANAGER, store_id=alert.store_id
        ).values("user_id")
        userids += list(
            Guide.objects.filter(tenant_id=alert.tenant_id, user_id__in=managers, status=Guide.Status.ACTIVE)
            .order_by("wecom_userid")
            .values_list("wecom_userid", flat=True)
        )
    return list(dict.fromkeys(u for u in userids if u))


def loss_alert_text(alert: LossAlert) -> str:
    name = customer_card(alert.customer).name_masked or _("A customer")
    when = timezone.localtime(alert.occurred_at).strftime("%Y-%m-%d %H:%M")
    if alert.kind == LossAlert.Kind.DELETED_BY_CUSTOMER:
        text = _("Loss alert: %(name)s deleted guide %(guide)s at %(when)s.")
    else:
        text = _("Loss alert: guide %(guide)s deleted %(name)s at %(when)s.")
    return text % {"name": name, "guide": alert.guide.name, "when": when}


def loss_alert_notify(*, alert_id: int) -> str:
    """Send the alert's app message once: claims the alert (notified_at) before sending, so a job delivered twice
    sends once; a failed send clears the claim and records the error, and the job may be run again."""
    from siyu.wecom.selectors import connection_client, connection_for_tenant

    alert = LossAlert.objects.select_related("guide", "customer").filter(id=alert_id).first()
    if alert is None:
        return "missing"
    connection = connection_for_tenant(tenant_id=alert.tenant_id)
    if connection is None or not connection.agent_id.isdigit():
        LossAlert.objects.filter(id=alert.id).update(notify_error="WeCom is not connected")
        return "not connected"
    now = timezone.now()
    if not LossAlert.objects.filter(id=alert.id, notified_at__isnull=True).update(notified_at=now):
        return "already sent"
    userids = _recipients(alert)
    app = "app" if connection.app_secret_enc else "contact"
    try:
        with connection_client(connection, app=app) as client:
            invalid = client.message_send_text(
                agentid=int(connection.agent_id), userids=userids, content=loss_alert_text(alert)
            )
    except Exception as exc:
        # Network or WeCom refused: un-claim so a retry sends, and say why on the lost-customers list.
        LossAlert.objects.filter(id=alert.id).update(notified_at=None, notify_error=str(exc)[:200])
        logger.warning("loss alert %s not sent: %s", alert.id, exc)
        raise
    error = f"unknown members: {', '.join(invalid)}"[:200] if invalid else ""
    LossAlert.objects.filter(id=alert.id).update(notify_error=error)
    return f"sent to {len(userids) - len(invalid)}"


# -- reads ----------------------------------------------------------------------------------------------------------


def loss_alert_list(
    *,
    actor: Actor,
    since: dt.date | None = None,
    until: dt.date | None = None,
    store_id: int | None = None,
    guide_id: int | None = None,
) -> QuerySet[LossAlert]:
    """Lost customers in the actor's scope (the guides in scope; all for HQ), newest first, filtered."""
    qs = LossAlert.objects.filter(tenant_id=actor.tenant_id, customer__merged_into__isnull=True)
    if actor.guide_ids is not None:
        qs = qs.filter(guide_id__in=sorted(actor.guide_ids))
    tz = timezone.get_current_timezone()
    if since:
        qs = qs.filter(occurred_at__gte=dt.datetime.combine(since, dt.time.min, tzinfo=tz))
    if until:
        qs = qs.filter(occurred_at__lt=dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min, tzinfo=tz))
    if store_id:
        qs = qs.filter(store_id=store_id)
    if guide_id:
        qs = qs.filter(guide_id=guide_id)
    return qs.select_related("customer", "guide", "store").order_by("-occurred_at", "-id")


@dataclass(frozen=True)
class LossRow:
    alert: LossAlert
    name_masked: str


def loss_rows(alerts: list[LossAlert]) -> list[LossRow]:
    return [LossRow(alert=a, name_masked=customer_card(a.customer).name_masked) for a in alerts]
