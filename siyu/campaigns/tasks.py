"""Background jobs of the campaigns context: thin wrappers that call services with ids; each is safe to re-run."""

from __future__ import annotations

from django_tasks import task

from siyu.campaigns import services


@task(queue_name="default")
def fission_settle_run(tenant_id: int) -> str:
    """Decide the invites whose hold has ended and grant the rewards reached (see services.fission_invites_settle).

    Scheduled for the end of each invite's hold; one run settles every invite due by then, so the runs scheduled
    for the others find nothing left and finish at once.
    """
    counts = services.fission_invites_settle(tenant_id=tenant_id)
    return f"counted {counts.counted}, rejected {counts.rejected}, rewards {counts.rewards}"
