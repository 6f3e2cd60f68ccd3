"""Background jobs of the analytics context: thin wrappers that call services with ids."""

from __future__ import annotations

from django_tasks import task

from siyu.analytics import services


@task(queue_name="default")
def segment_refresh_run(segment_id: int) -> str:
    """Recount one segment (see services.segment_refresh); idempotent."""
    segment = services.segment_refresh(segment_id=segment_id)
    return "gone" if segment is None else f"count={segment.cached_count}"


@task(queue_name="default")
def segment_export_run(export_id: int) -> str:
    """Write a requested segment export (see services.segment_export_execute); safe to run twice."""
    export = services.segment_export_execute(export_id=export_id)
    return export.status if export is not None else "skipped"
