"""Public pages of the store-code context: the landing page shoppers reach by scanning a store code poster."""

from __future__ import annotations

from django.urls import path

from siyu.storecodes.views import landing

app_name = "storecodes"

urlpatterns = [
    path("<str:token>/", landing, name="landing"),
]
