"""OneID: which customers are one person, merging them, and taking a merge back (客户合并 / 拆分).

**Deterministic rules**, applied as identities arrive (`identity_attach`, `customer_create(merge_shared=True)`,
the WeCom contact sync, the bulk resolver in siyu.customers.resolver): an identity (kind, value) is unique per
brand, so when one arrives for customer X while customer Y holds it,

- an account id (unionid, WeCom external_userid, a shop's buyer id, a member number) names one account: X and Y
  are one person and merge;
- a phone makes them one only when it is verified on both sides (the customer bound it as a member). A phone from a
  WeCom remark or a shop order (often masked, sometimes a relative's) is not proof: the pair goes to the review
  queue instead and the phone stays with Y.

The older customer (created_at, then id) survives, whichever side the identity arrived on, so the outcome does not
depend on arrival order. A pair an operator rejected, or took apart with an unmerge, is never merged by a rule or
proposed again.

**Fuzzy candidates** (likely the same person, never merged without an operator): same exact name + city + last four
phone digits, or same exact name + address. Both are keyed blind indexes on Customer computed when the plaintext is
at hand (create, update, merge), so finding candidates never decrypts anyone. Each pair is one `MergeCandidate`.

**A merge** moves every row that points at the merged customer (siyu.customers.references) to the survivor with one
UPDATE per table, records the ids per table, fills the survivor's empty profile fields from the merged customer,
and sets `merged_into` on the merged customer (its row stays, hidden from lists). A row that would break a unique
constraint on the survivor (both follow the same guide, both carry the same tag, both joined the same campaign)
stays with the merged customer, recorded as kept: the survivor's row is the one kept in view, the other is not
lost and is in view again after an unmerge. **An unmerge** moves the recorded rows back (those still on the
survivor), plus rows that arrived after the merge carrying one of the merged customer's identities (a WeCom
external_userid), restores the survivor's filled fields, and keeps the pair apart from then on.
"""

from __future__ import annotations

import datetime as dt
import logging
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from siyu.core import pii
from siyu.core.errors import Conflict, NotFound, ValidationFailed
from siyu.core.scopes import Actor
from siyu.core.services import audit_record
from siyu.customers.cleaning import clean_phone, identity_value
from siyu.customers.models import Customer, CustomerMerge, Gender, Identity, MergeCandidate
from siyu.customers.references import CustomerReference, customer_references, merge_followers
from siyu.customers.selectors import (
    access_customer,
    access_merge,
    access_merge_candidate,
    customer_pii,
    require_brand_wide,
)

logger = logging.getLogger(__name__)

# How many other customers may share a fuzzy key before it says nothing (a common name in a big city).
MAX_MATCHES = 20
SCORES = {
    MergeCandidate.Reason.PHONE_UNVERIFIED: 90,
    MergeCandidate.Reason.NAME_ADDRESS: 80,
    MergeCandidate.Reason.NAME_CITY_PHONE: 70,
}
_MERGE_RULE = {
    Identity.Kind.UNIONID: CustomerMerge.Rule.UNIONID,
    Identity.Kind.PHONE: CustomerMerge.Rule.PHONE,
}
_CHUNK = 500


# -- the rules -------------------------------------------------------------------------------------------------


def links(kind: str, *, arriving_verified: bool, held_verified: bool) -> bool:
    """Whether identity `kind` held by two customers makes them one person (see the module docstring)."""
    if kind == Identity.Kind.PHONE:
        return arriving_verified and held_verified
    return True


