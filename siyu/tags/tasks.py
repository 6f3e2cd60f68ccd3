"""Background jobs of the tags context: thin wrappers that call services with ids."""

from __future__ import annotations

from django_tasks import task

from siyu.tags import services


@task(queue_name="default")
def chat_archive_pull_run(tenant_id: int) -> str:
    """Read the brand's new archived chat messages and tag on keywords (see services.chat_archive_pull); idempotent."""
    pull = services.chat_archive_pull(tenant_id=tenant_id)
    return f"{pull.status} seq={pull.seq} messages={pull.messages} matched={pull.matched} tagged={pull.tagged}"
