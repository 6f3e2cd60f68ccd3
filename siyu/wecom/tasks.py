"""Background jobs of the WeCom connector: thin wrappers that call services with ids."""

from __future__ import annotations

import datetime as dt

from django_tasks import task

from siyu.wecom import services


# The fast queue: an add_external_contact may carry a WelcomeCode that lives only 20 seconds.
@task(queue_name="fast")
def raw_callback_run(raw_callback_id: int, *more_ids: int) -> str:
    """Process stored callbacks in order (see services.raw_callback_process); safe to run any number of times.

    The endpoint stores callbacks in groups and enqueues one job per group, with every row id of the group.
    Returns the row's status, or for a group the count per status ("processed=3 ignored=1").
    """
    statuses = []
    for row_id in (raw_callback_id, *more_ids):
        row = services.raw_callback_process(raw_callback_id=row_id)
        statuses.append(row.status if row is not None else "missing")
    if len(statuses) == 1:
        return statuses[0]
    return " ".join(f"{status}={statuses.count(status)}" for status in sorted(set(statuses)))


@task(queue_name="default")
def contact_refresh_run(raw_callback_id: int) -> str:
    """Read a new customer's details that WeCom could not give while their add was processed."""
    return services.contact_refresh(raw_callback_id=raw_callback_id)


@task(queue_name="default")
def raw_callback_requeue_run(older_than_seconds: int = 300) -> int:
    """Re-enqueue callbacks whose job was lost or failed (see services.raw_callback_requeue)."""
    return services.raw_callback_requeue(older_than=dt.timedelta(seconds=older_than_seconds))


@task(queue_name="default")
def sync_run_job(tenant_id: int, phases: list[str], requested_by: int | None = None) -> str:
    """Run or resume a sync of the brand (see siyu.wecom.sync); a busy brand is left to the sync already running."""
    from siyu.wecom.sync import SyncOptions, sync_run

    try:
        run = sync_run(tenant_id=tenant_id, options=SyncOptions(phases=phases, requested_by=requested_by))
    except services.SyncBusy:
        return "busy"
    return run.status
