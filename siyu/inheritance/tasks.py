"""Background jobs of the inheritance context: thin wrappers that call services with ids; each is safe to re-run."""

from __future__ import annotations

import datetime as dt

from django_tasks import task

from siyu.inheritance import services


@task(queue_name="default")
def transfer_submit_run(transfer_id: int) -> str:
    """Send a transfer's pending customers and groups to WeCom (see services.transfer_submit)."""
    transfer = services.transfer_submit(transfer_id=transfer_id)
    return transfer.status if transfer is not None else "missing"


@task(queue_name="default")
def transfer_poll_run(transfer_id: int) -> str:
    """Follow a transfer through transfer_result; schedules itself again while customers are still waiting."""
    transfer = services.transfer_poll(transfer_id=transfer_id, reschedule=True)
    return transfer.status if transfer is not None else "missing"


@task(queue_name="default")
def transfer_sweep_run(older_than_seconds: int = 300) -> int:
    """Re-enqueue transfers whose submit or poll job was lost (see services.transfer_sweep)."""
    return services.transfer_sweep(older_than=dt.timedelta(seconds=older_than_seconds))
