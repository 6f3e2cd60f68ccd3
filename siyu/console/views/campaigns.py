"""Console pages (to be filled in by the acquisition work of issue 5)."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
