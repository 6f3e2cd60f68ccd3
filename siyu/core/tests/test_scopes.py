"""Data scopes: each persona sees exactly the customers, stores and guides of its scope, never brand B's."""

from __future__ import annotations

import pytest

from siyu.core.selectors import guide_list, store_list
from siyu.customers.selectors import customer_list
from siyu.testing import VISIBLE, World

PERSONAS = sorted(VISIBLE)


@pytest.mark.parametrize("persona", PERSONAS)
def test_customer_list_matches_scope(world: World, persona: str) -> None:
    ids = set(customer_list(actor=world.actor(persona)).values_list("id", flat=True))
    expected = {world.customers[k].id for k in VISIBLE[persona]}
    if persona == "outsider":
        expected = {world.customers["b1"].id}
    assert ids == expected


@pytest.mark.parametrize(
    ("persona", "stores"),
    [
        ("hq", {"S1", "S2", "S3"}),
        ("region1", {"S1", "S2"}),
        ("store1", {"S1"}),
        ("franchisee1", {"S1", "S3"}),
        ("guide1", set()),
        ("outsider", {"B1"}),
    ],
)
def test_store_list_matches_scope(world: World, persona: str, stores: set[str]) -> None:
    ids = set(store_list(actor=world.actor(persona)).values_list("id", flat=True))
    assert ids == {world.stores[s].id for s in stores}


@pytest.mark.parametrize(
    ("persona", "guides"),
    [
        ("hq", {"G1", "G2", "G3", "IP"}),
        ("region1", {"G1", "G2"}),
        ("store1", {"G1"}),
        ("franchisee1", {"G1", "G3"}),
        ("guide1", {"G1"}),
        ("outsider", {"GB"}),
    ],
)
def test_guide_list_matches_scope(world: World, persona: str, guides: set[str]) -> None:
    ids = set(guide_list(actor=world.actor(persona)).values_list("id", flat=True))
    assert ids == {world.guides[g].id for g in guides}
