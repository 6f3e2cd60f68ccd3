"""Background jobs of the customers context: thin wrappers that call services with ids."""

from __future__ import annotations

from django_tasks import task

from siyu.customers import services


@task(queue_name="default")
def customer_export_run(export_id: int) -> str:
    """Write a requested customer export (see services.customer_export_execute); safe to run twice."""
    export = services.customer_export_execute(export_id=export_id)
    # The result names what happened, for the backend's task-result record.
    return export.status if export is not None else "skipped"


@task(queue_name="default")
def lifecycle_recompute_run(tenant_id: int) -> str:
    """Apply the lifecycle rules to a brand (see lifecycle.lifecycle_recompute); a second run moves nobody."""
    from siyu.customers.lifecycle import lifecycle_recompute

    return f"moved {lifecycle_recompute(tenant_id=tenant_id)}"


@task(queue_name="default")
def loss_alert_notify_run(alert_id: int) -> str:
    """Send a loss alert's WeCom app message to the guide and store manager (see alerts.loss_alert_notify); once."""
    from siyu.customers.alerts import loss_alert_notify

    return loss_alert_notify(alert_id=alert_id)
