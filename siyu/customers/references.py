"""Every table that points at a customer, for merging and unmerging (siyu.customers.identity).

A merge moves the merged customer's rows in these tables to the survivor with one UPDATE per table (and records
their ids); an unmerge moves them back. Foreign keys to Customer are found in the app registry, so a context that
adds one is covered without telling anyone. Declared here are what the registry cannot see:

- references without a foreign key (analytics.Event.customer_id is a plain column: the log is append-only and
  partitionable, so it holds no constraint), registered with `register_customer_reference`;
- which column of a row carries an identity (a WeCom external_userid): on unmerge, rows that arrived after the
  merge go back to the merged customer when they carry one of its identities.

Rows that would break a unique constraint on the survivor (both customers follow the same guide; both carry the
same tag) are not moved: see `CustomerReference.unique_keys` and the rule in docs/design.md (OneID).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

from django.apps import apps
from django.db import models

CUSTOMER_MODEL = "customers.Customer"
# The customers context's own bookkeeping points at customers but is never moved by a merge.
_NOT_MOVED = frozenset({"customers.Customer", "customers.CustomerMerge", "customers.MergeCandidate"})


@dataclass(frozen=True)
class CustomerReference:
    """One column holding a customer id: `model_label` ("app.Model") and its field's name."""

    model_label: str
    field: str
    # The identity kind held in `identity_field` of the same row, if any (e.g. a WeCom external_userid).
    identity_kind: str = ""
    identity_field: str = ""

    @property
    def label(self) -> str:
        return f"{self.model_label}.{self.field}"

    @cached_property
    def model(self) -> type[models.Model]:
        return apps.get_model(self.model_label)

    @cached_property
    def column(self) -> str:
        """The attribute that holds the id (`customer_id` for a foreign key named `customer`)."""
        return self.model._meta.get_field(self.field).attname

    @cached_property
    def tenant_scoped(self) -> bool:
        return any(f.name == "tenant" for f in self.model._meta.concrete_fields)

    @cached_property
    def unique_keys(self) -> tuple[tuple[str, ...], ...]:
        """For each unique constraint that includes this column: the other columns of it (attnames).

        Two rows of the survivor and the merged customer with the same values there cannot both belong to the
        survivor. Conditional constraints count as if unconditional: at worst a row that could have moved stays
        with the merged customer, never a failed merge. An empty tuple means the column itself is unique.
        """
        meta = self.model._meta
        keys: list[tuple[str, ...]] = []
        if meta.get_field(self.field).unique:
            keys.append(())
        groups = [tuple(g) for g in meta.unique_together]
        groups += [tuple(c.fields) for c in meta.constraints if isinstance(c, models.UniqueConstraint) and c.fields]
        own = {self.field, self.column}
        keys.extend(
            tuple(meta.get_field(name).attname for name in group if name not in own)
            for group in groups
            if own & set(group)
        )
        return tuple(keys)


_DECLARED: dict[str, CustomerReference] = {}


def register_customer_reference(
    model_label: str, field: str, *, identity_kind: str = "", identity_field: str = ""
) -> None:
    """Declare a column that holds a customer id (a plain integer column, or a foreign key with an identity hint)."""
    if bool(identity_kind) != bool(identity_field):
        raise ValueError("identity_kind and identity_field go together")
    reference = CustomerReference(model_label, field, identity_kind, identity_field)
    _DECLARED[reference.label] = reference


def customer_references() -> list[CustomerReference]:
    """Every reference a merge moves, in a stable order: foreign keys found in the registry plus the declared ones."""
    customer = apps.get_model(CUSTOMER_MODEL)
    found: dict[str, CustomerReference] = {}
    for model in apps.get_models():
        if model._meta.label in _NOT_MOVED or model._meta.proxy or not model._meta.managed:
            continue
        for f in model._meta.concrete_fields:
            if isinstance(f, models.ForeignKey) and f.related_model is customer:
                reference = CustomerReference(model._meta.label, f.name)
                found[reference.label] = reference
    found.update(_DECLARED)
    return [found[label] for label in sorted(found)]


_EXTERNAL_USERID = "wecom_external_userid"

register_customer_reference("analytics.Event", "customer_id")
register_customer_reference(
    "customers.FollowRelation", "customer", identity_kind=_EXTERNAL_USERID, identity_field="external_userid"
)
register_customer_reference("groups.GroupMember", "customer", identity_kind=_EXTERNAL_USERID, identity_field="userid")
register_customer_reference(
    "inheritance.TransferItem", "customer", identity_kind=_EXTERNAL_USERID, identity_field="external_userid"
)
register_customer_reference(
    "inheritance.UnassignedCustomer", "customer", identity_kind=_EXTERNAL_USERID, identity_field="external_userid"
)


# -- contexts that mirror customer state elsewhere ---------------------------------------------------------------


class MergeHook(Protocol):
    def __call__(self, *, tenant_id: int, survivor_id: int, merged_id: int) -> object: ...


@dataclass(frozen=True)
class MergeFollower:
    """What a context does when two customers are merged or a merge is undone, beyond moving its rows: e.g. the
    tags context re-marks the survivor's WeCom relations with the tags the merge brought (siyu.tags.push). Called
    in the merge's transaction, after the rows moved, so what it writes (outbox rows) commits with the merge."""

    merged: MergeHook
    unmerged: MergeHook


_FOLLOWERS: dict[str, MergeFollower] = {}


def register_merge_follower(name: str, follower: MergeFollower) -> None:
    """Register (or replace: an app's ready() may run twice) the follower named `name`."""
    _FOLLOWERS[name] = follower


def merge_followers() -> list[MergeFollower]:
    return [_FOLLOWERS[name] for name in sorted(_FOLLOWERS)]
