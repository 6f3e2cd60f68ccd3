"""Background jobs of the leads context: thin wrappers that call services with ids."""

from __future__ import annotations

from django_tasks import task

from siyu.leads import services


@task(queue_name="default")
def leads_return_run(tenant_id: int) -> str:
    """Return the brand's leads nobody followed up in time to the pool (see services.leads_return_to_pool)."""
    return f"returned={services.leads_return_to_pool(tenant_id=tenant_id)}"
