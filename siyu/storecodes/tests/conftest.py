"""Fixtures of the store-code tests: a bare brand with one region, and a helper to place stores on the map."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from siyu.api.tests.conftest import tokens  # noqa: F401 - the API tests' per-persona tokens fixture
from siyu.core import services as core_services
from siyu.core.hours import daily_hours
from siyu.core.models import Region, Store, Tenant

AddStore = Callable[..., Store]


@pytest.fixture
def brand(db: None) -> tuple[Tenant, Region]:
    tenant = core_services.tenant_create(name="测试品牌", slug="geo-brand")
    return tenant, core_services.region_create(tenant=tenant, name="全国", code="R")


@pytest.fixture
def add_store(brand: tuple[Tenant, Region]) -> AddStore:
    tenant, region = brand
    counter = iter(range(1, 1_000_000))

    def add(
        lat: float | str | None,
        lng: float | str | None,
        *,
        code: str | None = None,
        hours: tuple[str, str] | str | None = None,
        closed: bool = False,
        city: str = "杭州",
        tenant_region: tuple[Tenant, Region] | None = None,
    ) -> Store:
        """A store at (lat, lng); `hours` a daily (opens, closes) pair or a weekly schedule as text."""
        t, r = tenant_region or (tenant, region)
        n = next(counter)
        return core_services.store_create(
            tenant=t,
            region=r,
            name=f"门店{code or n}",
            code=code or f"T{n:04d}",
            city=city,
            latitude=None if lat is None else Decimal(str(lat)),
            longitude=None if lng is None else Decimal(str(lng)),
            hours=daily_hours(*(h[:5] for h in hours)) if isinstance(hours, tuple) else hours,
            temporarily_closed=closed,
        )

    return add


GiveCodes = Callable[..., None]


@pytest.fixture
def give_codes(db: None) -> GiveCodes:
    """Give a store a store-purpose channel live code and/or a group code, as their contexts store them once
    WeCom has created the contact way / join way (rows written directly: no WeCom call is under test here)."""
    import secrets

    from django.utils import timezone

    from siyu.channels.models import LiveCode
    from siyu.groups.models import GroupCode

    def give(store: Store, *, guide: bool = True, group: bool = True, status: str = "active") -> None:
        now = timezone.now()
        if guide:
            LiveCode.objects.create(
                tenant_id=store.tenant_id,
                name=f"{store.name}导购码",
                purpose=LiveCode.Purpose.STORE,
                store=store,
                state=f"st{store.id}",
                status=status,
                config_id=f"cfg-{store.id}",
                qr_code=f"https://wework.example/qr/{store.id}",
                qr_token=secrets.token_urlsafe(24),
            )
        if group:
            GroupCode.objects.create(
                tenant_id=store.tenant_id,
                name=f"{store.name}福利群",
                store=store,
                state=f"gc{store.id}",
                status=status,
                qr_code=f"https://wework.example/join/{store.id}",
                public_token=secrets.token_urlsafe(16)[:22],
                created_at=now,
                updated_at=now,
            )

    return give


def brand_ip_code(tenant: Tenant, name: str = "好物体验官") -> int:
    """An active channel live code of the brand (the fallback the settings name); returns its id."""
    import secrets

    from siyu.channels.models import LiveCode

    return LiveCode.objects.create(
        tenant=tenant,
        name=name,
        purpose=LiveCode.Purpose.CHANNEL,
        state=f"ip{secrets.token_hex(4)}",
        config_id=f"cfg-ip-{secrets.token_hex(4)}",
        qr_code="https://wework.example/qr/ip",
        qr_token=secrets.token_urlsafe(24),
    ).id