def _normal(text: str) -> str:
    """Case, width and spacing folded; punctuation dropped (addresses are written many ways)."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in {"Z", "P", "C"})


def match_keys(*, name: str, city: str, phone: str, address: str) -> tuple[str, str]:
    """The two fuzzy blind indexes: (name + city + phone's last four digits, name + address); "" when incomplete."""
    name_n, city_n, address_n = _normal(name), _normal(city), _normal(address)
    digits = pii.normalize_phone(phone)
    by_phone = (
        pii.lookup_hash(f"{name_n}\x1f{city_n}\x1f{digits[-4:]}", kind="match_name_city_phone")
        if name_n and city_n and len(digits) >= 4
        else ""
    )
    by_address = pii.lookup_hash(f"{name_n}\x1f{address_n}", kind="match_name_address") if name_n and address_n else ""
    return by_phone, by_address


def match_keys_refresh(customer: Customer) -> None:
    """Recompute a customer's fuzzy keys from its own (decrypted) data; the caller saves."""
    data = customer_pii(customer)
    customer.match_name_city_phone, customer.match_name_address = match_keys(
        name=data["name"], city=customer.city, phone=data["phone"], address=data["address"]
    )


def _ordered(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def pair_blocked(*, tenant_id: int, a: int, b: int) -> bool:
    """An operator said these two are different people (rejected, or unmerged them)."""
    low, high = _ordered(a, b)
    return MergeCandidate.objects.filter(
        tenant_id=tenant_id, customer_a_id=low, customer_b_id=high, status=MergeCandidate.Status.REJECTED
    ).exists()


def _survivor_first(a: Customer, b: Customer) -> tuple[Customer, Customer]:
    """(survivor, merged): the older customer survives; the lower id breaks a tie."""
    return (a, b) if (a.created_at, a.id) <= (b.created_at, b.id) else (b, a)


def candidate_propose(*, tenant_id: int, a: int, b: int, reason: str, score: int) -> MergeCandidate | None:
    """Put the pair in the review queue unless it is there already (a pending pair keeps its best reason)."""
    if a == b:
        return None
    low, high = _ordered(a, b)
    existing = MergeCandidate.objects.filter(tenant_id=tenant_id, customer_a_id=low, customer_b_id=high).first()
    if existing is not None:
        if existing.status == MergeCandidate.Status.PENDING and score > existing.score:
            existing.reason, existing.score = reason, score
            existing.save(update_fields=["reason", "score"])
        return existing
    try:
        with transaction.atomic():
            return MergeCandidate.objects.create(
                tenant_id=tenant_id,
                customer_a_id=low,
                customer_b_id=high,
                reason=reason,
                score=score,
                created_at=timezone.now(),
            )
    except IntegrityError:  # proposed at the same moment by another writer
        return MergeCandidate.objects.filter(tenant_id=tenant_id, customer_a_id=low, customer_b_id=high).first()


def candidates_propose_for(customer: Customer) -> list[MergeCandidate]:
    """Propose the customers that share a fuzzy key with `customer` (after it was created or changed)."""
    proposed: list[MergeCandidate] = []
    for field, reason in (
        ("match_name_address", MergeCandidate.Reason.NAME_ADDRESS),
        ("match_name_city_phone", MergeCandidate.Reason.NAME_CITY_PHONE),
    ):
        key = getattr(customer, field)
        if not key:
            continue
        others = list(
            Customer.objects.filter(tenant_id=customer.tenant_id, merged_into__isnull=True, **{field: key})
            .exclude(id=customer.id)
            .order_by("id")
            .values_list("id", flat=True)[: MAX_MATCHES + 1]
        )
        if len(others) > MAX_MATCHES:
            continue
        for other in others:
            candidate = candidate_propose(
                tenant_id=customer.tenant_id, a=customer.id, b=other, reason=reason, score=SCORES[reason]
            )
            if candidate is not None:
                proposed.append(candidate)
    return proposed


# -- moving rows -----------------------------------------------------------------------------------------------


def _rows(reference: CustomerReference, *, tenant_id: int, customer_id: int) -> Any:
    qs = reference.model._default_manager.filter(**{reference.column: customer_id})
    if reference.tenant_scoped:
        qs = qs.filter(tenant_id=tenant_id)
    return qs


def _colliding(
    reference: CustomerReference, rows: Sequence[tuple[Any, ...]], *, tenant_id: int, target_id: int
) -> set[Any]:
    """Ids among `rows` (pk, then every unique key's columns) that the target customer already has a row like.

    As in SQL, a key with a NULL in it collides with nothing.
    """
    if not reference.unique_keys or not rows:
        return set()
    target = _rows(reference, tenant_id=tenant_id, customer_id=target_id)
    colliding: set[Any] = set()
    position = 1
    for key in reference.unique_keys:
        if key == ():
            if target.exists():
                colliding.update(row[0] for row in rows)
            continue
        taken = set(target.values_list(*key))
        for row in rows:
            values = tuple(row[position : position + len(key)])
            if None not in values and values in taken:
                colliding.add(row[0])
        position += len(key)
    return colliding


def _key_columns(reference: CustomerReference) -> list[str]:
    return [column for key in reference.unique_keys for column in key]


def _update(reference: CustomerReference, ids: Sequence[Any], *, from_id: int, to_id: int) -> None:
    manager = reference.model._default_manager
    for start in range(0, len(ids), _CHUNK):
        manager.filter(pk__in=ids[start : start + _CHUNK], **{reference.column: from_id}).update(
            **{reference.column: to_id}
        )


def _move(reference: CustomerReference, *, tenant_id: int, from_id: int, to_id: int) -> tuple[list[Any], list[Any]]:
    """Move `from_id`'s rows of one table to `to_id`, except those that would collide: (moved ids, kept ids)."""
    rows = list(
        _rows(reference, tenant_id=tenant_id, customer_id=from_id)
        .order_by("pk")
        .values_list("pk", *_key_columns(reference))
    )
    kept = _colliding(reference, rows, tenant_id=tenant_id, target_id=to_id)
    moved = [row[0] for row in rows if row[0] not in kept]
    _update(reference, moved, from_id=from_id, to_id=to_id)
    return moved, sorted(kept)


# Profile fields a survivor takes from the merged customer when its own are empty: (name shown, attnames).
FILLABLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("name", ("name_enc", "name_index")),
    ("phone", ("phone_enc", "phone_hash")),
    ("address", ("address_enc",)),
    ("city", ("city",)),
    ("gender", ("gender",)),
    ("owner_guide", ("owner_guide_id",)),
    ("source", ("source",)),
)


def _empty(value: Any) -> bool:
    return value in ("", None) or value == Gender.UNKNOWN


def _fill(survivor: Customer, merged: Customer) -> dict[str, Any]:
    """Fill the survivor's empty profile fields from the merged customer; returns {attname: value before}."""
    filled: dict[str, Any] = {}
    for _name, attnames in FILLABLE:
        if _empty(getattr(survivor, attnames[0])) and not _empty(getattr(merged, attnames[0])):
            for attname in attnames:
                filled[attname] = getattr(survivor, attname)
                setattr(survivor, attname, getattr(merged, attname))
    return filled


def _lock(*, tenant_id: int, ids: Iterable[int]) -> dict[int, Customer]:
    """The customers `ids` of the brand, locked in id order (so two merges never wait on each other in a cycle)."""
    wanted = sorted(set(ids))
    rows = {
        c.id: c for c in Customer.objects.select_for_update().filter(tenant_id=tenant_id, id__in=wanted).order_by("id")
    }
    return rows


@transaction.atomic
def merge_apply(
    *,
    actor: Actor,
    survivor_id: int,
    merged_id: int,
    rule: str,
    identity_kind: str = "",
    identity_value: str = "",
) -> CustomerMerge:
    """Merge customer `merged_id` into `survivor_id` (both of the actor's brand, neither merged already).

    The engine under every merge: callers decide which survives and check who may merge. Audited.
    """
    if survivor_id == merged_id:
        raise ValidationFailed("a customer cannot be merged into itself", field="customer_ids")
    locked = _lock(tenant_id=actor.tenant_id, ids=(survivor_id, merged_id))
    for customer_id in (survivor_id, merged_id):
        customer = locked.get(customer_id)
        if customer is None:
            raise NotFound(f"customer {customer_id} not found", field="customer_ids")
        if customer.merged_into_id is not None:
            raise Conflict(
                f"customer {customer_id} is already merged into customer {customer.merged_into_id}",
                field="customer_ids",
            )
    survivor, merged = locked[survivor_id], locked[merged_id]
    now = timezone.now()
    moved: dict[str, list[Any]] = {}
    kept: dict[str, list[Any]] = {}
    for reference in customer_references():
        moved_ids, kept_ids = _move(reference, tenant_id=actor.tenant_id, from_id=merged.id, to_id=survivor.id)
        if moved_ids:
            moved[reference.label] = moved_ids
        if kept_ids:
            kept[reference.label] = kept_ids
    filled = _fill(survivor, merged)
    if filled:
        match_keys_refresh(survivor)
    survivor.updated_at = now
    survivor.save()
    merged.merged_into, merged.merged_at, merged.updated_at = survivor, now, now
    merged.save(update_fields=["merged_into", "merged_at", "updated_at"])
    merge = CustomerMerge.objects.create(
        tenant_id=actor.tenant_id,
        survivor=survivor,
        merged=merged,
        rule=rule,
        identity_kind=identity_kind,
        identity_value=identity_value,
        moved=moved,
        kept=kept,
        filled=filled,
        merged_by_id=actor.user_id,
        merged_at=now,
    )
    for follower in merge_followers():
        follower.merged(tenant_id=actor.tenant_id, survivor_id=survivor.id, merged_id=merged.id)
    low, high = _ordered(survivor.id, merged.id)
    MergeCandidate.objects.filter(
        tenant_id=actor.tenant_id, customer_a_id=low, customer_b_id=high, status=MergeCandidate.Status.PENDING
    ).update(status=MergeCandidate.Status.APPROVED, merge=merge, decided_by_id=actor.user_id, decided_at=now)
    audit_record(
        actor=actor,
        action="customer.merge",
        target_type="customer",
        target_id=survivor.id,
        detail={
            "merge_id": merge.id,
            "merged_id": merged.id,
            "rule": rule,
            "moved": {label: len(ids) for label, ids in moved.items()},
            "kept": {label: len(ids) for label, ids in kept.items()},
            "filled": sorted({name for name, attnames in FILLABLE if attnames[0] in filled}),
        },
    )
    return merge


def merge_pair(
    *, actor: Actor, a: int, b: int, rule: str, identity_kind: str = "", identity_value: str = ""
) -> CustomerMerge:
    """Merge two customers, the older surviving (see `_survivor_first`)."""
    locked = _lock(tenant_id=actor.tenant_id, ids=(a, b))
    if a in locked and b in locked and a != b:
        survivor, merged = _survivor_first(locked[a], locked[b])
        a, b = survivor.id, merged.id
    return merge_apply(
        actor=actor, survivor_id=a, merged_id=b, rule=rule, identity_kind=identity_kind, identity_value=identity_value
    )


# -- identities arriving ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """What an arriving identity did: the customer it now belongs with, and the merge or candidate it caused."""

    customer_id: int  # the customer holding the identity afterwards, or the one it arrived for if it was refused
    attached: bool  # a new identity row was written
    merge: CustomerMerge | None = None
    candidate: MergeCandidate | None = None


def identity_arrive(
    *, actor: Actor, customer_id: int, kind: str, value: str, verified: bool = False, at: dt.datetime | None = None
) -> Arrival:
    """Apply the rules to identity (kind, stored `value`) arriving for `customer_id`; call inside a transaction.

    No permission check: callers are services that already decided the actor may write (HQ, a loader).
    """
    now = at or timezone.now()
    verified = verified and kind == Identity.Kind.PHONE
    held = Identity.objects.select_for_update().filter(tenant_id=actor.tenant_id, kind=kind, value=value).first()
    if held is None:
        try:
            with transaction.atomic():
                Identity.objects.create(
                    tenant_id=actor.tenant_id,
                    customer_id=customer_id,
                    kind=kind,
                    value=value,
                    verified=verified,
                    created_at=now,
                )
            return Arrival(customer_id=customer_id, attached=True)
        except IntegrityError:  # another writer stored it first: apply the rules against theirs
            held = Identity.objects.select_for_update().get(tenant_id=actor.tenant_id, kind=kind, value=value)
    if held.customer_id == customer_id:
        if verified and not held.verified:
            held.verified = True
            held.save(update_fields=["verified"])
        return Arrival(customer_id=customer_id, attached=False)
    if pair_blocked(tenant_id=actor.tenant_id, a=customer_id, b=held.customer_id):
        return Arrival(customer_id=customer_id, attached=False)
    if links(kind, arriving_verified=verified, held_verified=held.verified):
        merge = merge_pair(
            actor=actor,
            a=customer_id,
            b=held.customer_id,
            rule=_MERGE_RULE.get(kind, CustomerMerge.Rule.IDENTITY),
            identity_kind=kind,
            identity_value=value,
        )
        return Arrival(customer_id=merge.survivor_id, attached=False, merge=merge)
    # A phone that is not verified on both sides: the identity stays where it is; an operator decides.
    reason = MergeCandidate.Reason.PHONE_UNVERIFIED
    candidate = candidate_propose(
        tenant_id=actor.tenant_id, a=customer_id, b=held.customer_id, reason=reason, score=SCORES[reason]
    )
    return Arrival(customer_id=customer_id, attached=False, candidate=candidate)


@transaction.atomic
def identity_attach(
    *, actor: Actor, customer_id: int, kind: str, value: str, verified: bool = False, source: str = ""
) -> Arrival:
    """Give a customer one more identity (a loader found a unionid, a member bound their phone…), applying the
    deterministic rules: it may merge the customer with the one already holding it, or propose the pair for review.

    HQ (or a loader acting for the brand) only: a merge can reach customers outside any narrower scope. `value` is
    the identity as received (a phone number, not its hash). A verified phone also becomes the customer's phone when
    the customer has none.
    """
    require_brand_wide(actor, "attach identities")
    stored = identity_value(kind, value, field="identity")
    if not isinstance(verified, bool):
        raise ValidationFailed("verified must be true or false", field="verified")
    customer = access_customer(actor=actor, customer_id=customer_id)
    arrival = identity_arrive(actor=actor, customer_id=customer.id, kind=kind, value=stored, verified=verified)
    if kind == Identity.Kind.PHONE:
        holder = Identity.objects.get(tenant_id=actor.tenant_id, kind=kind, value=stored).customer_id
        owner = Customer.objects.select_for_update().get(tenant_id=actor.tenant_id, id=holder)
        if owner.id == arrival.customer_id and not owner.phone_hash:
            owner.phone_enc, owner.phone_hash = pii.encrypt(clean_phone(value), field="phone"), stored
            match_keys_refresh(owner)
            owner.updated_at = timezone.now()
            owner.save(
                update_fields=["phone_enc", "phone_hash", "match_name_city_phone", "match_name_address", "updated_at"]
            )
            candidates_propose_for(owner)
    audit_record(
        actor=actor,
        action="identity.attach",
        target_type="customer",
        target_id=arrival.customer_id,
        detail={
            "kind": kind,
            "verified": verified,
            "source": source[:64],
            "attached": arrival.attached,
            "merge_id": arrival.merge.id if arrival.merge else None,
            "candidate_id": arrival.candidate.id if arrival.candidate else None,
        },
    )
    return arrival


# -- operators: merge, unmerge, review -------------------------------------------------------------------------


@transaction.atomic
def customer_merge(*, actor: Actor, customer_ids: Sequence[int]) -> CustomerMerge:
    """An operator merges two customers they know are one person; the older survives. HQ only."""
    require_brand_wide(actor, "merge customers")
    ids = list(customer_ids)
    if len(ids) != 2 or any(isinstance(i, bool) or not isinstance(i, int) or i <= 0 for i in ids):
        raise ValidationFailed("customer_ids must be two customer ids", field="customer_ids")
    if ids[0] == ids[1]:
        raise ValidationFailed("a customer cannot be merged into itself", field="customer_ids")
    for customer_id in ids:
        try:
            access_customer(actor=actor, customer_id=customer_id)
        except NotFound as exc:
            raise NotFound(exc.message, field="customer_ids") from exc
    return merge_pair(actor=actor, a=ids[0], b=ids[1], rule=CustomerMerge.Rule.MANUAL)


@transaction.atomic
def customer_unmerge(*, actor: Actor, merge_id: int) -> CustomerMerge:
    """Take a merge back: both customers as they were, plus what arrived since for the merged one. HQ only.

    Refused (409) for a merge already undone, and for one whose survivor was merged again since (undo that first:
    merges come apart in the reverse order). The pair is kept apart from then on.
    """
    merge = access_merge(actor=actor, merge_id=merge_id, for_update=True)
    if merge.status == CustomerMerge.Status.UNMERGED:
        raise Conflict(f"merge {merge_id} was already undone; the customers are not merged", field="merge_id")
    locked = _lock(tenant_id=actor.tenant_id, ids=(merge.survivor_id, merge.merged_id))
    survivor, merged = locked[merge.survivor_id], locked[merge.merged_id]
    if survivor.merged_into_id is not None:
        raise Conflict(
            f"customer {survivor.id} was merged into customer {survivor.merged_into_id} afterwards; unmerge that first",
            field="merge_id",
        )
    now = timezone.now()
    references = customer_references()
    # The merged customer's identities come back first: rows that arrived since are recognised by them.
    identity_label = "customers.Identity.customer"
    own = [r for r in references if r.label == identity_label]
    others = [r for r in references if r.label != identity_label]
    restored: dict[str, list[Any]] = {}
    identities: dict[str, set[str]] = {}
    for reference in own + others:
        recorded = merge.moved.get(reference.label, [])
        on_survivor = _rows(reference, tenant_id=actor.tenant_id, customer_id=survivor.id)
        back = [
            pk
            for start in range(0, len(recorded), _CHUNK)
            for pk in on_survivor.filter(pk__in=recorded[start : start + _CHUNK]).values_list("pk", flat=True)
        ]
        if reference.identity_kind and identities.get(reference.identity_kind):
            values = identities[reference.identity_kind]
            late = on_survivor.exclude(pk__in=back).filter(**{f"{reference.identity_field}__in": sorted(values)})
            back += list(late.values_list("pk", flat=True))
        if not back:
            continue
        stay: set[Any] = set()
        if reference.unique_keys:
            columns = _key_columns(reference)
            rows = [
                row
                for start in range(0, len(back), _CHUNK)
                for row in reference.model._default_manager.filter(pk__in=back[start : start + _CHUNK]).values_list(
                    "pk", *columns
                )
            ]
            stay = _colliding(reference, rows, tenant_id=actor.tenant_id, target_id=merged.id)
        back = sorted(pk for pk in back if pk not in stay)
        _update(reference, back, from_id=survivor.id, to_id=merged.id)
        restored[reference.label] = back
        if reference.label == identity_label:
            for kind, value in Identity.objects.filter(id__in=back).values_list("kind", "value"):
                identities.setdefault(kind, set()).add(value)
    # The survivor's fields filled from the merged customer go back to empty, unless someone changed them since.
    reset = [a for a in merge.filled if getattr(survivor, a) == getattr(merged, a)]
    names = {name for name, attnames in FILLABLE if attnames[0] in reset}
    for name, attnames in FILLABLE:
        if name in names:
            for attname in attnames:
                setattr(survivor, attname, merge.filled[attname])
    if names:
        match_keys_refresh(survivor)
    survivor.updated_at = now
    survivor.save()
    merged.merged_into, merged.merged_at, merged.updated_at = None, None, now
    merged.save(update_fields=["merged_into", "merged_at", "updated_at"])
    merge.status, merge.unmerged_by_id, merge.unmerged_at, merge.restored = (
        CustomerMerge.Status.UNMERGED,
        actor.user_id,
        now,
        restored,
    )
    merge.save(update_fields=["status", "unmerged_by", "unmerged_at", "restored"])
    for follower in merge_followers():
        follower.unmerged(tenant_id=actor.tenant_id, survivor_id=survivor.id, merged_id=merged.id)
    low, high = _ordered(survivor.id, merged.id)
    candidate, created = MergeCandidate.objects.get_or_create(
        tenant_id=actor.tenant_id,
        customer_a_id=low,
        customer_b_id=high,
        defaults={
            "reason": MergeCandidate.Reason.UNMERGED,
            "score": 0,
            "status": MergeCandidate.Status.REJECTED,
            "created_at": now,
            "decided_by_id": actor.user_id,
            "decided_at": now,
        },
    )
    if not created:
        candidate.status, candidate.decided_by_id, candidate.decided_at = (
            MergeCandidate.Status.REJECTED,
            actor.user_id,
            now,
        )
        candidate.save(update_fields=["status", "decided_by", "decided_at"])
    audit_record(
        actor=actor,
        action="customer.unmerge",
        target_type="customer",
        target_id=merged.id,
        detail={
            "merge_id": merge.id,
            "survivor_id": survivor.id,
            "restored": {label: len(ids) for label, ids in restored.items()},
            "fields_reset": sorted(names),
        },
    )
    return merge


def _pending_candidate(*, actor: Actor, candidate_id: int) -> MergeCandidate:
    """The pair, locked, while it still waits for a decision (approve and reject each decide it once)."""
    candidate = access_merge_candidate(actor=actor, candidate_id=candidate_id, for_update=True)
    if candidate.status != MergeCandidate.Status.PENDING:
        raise Conflict(f"merge candidate {candidate_id} was already {candidate.status}", field="candidate_id")
    return candidate


@transaction.atomic
def merge_candidate_approve(*, actor: Actor, candidate_id: int) -> CustomerMerge:
    """An operator confirms a pending pair is one person: merge them (the older survives). HQ only."""
    candidate = _pending_candidate(actor=actor, candidate_id=candidate_id)
    merge = merge_pair(
        actor=actor, a=candidate.customer_a_id, b=candidate.customer_b_id, rule=CustomerMerge.Rule.REVIEW
    )
    # merge_apply approved the pending pair and linked the merge; the audit row names the candidate too.
    audit_record(
        actor=actor,
        action="merge_candidate.approve",
        target_type="merge_candidate",
        target_id=candidate.id,
        detail={"merge_id": merge.id, "reason": candidate.reason, "score": candidate.score},
    )
    return merge


@transaction.atomic
def merge_candidate_reject(*, actor: Actor, candidate_id: int) -> MergeCandidate:
    """An operator says a pending pair are different people: never proposed or merged by a rule again. HQ only."""
    candidate = _pending_candidate(actor=actor, candidate_id=candidate_id)
    candidate.status, candidate.decided_by_id, candidate.decided_at = (
        MergeCandidate.Status.REJECTED,
        actor.user_id,
        timezone.now(),
    )
    candidate.save(update_fields=["status", "decided_by", "decided_at"])
    audit_record(
        actor=actor,
        action="merge_candidate.reject",
        target_type="merge_candidate",
        target_id=candidate.id,
        detail={"reason": candidate.reason, "score": candidate.score},
    )
    return candidate


@transaction.atomic
def merge_candidates_find(*, actor: Actor) -> int:
    """Scan the whole brand for pairs sharing a fuzzy key (after a bulk import); returns how many were proposed.

    One GROUP BY per key over the blind indexes: nobody is decrypted. A key shared by more than MAX_MATCHES
    customers proposes nothing (it says little). HQ only; audited.
    """
    require_brand_wide(actor, "look for duplicate customers")
    live = Customer.objects.filter(tenant_id=actor.tenant_id, merged_into__isnull=True)
    pairs: dict[tuple[int, int], str] = {}
    for field, reason in (
        ("match_name_city_phone", MergeCandidate.Reason.NAME_CITY_PHONE),
        ("match_name_address", MergeCandidate.Reason.NAME_ADDRESS),
    ):
        shared = (
            live.exclude(**{field: ""})
            .values(field)
            .annotate(n=Count("id"))
            .filter(n__gt=1, n__lte=MAX_MATCHES + 1)
            .values_list(field, flat=True)
        )
        groups: dict[str, list[int]] = {}
        for key, customer_id in live.filter(**{f"{field}__in": shared}).order_by("id").values_list(field, "id"):
            groups.setdefault(key, []).append(customer_id)
        for ids in groups.values():
            for i, low in enumerate(ids):
                for high in ids[i + 1 :]:
                    pairs[(low, high)] = reason  # name + address (the later loop) outranks name + city + phone
    # Pairs known in any state (pending, approved, rejected) are not proposed again.
    existing = set(
        MergeCandidate.objects.filter(tenant_id=actor.tenant_id).values_list("customer_a_id", "customer_b_id")
    )
    now = timezone.now()
    new = [
        MergeCandidate(
            tenant_id=actor.tenant_id,
            customer_a_id=a,
            customer_b_id=b,
            reason=reason,
            score=SCORES[reason],
            created_at=now,
        )
        for (a, b), reason in sorted(pairs.items())
        if (a, b) not in existing
    ]
    MergeCandidate.objects.bulk_create(new, ignore_conflicts=True, batch_size=1000)
    audit_record(
        actor=actor, action="merge_candidate.find", target_type="merge_candidate", detail={"proposed": len(new)}
    )
    return len(new)
