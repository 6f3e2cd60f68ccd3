"""Fixtures of the inheritance tests: a brand synced from a seeded emulator corp served over HTTP.

The emulator's clock is moved forward (POST /emulator/clock) instead of waiting out the 24-hour window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.core.cache import cache

from siyu.console.tests.conftest import _compiled_locale  # noqa: F401 - autouse: pages are read in Chinese
from siyu.core.models import Guide
from siyu.core.scopes import Actor
from siyu.customers.models import Customer, FollowRelation, Identity
from siyu.wecom.sync import SyncOptions, sync_run
from siyu.wecom.tests.emulated import Brand, connect_brand, emulator_serving

DAY = 86_400


@dataclass
class Synced:
    """A brand connected to an emulator corp, with members, contacts and groups synced into siyu."""

    brand: Brand

    @property
    def actor(self) -> Actor:
        return self.brand.actor

    def guide(self, userid: str) -> Guide:
        return Guide.objects.get(tenant=self.brand.tenant, wecom_userid=userid)

    def customer(self, external_userid: str) -> Customer:
        return Customer.objects.get(
            tenant=self.brand.tenant,
            identities__kind=Identity.Kind.WECOM_EXTERNAL_USERID,
            identities__value=external_userid,
        )

    def advance(self, seconds: float) -> None:
        """Move WeCom's clock (the emulator settles transfers that came due on the next request)."""
        self.brand.admin("clock", {"advance": seconds})

    def sync(self, *phases: str) -> None:
        options = SyncOptions(client_factory=self.brand.client, phases=list(phases))
        sync_run(tenant_id=self.brand.tenant.id, options=options)

    def pair(self, n: int, *, exclude: tuple[str, ...] = ()) -> tuple[str, str, list[str]]:
        """A handover guide, a takeover guide, and n customers of the handover the takeover does not have."""
        with self.brand.server.emulator.lock:
            corp = self.brand.corp
            guides = sorted(u for u in corp.members if u.startswith("guide") and u not in exclude)
            for handover in guides:
                for takeover in guides:
                    own = [c for c in corp.customers_of(handover) if takeover not in corp.contacts[c].follows]
                    if takeover != handover and len(own) >= n:
                        return handover, takeover, own[:n]
        raise AssertionError("no suitable pair of guides")

    def follows(self, external_userid: str) -> set[str]:
        """The guides siyu has actively following the customer."""
        return set(
            FollowRelation.objects.filter(
                tenant=self.brand.tenant, external_userid=external_userid, status=FollowRelation.Status.ACTIVE
            ).values_list("guide__wecom_userid", flat=True)
        )

    def wecom_follows(self, external_userid: str) -> set[str]:
        """The members WeCom (the emulator) has following the customer."""
        with self.brand.server.emulator.lock:
            contact = self.brand.corp.contacts[external_userid]
            return {u for u, f in contact.follows.items() if not f.customer_deleted}


@pytest.fixture
def synced(db: None) -> Iterator[Synced]:
    cache.clear()
    with emulator_serving() as server:
        brand = connect_brand(server, slug="inherit")
        synced = Synced(brand)
        synced.sync("members", "contacts", "groups")
        yield synced
    cache.clear()
