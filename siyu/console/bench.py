"""`siyu bench console`: how fast the customer list answers over the loaded brand, per role and query.

Requests go through Django's full stack (middleware, session, template) in-process, so the figures are server
time per page without network. Run `siyu demo` first.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from django.conf import settings
from django.test import Client
from django.urls import reverse
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from siyu.core import pii
from siyu.core.models import Membership, Role, Tenant
from siyu.core.stack import percentile
from siyu.customers.models import Customer
from siyu.tags.models import Tag


def run(options: dict[str, Any], console: Console) -> None:
    tenant = Tenant.objects.filter(slug=options["tenant"]).first()
    if tenant is None:
        raise LookupError(f"no brand with slug {options['tenant']!r}: run `siyu demo` first")
    customers = Customer.objects.filter(tenant=tenant)
    total = customers.count()
    sample = customers.exclude(phone_enc="").order_by("id")[total // 2]
    phone = pii.decrypt(sample.phone_enc, field="phone")
    name = pii.decrypt(sample.name_enc, field="name")
    tag = Tag.objects.filter(tenant=tenant).order_by("id").first()
    url = reverse("console:customer_list")
    cases: list[tuple[str, str]] = [
        ("first page", url),
        ("page 50", f"{url}?page=50"),
        ("last page", f"{url}?page={max(1, total // settings.SIYU_PAGE_SIZE)}"),
        ("phone search", f"{url}?q={phone}"),
        ("name search", f"{url}?q={name[1:]}"),
        ("stage filter", f"{url}?stage=repeat"),
    ]
    if tag is not None:
        cases.append(("tag filter", f"{url}?tag={tag.id}"))
    roles = [Role.HQ_ADMIN, Role.REGION_MANAGER, Role.STORE_MANAGER, Role.GUIDE]
    memberships = [m for r in roles if (m := Membership.objects.filter(tenant=tenant, role=r).first())]
    table = Table(title=f"customer list over {total:,} customers (ms per page, {options['repeat']} runs)")
    for column in ("role", "case", "p50", "p95", "max"):
        table.add_column(column, justify="right" if column in {"p50", "p95", "max"} else "left")
    with Progress(console=console, transient=True) as progress:
        job = progress.add_task("measuring", total=len(memberships) * len(cases))
        for membership in memberships:
            client = Client()
            client.force_login(membership.user)
            for label, path in cases:
                client.get(path)  # warm caches the way a second visit would
                timings = []
                for _ in range(options["repeat"]):
                    start = time.perf_counter()
                    response = client.get(path)
                    timings.append((time.perf_counter() - start) * 1000)
                    if response.status_code != 200:
                        raise LookupError(f"{path} answered {response.status_code}")
                table.add_row(
                    membership.role,
                    label,
                    f"{statistics.median(timings):.1f}",
                    f"{percentile(sorted(timings), 0.95):.1f}",
                    f"{max(timings):.1f}",
                )
                progress.advance(job)
    console.print(table)
