"""Background jobs of the tags context: thin wrappers that call services with ids."""

from __future__ import annotations

from django_tasks import task

from siyu.tags import services


@task(queue_name="default")
def chat_archive_pull_run(tenant_id: int) -> str:
    """Read the brand's new archived chat messages and tag on keywords (see services.chat_archive_pull); idempotent."""
    pull = services.chat_archive_pull(tenant_id=tenant_id)
    return f"{pull.status} seq={pull.seq} messages={pull.messages} matched={pull.matched} tagged={pull.tagged}"


@task(queue_name="default")
def tag_pushes_run(tenant_id: int) -> str:
    """Deliver the brand's due tag changes to WeCom (see siyu.tags.push); idempotent."""
    from siyu.tags.push import tag_pushes_deliver

    drain = tag_pushes_deliver(tenant_id=tenant_id)
    return f"done={drain.done} retried={drain.retried} failed={drain.failed}"


@task(queue_name="default")
def tag_rule_run_job(rule_id: int) -> str:
    """Recompute one automatic tagging rule (see siyu.tags.rules.tag_rule_apply); idempotent."""
    from siyu.tags.rules import tag_rule_apply

    run = tag_rule_apply(rule_id=rule_id)
    return f"matched={run.matched} added={run.added} removed={run.removed}"
