"""Background jobs of the leads context: thin wrappers that call services with ids."""

from __future__ import annotations

from django_tasks import task

from siyu.leads import services


@task(queue_name="default")
def leads_return_run(tenant_id: int) -> str:
    """The brand's leads sweep: convert the open leads a customer now matches (services.leads_convert_matched),
    then return those nobody followed up in time to the pool (services.leads_return_to_pool). Safe to run twice."""
    converted = services.leads_convert_matched(tenant_id=tenant_id)
    return f"converted={converted} returned={services.leads_return_to_pool(tenant_id=tenant_id)}"
