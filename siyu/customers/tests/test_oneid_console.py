"""The console's OneID pages: the review queue (masked pairs, approve and reject with htmx), the merges with their
unmerge, merging from the 360 page; HQ only, brand B's HQ never reaches brand A's rows."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from siyu.console.tests.conftest import attr_values, login
from siyu.core.models import AuditLog
from siyu.customers.models import Customer, CustomerMerge, MergeCandidate
from siyu.customers.services import customer_create
from siyu.customers.tests.api_matrix import Fixture, fixture
from siyu.testing import World

HTMX = {"HTTP_HX_REQUEST": "true"}
NOT_HQ = ["region1", "store1", "guide1", "franchisee1"]


def _zh(message: str) -> str:
    """The console speaks Chinese unless asked otherwise."""
    with translation.override("zh-hans"):
        return translation.gettext(message)


@pytest.fixture
def queue(world: World) -> Fixture:
    return fixture(world)


def _state() -> tuple[Any, ...]:
    return (
        list(Customer.objects.order_by("id").values_list("id", "merged_into_id")),
        list(CustomerMerge.objects.order_by("id").values_list("id", "status")),
        list(MergeCandidate.objects.order_by("id").values_list("id", "status")),
        AuditLog.objects.count(),
    )


def test_hq_sees_the_queue_with_both_sides_masked(client: Client, queue: Fixture) -> None:
    login(client, "hq")
    response = client.get(reverse("console:customer_duplicates"))
    assert response.status_code == 200
    html = response.content.decode()
    assert attr_values(html, "data-candidate-id") == [str(queue.reject.id), str(queue.approve.id)]
    for plain in ("钱多多", "13500001111", "13600001111"):
        assert plain not in html
    for masked in ("钱**", "135****1111", "136****1111"):
        assert masked in html
    sides = [int(i) for i in attr_values(html, "data-customer-id")]
    assert sides[2:] == [queue.approve.customer_a_id, queue.approve.customer_b_id]


def test_approving_merges_the_pair_and_answers_the_decided_row(client: Client, queue: Fixture) -> None:
    login(client, "hq")
    url = reverse("console:customer_duplicate_action", args=[queue.approve.id, "approve"])
    response = client.post(url, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert attr_values(html, "data-status") == ["approved"]
    merge = CustomerMerge.objects.get(rule="review")
    assert (merge.survivor_id, merge.merged_id) == (queue.approve.customer_a_id, queue.approve.customer_b_id)
    assert f"#merge-{merge.id}" in html
    assert AuditLog.objects.filter(action="merge_candidate.approve", target_id=str(queue.approve.id)).count() == 1

    # Deciding again says why, in the row, and changes nothing.
    before = _state()
    again = client.post(url, **HTMX)
    assert again.status_code == 200
    assert f"merge candidate {queue.approve.id} was already approved" in again.content.decode()
    assert _state() == before


def test_rejecting_keeps_the_pair_apart(client: Client, queue: Fixture) -> None:
    login(client, "hq")
    response = client.post(reverse("console:customer_duplicate_action", args=[queue.reject.id, "reject"]), **HTMX)
    assert response.status_code == 200
    assert attr_values(response.content.decode(), "data-status") == ["rejected"]
    assert MergeCandidate.objects.get(id=queue.reject.id).status == "rejected"
    assert CustomerMerge.objects.filter(rule="review").count() == 0
    pending = client.get(reverse("console:customer_duplicates")).content.decode()
    assert attr_values(pending, "data-candidate-id") == [str(queue.approve.id)]
    rejected = client.get(reverse("console:customer_duplicates") + "?status=rejected").content.decode()
    assert str(queue.reject.id) in attr_values(rejected, "data-candidate-id")


def test_an_unknown_action_is_not_found(client: Client, queue: Fixture) -> None:
    login(client, "hq")
    before = _state()
    assert (
        client.post(reverse("console:customer_duplicate_action", args=[queue.approve.id, "merge"])).status_code == 404
    )
    assert _state() == before


def test_unmerging_from_the_merges_page(client: Client, queue: Fixture) -> None:
    login(client, "hq")
    page = client.get(reverse("console:customer_merges")).content.decode()
    assert attr_values(page, "data-merge-id") == [str(queue.merge.id)]
    url = reverse("console:customer_unmerge", args=[queue.merge.id])
    response = client.post(url, **HTMX)
    assert response.status_code == 200
    assert attr_values(response.content.decode(), "data-status") == ["unmerged"]
    assert Customer.objects.get(id=queue.merge.merged_id).merged_into_id is None
    before = _state()
    again = client.post(url, **HTMX).content.decode()
    assert f"merge {queue.merge.id} was already undone" in again
    assert _state() == before


def test_merging_from_the_360_page(client: Client, world: World, queue: Fixture) -> None:
    login(client, "hq")
    a, b = queue.to_merge
    detail = client.get(reverse("console:customer_detail", args=[b.id])).content.decode()
    assert 'id="merge-form"' in detail
    url = reverse("console:customer_merge", args=[b.id])

    before = _state()
    for other, message in (
        ("abc", _zh("Enter the id of the other customer.")),
        (str(b.id), "a customer cannot be merged into itself"),
        (str(world.customers["b1"].id), f"customer {world.customers['b1'].id} not found"),
    ):
        answer = client.post(url, {"other_id": other}, **HTMX)
        assert answer.status_code == 200
        assert re.search(re.escape(message), answer.content.decode()), other
        assert _state() == before

    answer = client.post(url, {"other_id": str(a.id)}, **HTMX)
    merge = CustomerMerge.objects.get(merged=b)
    assert attr_values(answer.content.decode(), "data-merge-id") == [str(merge.id)]
    assert (merge.survivor_id, merge.rule) == (a.id, "manual")
    # The merged customer's page is gone; its rows are the survivor's.
    assert client.get(reverse("console:customer_detail", args=[b.id])).status_code == 404


def test_looking_for_duplicates_proposes_new_pairs(client: Client, queue: Fixture) -> None:
    MergeCandidate.objects.filter(id=queue.reject.id).delete()
    login(client, "hq")
    response = client.post(reverse("console:customer_duplicates_scan"), **HTMX)
    assert attr_values(response.content.decode(), "data-found") == ["1"]
    assert MergeCandidate.objects.filter(status="pending").count() == 2


def test_the_list_links_to_the_queue_for_hq_only(client: Client, queue: Fixture) -> None:
    login(client, "hq")
    assert 'id="duplicates-link"' in client.get(reverse("console:customer_list")).content.decode()
    client.logout()
    login(client, "region1")
    assert 'id="duplicates-link"' not in client.get(reverse("console:customer_list")).content.decode()


@pytest.mark.parametrize("persona", NOT_HQ)
def test_other_roles_are_refused_and_nothing_changes(
    client: Client, world: World, queue: Fixture, persona: str
) -> None:
    login(client, persona)
    before = _state()
    for name in ("customer_duplicates", "customer_merges"):
        assert client.get(reverse(f"console:{name}")).status_code == 403
    posts = [
        reverse("console:customer_duplicate_action", args=[queue.approve.id, "approve"]),
        reverse("console:customer_duplicate_action", args=[queue.reject.id, "reject"]),
        reverse("console:customer_duplicates_scan"),
        reverse("console:customer_unmerge", args=[queue.merge.id]),
    ]
    for url in posts:
        assert client.post(url, **HTMX).status_code == 403, url
    c1 = world.customers["c1"]
    assert client.post(reverse("console:customer_merge", args=[c1.id]), {"other_id": "1"}, **HTMX).status_code == 403
    assert 'id="merge-form"' not in client.get(reverse("console:customer_detail", args=[c1.id])).content.decode()
    assert _state() == before


def test_another_brand_never_reaches_brand_a_rows(client: Client, queue: Fixture) -> None:
    login(client, "outsider")
    before = _state()
    assert attr_values(client.get(reverse("console:customer_duplicates")).content.decode(), "data-candidate-id") == []
    assert attr_values(client.get(reverse("console:customer_merges")).content.decode(), "data-merge-id") == []
    for url in (
        reverse("console:customer_duplicate_action", args=[queue.approve.id, "approve"]),
        reverse("console:customer_unmerge", args=[queue.merge.id]),
    ):
        assert client.post(url, **HTMX).status_code == 404
    assert _state() == before


def test_the_queue_costs_the_same_queries_however_long_it_is(client: Client, world: World, queue: Fixture) -> None:
    login(client, "hq")
    url = reverse("console:customer_duplicates")
    with CaptureQueriesContext(connection) as two:
        assert client.get(url).status_code == 200
    hq = world.actor("hq")
    for n in range(4):  # four more pairs
        for prefix in ("135", "136"):
            customer_create(actor=hq, name=f"周{n}", city="温州", phone=f"{prefix}0000{n:04d}")
    assert MergeCandidate.objects.filter(status="pending").count() == 6
    with CaptureQueriesContext(connection) as six:
        assert len(attr_values(client.get(url).content.decode(), "data-candidate-id")) == 6
    assert len(six) == len(two)
