"""Store codes (门店活码): the brand's settings of the LBS store locator.

Stores' coordinates and opening hours live on `core.Store` (the org tree owns stores); this context owns how
shoppers are routed to them: the search radius, the time zone the hours are read in, the brand IP's fallback
code, and the unguessable token of the public landing page.
"""

from __future__ import annotations

from django.db import models

from siyu.core.models import TenantOwned

DEFAULT_RADIUS_M = 5_000
MAX_RADIUS_M = 50_000  # beyond a city's reach "the nearest store" is no longer a store a shopper walks into


class StoreCodeSettings(TenantOwned):
    """One brand's store-locator settings (门店活码设置); created on first use with the defaults."""

    radius_m = models.PositiveIntegerField(default=DEFAULT_RADIUS_M)
    # Empty: the server's TIME_ZONE. Opening hours are wall-clock times of the brand's stores.
    time_zone = models.CharField(max_length=64, blank=True, default="")
    # A channel live code (channels.LiveCode, usually the brand IP's) shown when no open store is near. An id,
    # not a foreign key: the code belongs to the channels context, which validates it when the setting is saved
    # and may delete it later (the landing page then shows no code rather than failing).
    fallback_live_code_id = models.BigIntegerField(null=True, blank=True)
    # /s/<public_token>/ — the landing page printed on posters; unguessable so brands cannot be enumerated.
    public_token = models.CharField(max_length=32, unique=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="storecode_settings_tenant_unique")]

    def __str__(self) -> str:
        return f"store codes of tenant {self.tenant_id}"
