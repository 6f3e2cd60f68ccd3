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
