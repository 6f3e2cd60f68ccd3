"""Personal data: encrypted at rest, found by keyed hash, masked for display."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from django.db import connection

from siyu.core import pii
from siyu.customers.selectors import customer_list
from siyu.testing import World


def test_round_trip_and_field_binding() -> None:
    token = pii.encrypt("13912345678", field="phone")
    assert "13912345678" not in token
    assert pii.decrypt(token, field="phone") == "13912345678"
    # A ciphertext moved to another column does not decrypt: the field is bound as associated data.
    with pytest.raises(InvalidTag):
        pii.decrypt(token, field="name")


def test_same_value_encrypts_differently_but_hashes_alike() -> None:
    assert pii.encrypt("王小明", field="name") != pii.encrypt("王小明", field="name")
    assert pii.phone_hash("+86 138-0000-0001") == pii.phone_hash("13800000001")
    assert pii.phone_hash("13800000001") != pii.phone_hash("13800000002")


def test_masks() -> None:
    assert pii.mask_phone("13812345678") == "138****5678"
    assert pii.mask_name("王小明") == "王**"
    assert pii.mask_name("") == ""


def test_database_holds_no_plain_phone_or_name(world: World) -> None:
    table = world.customers["c1"]._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT name_enc, phone_enc, phone_hash, name_index FROM {table}")  # noqa: S608
        rows = cursor.fetchall()
    dump = " ".join(" ".join(map(str, row)) for row in rows)
    for key in ("c1", "c2", "c3"):
        assert world.phones[key] not in dump
        assert world.names[key] not in dump


def test_phone_and_name_search(world: World) -> None:
    hq = world.actor("hq")
    assert list(customer_list(actor=hq, q="138 0000 0003").values_list("id", flat=True)) == [world.customers["c3"].id]
    assert list(customer_list(actor=hq, q="小明").values_list("id", flat=True)) == [world.customers["c1"].id]
    assert list(customer_list(actor=hq, q="王").values_list("id", flat=True)) == [world.customers["c1"].id]
    assert list(customer_list(actor=hq, q="明小").values_list("id", flat=True)) == []
    # The same phone exists in brand B: brand A's search never returns it.
    assert list(customer_list(actor=hq, q="13800000001").values_list("id", flat=True)) == [world.customers["c1"].id]


def test_full_width_digits_hash_like_ascii_and_other_digits_are_dropped() -> None:
    assert pii.phone_hash("１３８００００００01") == pii.phone_hash("13800000001")
    assert pii.normalize_phone("١٣٨") == ""  # Arabic-Indic digits are not a mainland phone
