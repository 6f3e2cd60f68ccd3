"""API router (to be filled in by the acquisition work of issue 5)."""

from __future__ import annotations

from ninja import Router

router = Router(tags=["campaigns"])
