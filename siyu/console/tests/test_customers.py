"""The customer list, the 360 page, reveal and export, as a signed-in user experiences them."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from pytest_django import DjangoAssertNumQueries
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks
from pytest_django.fixtures import Settings as SettingsWrapper

from siyu.console.tests.conftest import Shop, attr_values, login
from siyu.core.models import AuditLog
from siyu.customers.models import CustomerExport
from siyu.customers.services import IdentityInput, customer_create, customer_update, follow_relation_add
from siyu.tags.services import customer_tag_add
from siyu.testing import IMMEDIATE_TASKS, World

LIST = "console:customer_list"


def shown_ids(response: object) -> list[int]:
    return [int(i) for i in attr_values(response.content.decode(), "data-customer-id")]  # type: ignore[attr-defined]


def test_list_is_newest_first_with_masked_pii_tags_and_dates(client: Client, world: World) -> None:
    login(client, "hq")
    response = client.get(reverse(LIST))
    html = response.content.decode()
    c = world.customers
    assert shown_ids(response) == [c[k].id for k in ("c5", "c4", "c3", "c2", "c1")]
    assert "王*" in html
    assert "王小明" not in html
    assert "138****0001" in html
    assert "13800000001" not in html
    assert '<span class="chip" title="兴趣">护肤</span>' in html
    assert "2026-01-05" in html


def test_search_by_phone_finds_exactly_one_customer(client: Client, world: World) -> None:
    login(client, "hq")
    response = client.get(reverse(LIST), {"q": "138 0000 0003"})
    assert shown_ids(response) == [world.customers["c3"].id]


def test_search_by_name_and_by_identity(client: Client, world: World) -> None:
    login(client, "hq")
    assert shown_ids(client.get(reverse(LIST), {"q": "小明"})) == [world.customers["c1"].id]
    assert shown_ids(client.get(reverse(LIST), {"q": "union-c4"})) == [world.customers["c4"].id]


def test_search_never_crosses_the_scope(client: Client, world: World) -> None:
    login(client, "store1")
    assert shown_ids(client.get(reverse(LIST), {"q": "13800000002"})) == []
    login(client, "outsider")
    # The same phone exists in both brands: brand B's HQ finds only its own customer.
    assert shown_ids(client.get(reverse(LIST), {"q": "13800000001"})) == [world.customers["b1"].id]


def test_filters_by_stage_tags_store_and_guide(client: Client, world: World) -> None:
    hq = world.actor("hq")
    customer_update(actor=hq, customer_id=world.customers["c3"].id, changes={"lifecycle_stage": "repeat"})
    customer_tag_add(actor=hq, customer_id=world.customers["c3"].id, tag_id=world.tags["彩妆"].id)
    login(client, "hq")
    c = world.customers
    assert shown_ids(client.get(reverse(LIST), {"stage": "repeat"})) == [c["c3"].id]
    skin, makeup = world.tags["护肤"].id, world.tags["彩妆"].id
    assert shown_ids(client.get(reverse(LIST), {"tag": [skin]})) == [c["c3"].id, c["c1"].id]
    assert shown_ids(client.get(reverse(LIST), {"tag": [skin, makeup]})) == [c["c3"].id]
    assert shown_ids(client.get(reverse(LIST), {"store": world.stores["S2"].id})) == [c["c2"].id]
    assert shown_ids(client.get(reverse(LIST), {"guide": world.guides["G3"].id})) == [c["c3"].id]


def test_filter_options_are_limited_to_the_scope(client: Client, world: World) -> None:
    login(client, "region1")
    form = client.get(reverse(LIST)).context["form"]
    assert {v for v, _ in form.fields["store"].choices if v} == {world.stores["S1"].id, world.stores["S2"].id}
    assert {v for v, _ in form.fields["guide"].choices if v} == {world.guides["G1"].id, world.guides["G2"].id}
    # A store outside the scope is refused with a message, not used to widen or leak anything.
    response = client.get(reverse(LIST), {"store": world.stores["S3"].id})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode() or "选择一个有效的选项" in response.content.decode()
    assert sorted(shown_ids(response)) == sorted([world.customers["c1"].id, world.customers["c2"].id])


@pytest.mark.parametrize(
    ("params", "field_label"),
    [
        ({"stage": "vip"}, "生命周期阶段"),
        ({"tag": "abc"}, "标签"),
        ({"tag": "999999"}, "标签"),
        ({"store": "x1"}, "门店"),
        ({"guide": "-3"}, "导购"),
    ],
)
def test_invalid_filters_are_named_and_ignored(
    client: Client, world: World, params: dict[str, str], field_label: str
) -> None:
    login(client, "hq")
    response = client.get(reverse(LIST), params)
    html = response.content.decode()
    assert response.status_code == 200
    assert "部分筛选条件无效，已忽略" in html
    assert f"<li>{field_label}:" in html
    assert len(shown_ids(response)) == 5


@pytest.mark.parametrize("page", ["abc", "-1", "0", "1.5", "99999999999999999999"])
def test_bad_page_numbers_never_fail(client: Client, world: World, page: str) -> None:
    login(client, "hq")
    response = client.get(reverse(LIST), {"page": page})
    assert response.status_code == 200
    ids = shown_ids(response)
    assert ids in ([world.customers[k].id for k in ("c5", "c4", "c3", "c2", "c1")], [])


def _add_customers(world: World, n: int) -> None:
    hq = world.actor("hq")
    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    for i in range(n):
        customer = customer_create(
            actor=hq,
            name=f"客户{i}",
            phone=f"1390000{i:04d}",
            identities=[IdentityInput(kind="member_no", value=f"M{i}")],
            created_at=t0 + dt.timedelta(minutes=i),
            owner_guide_id=world.guides["G1"].id,
        )
        follow_relation_add(
            actor=hq, customer_id=customer.id, guide_id=world.guides["G1"].id, external_userid=f"wmx{i}"
        )
        customer_tag_add(actor=hq, customer_id=customer.id, tag_id=world.tags["护肤"].id)
        customer_tag_add(actor=hq, customer_id=customer.id, tag_id=world.tags["彩妆"].id)


def test_pages_of_25_with_htmx_partial_and_linkable_url(client: Client, world: World) -> None:
    _add_customers(world, 55)  # 60 customers: pages of 25, 25, 10
    login(client, "hq")
    first = client.get(reverse(LIST))
    assert len(shown_ids(first)) == 25
    assert 'rel="next"' in first.content.decode()

    partial = client.get(reverse(LIST), {"q": "", "stage": "", "page": "2"}, HTTP_HX_REQUEST="true")
    html = partial.content.decode()
    assert partial.status_code == 200
    assert "<html" not in html  # only the results block is swapped
    assert html.lstrip().startswith('<section id="customer-results"')
    assert len(shown_ids(partial)) == 25
    assert set(shown_ids(partial)).isdisjoint(shown_ids(first))
    assert partial["HX-Push-Url"] == "/customers/?page=2"  # empty filters dropped from the address

    last = client.get(reverse(LIST), {"page": "3"})
    assert len(shown_ids(last)) == 10
    assert 'rel="next"' not in last.content.decode()
    assert 'rel="prev"' in last.content.decode()
    every = shown_ids(first) + shown_ids(partial) + shown_ids(last)
    assert len(set(every)) == 60


def test_htmx_filter_pushes_a_clean_url(client: Client, world: World) -> None:
    login(client, "hq")
    skin = world.tags["护肤"].id
    response = client.get(reverse(LIST), {"q": "", "stage": "new", "tag": [skin], "store": ""}, HTTP_HX_REQUEST="true")
    assert response["HX-Push-Url"] == f"/customers/?stage=new&tag={skin}"


def test_total_is_counted_on_request(client: Client, world: World) -> None:
    login(client, "region1")
    html = client.get(reverse("console:customer_total")).content.decode()
    assert "共 2 位客户" in html


@pytest.mark.parametrize(("persona", "queries"), [("hq", 9), ("region1", 11), ("guide1", 8)])
def test_list_query_count_does_not_grow_with_rows(
    client: Client,
    world: World,
    django_assert_max_num_queries: DjangoAssertNumQueries,
    persona: str,
    queries: int,
) -> None:
    # session, user, membership, [the actor's stores and guides], tag/store/guide options, the page, its tag
    # chips, the user's brands; the same whatever the number of rows or tags on the page.
    _add_customers(world, 30)
    login(client, persona)
    client.get(reverse(LIST))
    with django_assert_max_num_queries(queries):
        response = client.get(reverse(LIST))
    assert len(shown_ids(response)) == 25
    with django_assert_max_num_queries(queries - 1):  # an HTMX swap does not render the brand switcher
        client.get(reverse(LIST), {"page": 2, "tag": world.tags["护肤"].id}, HTTP_HX_REQUEST="true")


# customer_detail: 18, plus the lifecycle stage names (1) and the customer's groups in scope (3: the groups context
# authorises the customer, reads the actor's guides, then the groups).
@pytest.mark.parametrize(
    ("page", "queries"),
    [("console:customer_detail", 22), ("console:home", 12), ("console:order_list", 7), ("console:tag_list", 8),
     ("console:org", 10), ("console:audit_list", 7), ("console:analytics", 15)],
)
def test_other_pages_have_a_fixed_query_budget(
    client: Client, shop: Shop, django_assert_max_num_queries: DjangoAssertNumQueries, page: str, queries: int
) -> None:
    _add_customers(shop.world, 10)
    login(client, "franchisee1")
    args = [shop.world.customers["c1"].id] if page == "console:customer_detail" else []
    client.get(reverse(page, args=args))
    with django_assert_max_num_queries(queries):
        assert client.get(reverse(page, args=args)).status_code == 200


# ----- customer 360 -------------------------------------------------------------------------------------


def test_360_shows_profile_identities_relations_tags_orders_and_timeline(client: Client, shop: Shop) -> None:
    world = shop.world
    login(client, "hq")
    c1 = world.customers["c1"]
    response = client.get(reverse("console:customer_detail", args=[c1.id]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "王**" in html
    assert "王小明" not in html
    assert "13800000001" not in html
    assert "union-c1" in html  # identity
    assert "wmc1" in html  # WeCom external user id identity
    assert attr_values(html, "data-guide-id") == [str(world.guides["G1"].id)]
    assert "扫描二维码" in html  # add way, translated
    assert "store-S1" in html  # state
    assert '<div class="tag-source-label">手动</div>' in html
    assert attr_values(html, "data-order-no") == ["A-001"]
    assert "100.00" in html
    # Newest first: the tag was added when the world was built (now), the rest in January.
    assert attr_values(html, "data-event-type") == ["tag.added", "order.paid", "contact.added", "customer.created"]


def test_timeline_filters_by_type_and_pages(client: Client, world: World) -> None:
    hq = world.actor("hq")
    c1 = world.customers["c1"]
    for i in range(25):
        customer_update(actor=hq, customer_id=c1.id, changes={"city": f"城市{i}"})
    login(client, "hq")
    url = reverse("console:customer_timeline", args=[c1.id])
    first = client.get(url, {"type": "customer.updated"}, HTTP_HX_REQUEST="true").content.decode()
    assert attr_values(first, "data-event-type") == ["customer.updated"] * 20
    second = client.get(url, {"type": "customer.updated", "page": 2}).content.decode()
    assert attr_values(second, "data-event-type") == ["customer.updated"] * 5
    assert f'hx-get="/customers/{c1.id}/timeline/?type=customer.updated&amp;page=1"' in second
    bad = client.get(url, {"type": "nonsense", "page": "x"})
    assert bad.status_code == 200
    assert "事件类型" in bad.content.decode()
    assert len(attr_values(bad.content.decode(), "data-event-type")) == 20


def test_reveal_shows_pii_in_place_and_writes_one_audit_row(client: Client, world: World) -> None:
    login(client, "store1")
    c1 = world.customers["c1"]
    response = client.post(
        reverse("console:customer_reveal", args=[c1.id]), HTTP_HX_REQUEST="true", REMOTE_ADDR="10.0.0.7"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="pii" class="pii is-revealed">')
    assert "王小明" in html
    assert "13800000001" in html
    row = AuditLog.objects.get(action="pii.reveal")
    assert (row.tenant_id, row.actor_id, row.target_type, row.target_id, row.ip) == (
        world.tenant_a.id, world.users["store1"].id, "customer", str(c1.id), "10.0.0.7"
    )


def test_reveal_refuses_get_and_out_of_scope_without_auditing(client: Client, world: World) -> None:
    login(client, "store1")
    assert client.get(reverse("console:customer_reveal", args=[world.customers["c1"].id])).status_code == 405
    assert client.post(reverse("console:customer_reveal", args=[world.customers["c2"].id])).status_code == 404
    assert client.post(reverse("console:customer_reveal", args=[world.customers["b1"].id])).status_code == 404
    assert AuditLog.objects.filter(action="pii.reveal").count() == 0


# ----- export -------------------------------------------------------------------------------------------


@pytest.fixture
def immediate_jobs(settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.TASKS = IMMEDIATE_TASKS
    settings.MEDIA_ROOT = tmp_path / "media"


def test_export_runs_in_background_shows_progress_then_download(
    client: Client,
    world: World,
    immediate_jobs: None,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    login(client, "hq")
    skin = world.tags["护肤"].id
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(
            reverse("console:customer_export"), {"query": f"tag={skin}&stage=new&store=abc"}, HTTP_HX_REQUEST="true"
        )
        # Before the job runs the partial polls every second.
        assert 'hx-trigger="every 1s"' in started.content.decode()
    export = CustomerExport.objects.get()
    assert export.filters == {"tag_ids": [skin], "lifecycle_stage": "new"}  # invalid store dropped
    assert export.reveal is False

    done = client.get(reverse("console:customer_export_status", args=[export.id])).content.decode()
    assert 'data-export-status="done"' in done
    assert "导出完成：共 2 位客户。" in done
    assert "every 1s" not in done  # polling stops

    download = client.get(reverse("console:customer_export_file", args=[export.id]))
    rows = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode("utf-8-sig"))))
    assert rows[0][:3] == ["id", "name", "phone"]
    assert sorted(r[2] for r in rows[1:]) == ["138****0001", "138****0003"]
    audit = AuditLog.objects.get(action="pii.export")
    assert (audit.actor_id, audit.detail["rows"], audit.detail["revealed"]) == (world.users["hq"].id, 2, False)


def test_hq_export_with_personal_data_is_unmasked(
    client: Client,
    world: World,
    immediate_jobs: None,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    login(client, "hq")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("console:customer_export"), {"query": "q=13800000002", "reveal": "on"})
    export = CustomerExport.objects.get()
    download = client.get(reverse("console:customer_export_file", args=[export.id]))
    rows = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode("utf-8-sig"))))
    assert [r[1:3] for r in rows[1:]] == [["李华", "13800000002"]]
    assert AuditLog.objects.get(action="pii.export").detail["revealed"] is True


def test_only_hq_sees_and_may_use_include_personal_data(
    client: Client,
    world: World,
    immediate_jobs: None,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    login(client, "hq")
    assert 'name="reveal"' in client.get(reverse(LIST)).content.decode()
    login(client, "region1")
    assert 'name="reveal"' not in client.get(reverse(LIST)).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("console:customer_export"), {"query": "", "reveal": "on"})
    assert "only HQ admins may export unmasked personal data" in response.content.decode()
    assert CustomerExport.objects.count() == 0
    assert AuditLog.objects.filter(action="pii.export").count() == 0


def test_export_of_a_scoped_user_holds_only_their_customers(
    client: Client,
    world: World,
    immediate_jobs: None,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    login(client, "franchisee1")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("console:customer_export"), {"query": ""})
    export = CustomerExport.objects.get()
    assert export.total == 2
    other = Client()
    login(other, "store1")
    # Another user's export is not found, not merely forbidden.
    assert other.get(reverse("console:customer_export_status", args=[export.id])).status_code == 404
    assert other.get(reverse("console:customer_export_file", args=[export.id])).status_code == 404


def test_stage_labels_are_translated_on_the_list(client: Client, world: World) -> None:
    login(client, "hq")
    html = client.get(reverse(LIST)).content.decode()
    assert html.count('<span class="stage stage-new">新客</span>') == 5
