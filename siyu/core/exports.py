"""The CSV export job every export of personal data shares (customers, segments): claim, write, audit, clean up.

An export row (a model with status, requested_by, reveal, progress, total, file_name, error, started_at,
finished_at, requested_ip) is claimed before any work, so a job delivered twice writes one file and one audit row.
The CSV is written under a `.part` name and renamed when complete, so a download never serves half a file; a
failure leaves no file at all, complete or partial, and records its message on the row for the requester.
"""

from __future__ import annotations

import contextlib
import csv
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from siyu.core.errors import PermissionDenied
from siyu.core.scopes import Actor
from siyu.core.selectors import membership_for
from siyu.core.services import audit_record

logger = logging.getLogger(__name__)


class ExportRow(Protocol):
    id: int
    tenant_id: int
    requested_by_id: int | None
    requested_ip: str | None
    reveal: bool


E = TypeVar("E", bound=models.Model)


def export_requester(export: ExportRow) -> Actor:
    """The requester as they are now: a changed role or scope applies to an export still in the queue."""
    membership = (
        membership_for(user_id=export.requested_by_id, tenant_id=export.tenant_id) if export.requested_by_id else None
    )
    if membership is None:
        raise PermissionDenied("the requester no longer belongs to this brand", field="requested_by")
    actor = Actor.from_membership(membership)
    if export.reveal and not actor.is_brand_wide:
        raise PermissionDenied("the requester may no longer export unmasked personal data", field="reveal")
    return actor


def csv_export_execute(
    *,
    model: type[E],
    export_id: int,
    path_of: Callable[[E], Path],
    header: Sequence[str],
    rows: Callable[[E, Actor], tuple[int, Iterator[list[list[Any]]]]],
    audit_target: str,
    audit_detail: Callable[[E], dict[str, Any]],
) -> E | None:
    """Run a pending export of `model`: `rows(export, actor)` gives the expected total and the rows in batches;
    `progress` follows each batch; done, the export is audited as `pii.export`. None when there was nothing to
    claim. Any error marks the export failed instead of propagating: the worker carries on."""
    status = model.Status  # type: ignore[attr-defined]
    manager = model._default_manager
    if not manager.filter(id=export_id, status=status.PENDING).update(status=status.RUNNING, started_at=timezone.now()):
        logger.info("%s %s is not pending; nothing to do", audit_target, export_id)
        return None
    export = manager.get(id=export_id)
    path = path_of(export)
    partial = path.with_name(path.name + ".part")
    try:
        actor = export_requester(export)  # type: ignore[arg-type]
        total, batches = rows(export, actor)
        manager.filter(id=export_id).update(total=total)
        path.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        # utf-8-sig: Excel, which most brands open exports with, reads Chinese text as mojibake without the BOM.
        with partial.open("w", encoding="utf-8-sig", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(header)
            for batch in batches:
                writer.writerows(batch)
                written += len(batch)
                manager.filter(id=export_id).update(progress=written)
        partial.replace(path)  # the final name appears only complete
        with transaction.atomic():
            # `total` becomes what was written: rows added or removed since the count do not leave the progress
            # bar short of (or past) 100%.
            manager.filter(id=export_id).update(
                status=status.DONE,
                progress=written,
                total=written,
                file_name=str(path.relative_to(settings.MEDIA_ROOT)),
                finished_at=timezone.now(),
            )
            audit_record(
                actor=actor,
                action="pii.export",
                target_type=audit_target,
                target_id=export_id,
                detail={"rows": written, "revealed": export.reveal, **audit_detail(export)},  # type: ignore[attr-defined]
                ip=export.requested_ip,  # type: ignore[attr-defined]
            )
    except Exception as exc:
        logger.exception("%s %s failed", audit_target, export_id)
        # Best effort: when the directory itself is the problem, there is nothing to remove either.
        for leftover in (partial, path):
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)
        manager.filter(id=export_id).update(
            status=status.FAILED, error=f"{type(exc).__name__}: {exc}"[:1000], finished_at=timezone.now()
        )
    export.refresh_from_db()
    return export
