"""The CSV export job every export of personal data shares (customers, segments): claim, write, audit, clean up.

An export row (a model with status, requested_by, reveal, progress, total, file_name, error, started_at,
finished_at, requested_ip) is claimed before any work, so a job delivered twice writes one file and one audit row.
The CSV is written under a `.part` name and renamed when complete, so a download never serves half a file; a
failure leaves no file at all, complete or partial, and records its message on the row for the requester.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
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
    part = path.with_name(path.name + ".part")
    try:
        actor = export_requester(export)  # type: ignore[arg-type]
        total, batches = rows(export, actor)
        manager.filter(id=export_id).update(total=total)
        path.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        # utf-8-sig: Excel, which most brands open exports with, reads Chinese text as mojibake without the BOM.
        with part.open("w", encoding="utf-8-sig", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(header)
            for batch in batches:
                writer.writerows(batch)
                written += len(batch)
                manager.filter(id=export_id).update(progress=written)
        part.replace(path)  # the final name appears only complete
        with transaction.atomic():
            # `total` becomes what was written: rows added or removed since the count do not leave the progress
            # bar short of (or past) 100%. Only a still running export becomes done: one expired meanwhile (an
            # erasure) must not be offered, so its file goes.
            finished = manager.filter(id=export_id, status=status.RUNNING).update(
                status=status.DONE,
                progress=written,
                total=written,
                file_name=str(path.relative_to(settings.MEDIA_ROOT)),
                finished_at=timezone.now(),
            )
            if not finished:
                logger.info("%s %s was expired while it ran; its file is deleted", audit_target, export_id)
                transaction.on_commit(lambda: _unlink([path]))
                export.refresh_from_db()
                return export
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
        for leftover in (part, path):
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)
        manager.filter(id=export_id, status=status.RUNNING).update(
            status=status.FAILED, error=f"{type(exc).__name__}: {exc}"[:1000], finished_at=timezone.now()
        )
    export.refresh_from_db()
    return export


def csv_exports_expire(
    *,
    model: type[E],
    path_of: Callable[[E], Path],
    created_before: dt.datetime,
    reason: str,
    tenant_id: int | None = None,
) -> int:
    """Delete the files of finished exports of `model` made before `created_before` (one brand, or all) and mark
    them expired with `reason`; how many. Idempotent: an expired export is not finished any more.

    Two callers: the retention sweep (SIYU_EXPORT_RETENTION_DAYS — a CSV of personal data should not lie on disk
    for ever), and an erasure request, since any export made before it may hold the erased person's data and the
    law asks for every copy to go (the requester exports again, without them).
    """
    status = model.Status  # type: ignore[attr-defined]
    # A running export may already have written the rows being erased: it is expired too, and its job, finding
    # the row no longer running when it finishes, deletes its file instead of offering it (csv_export_execute).
    live = (status.DONE, status.RUNNING)
    manager = model._default_manager
    rows = manager.filter(status__in=live, created_at__lt=created_before)
    if tenant_id is not None:
        rows = rows.filter(tenant_id=tenant_id)
    # Row by row, each only if still live: a sweep running at the same time expires it once.
    paths = [
        path_of(export)
        for export in rows.iterator(chunk_size=200)
        if manager.filter(id=export.pk, status__in=live).update(status=status.EXPIRED, error=reason[:1000])
    ]
    # The files go once the rows say expired for good (nobody downloads an expired export); inside an erasure's
    # transaction that rolls back, the files stay with their rows.
    transaction.on_commit(lambda: _unlink(paths))
    return len(paths)


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            logger.exception("could not delete the file of an expired export: %s", path)
