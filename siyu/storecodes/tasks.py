"""Background jobs of the store-code context: thin wrappers that call services with ids; each is safe to re-run."""

from __future__ import annotations

from django_tasks import task

from siyu.storecodes import services


@task(queue_name="default")
def store_import_run(import_id: int) -> str:
    """Apply a queued CSV import of stores (see services.store_import_execute); a second delivery does nothing."""
    job = services.store_import_execute(import_id=import_id)
    # The result names what happened, for the backend's task-result record.
    return job.status if job is not None else "skipped"
