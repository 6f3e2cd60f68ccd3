"""Background jobs of the groups context: thin wrappers that call services with ids; each is safe to re-run."""

from __future__ import annotations

from django_tasks import task

from siyu.groups import services


@task(queue_name="default")
def group_code_sync_run(tenant_id: int, code_id: int) -> str:
    """Write a group code's current window of groups to its WeCom join ways (see services.group_code_sync)."""
    code = services.group_code_sync(tenant_id=tenant_id, code_id=code_id)
    return "missing" if code is None else (code.sync_error or "synced")


@task(queue_name="default")
def group_codes_group_changed_run(tenant_id: int, group_id: int) -> list[int]:
    """A mirrored group changed: attach, mark invitations joined, switch codes (services.group_codes_group_changed)."""
    return services.group_codes_group_changed(tenant_id=tenant_id, group_id=group_id)


@task(queue_name="default")
def group_invites_send_run(tenant_id: int, items: list[list[int]]) -> dict[str, int]:
    """Invite customers ([customer id, rule id] pairs) to their rule's group code (services.group_invites_send)."""
    return services.group_invites_send(tenant_id=tenant_id, items=[(c, r) for c, r in items])
