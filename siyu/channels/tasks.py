"""Background jobs of the channels context: thin wrappers that call services with ids."""

from __future__ import annotations

from django_tasks import task

from siyu.channels import services


@task(queue_name="fast")
def live_code_rebalance_run(live_code_id: int) -> str:
    """Point the code's WeCom way at the guide its strategy picks next (see services.live_code_rebalance)."""
    return services.live_code_rebalance(live_code_id=live_code_id)


@task(queue_name="default")
def live_code_mark_tags_run(live_code_id: int, follow_relation_id: int) -> str:
    """Mark the code's corp tags on a new customer in WeCom too (mark_tag is idempotent)."""
    return services.live_code_mark_tags(live_code_id=live_code_id, follow_relation_id=follow_relation_id)


@task(queue_name="fast")
def welcome_send_run(welcome_send_id: int) -> str:
    """Send a recorded welcome message (normally sent inline right after the add commits; this is the fallback)."""
    send = services.welcome_send_deliver(welcome_send_id=welcome_send_id)
    return send.status if send is not None else "missing"


@task(queue_name="default")
def live_codes_rebalance_due_run() -> int:
    """Enqueue rebalances for codes whose schedule window or day changed (for the worker's periodic sweep)."""
    return services.live_codes_rebalance_due()
