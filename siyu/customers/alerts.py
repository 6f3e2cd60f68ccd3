"""Loss alerts (流失提醒): a customer deleted a guide, or a guide deleted a customer.

`follow_relation_delete` (the del_follow_user / del_external_contact callbacks) calls `loss_alert_raise` in its
transaction; one alert per ended relation and end time, so a retried callback alerts once. After commit a job sends
a WeCom application message (message/send) to the guide and to the store's managers who are WeCom members too.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.db.models import QuerySet
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
    if relation.status == FollowRelation.Status.ACTIVE:
        raise ValidationFailed("the follow relation has not ended", field="relation")
    last = (
        Event.objects.filter(
            tenant_id=relation.tenant_id,
            customer_id=relation.customer_id,
            type__in=LAST_INTERACTION_TYPES,
            occurred_at__lte=at,
        )
        .order_by("-occurred_at", "-id")
        .values_list("occurred_at", "type")
        .first()
    )
    guide = Guide.objects.filter(tenant_id=relation.tenant_id, id=relation.guide_id).only("store_id").get()
    alert, created = LossAlert.objects.get_or_create(
        relation=relation,
        occurred_at=at,
        defaults={
            "tenant_id": relation.tenant_id,
            "customer_id": relation.customer_id,
            "guide_id": relation.guide_id,
            "store_id": guide.store_id,
            "kind": relation.status,
            "last_interaction_at": last[0] if last else None,
            "last_interaction_type": last[1] if last else "",
            "created_at": timezone.now(),
        },
    )
    if not created:
        return None
    from siyu.customers.tasks import loss_alert_notify_run

    enqueue_on_commit(loss_alert_notify_run, alert.id)
    return alert


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
