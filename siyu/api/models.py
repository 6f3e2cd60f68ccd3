"""Per-brand API tokens: each acts as one member of the brand, with that member's role and data scope."""

from __future__ import annotations

from django.db import models

from siyu.core.models import Membership, TenantOwned


class APIToken(TenantOwned):
    """A bearer token for the REST API (API 令牌).

    Only the SHA-256 of the secret is stored: the secret has 256 random bits, so a fast hash is enough and
    lets authentication be one indexed lookup. `prefix` (the secret's first 8 characters) lets people tell
    tokens apart in lists without revealing them.
    """

    membership = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="api_token_tenant_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
