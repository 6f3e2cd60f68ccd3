"""Bookkeeping of the demo loader: which brand was loaded with which parameters, and which phases are done.

Each phase commits its rows and flips its `done` flag in one transaction, so after a crash the flags say
exactly which phases still need running, and a phase never leaves half its rows behind.
"""

from __future__ import annotations

from django.db import models

from siyu.core.models import Tenant


class DemoLoad(models.Model):
    """One demo brand load: the parameters every phase regenerates its data from."""

    slug = models.SlugField(max_length=50, unique=True)
    seed = models.IntegerField()
    customers = models.PositiveIntegerField()
    # Local midnight of the first run's day: the end of the ~365-day window all timestamps fall in. Stored so
    # that a resumed load, even on a later day, generates the same timestamps as the phases already written.
    anchor = models.DateTimeField()
    # Deleting the demo brand deletes its bookkeeping too, so the next `siyu demo` starts over cleanly.
    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When `siyu demo` last ran for the brand (a load, a resumed one, or a run that found it loaded), and when the
    # WeCom emulator was last handed the brand's corp: an emulator holding a corp from before the last run (or from
    # before siyu recorded this) gets it afresh, so its ways match the codes siyu stores (see siyu.demo.wecom).
    reloaded_at = models.DateTimeField(null=True, blank=True)
    emulator_corp_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"demo {self.slug} (seed {self.seed}, {self.customers} customers)"


class DemoLoadState(models.Model):
    """One phase of a load (brand, customers, orders, ...) and whether it has been committed."""

    load = models.ForeignKey(DemoLoad, on_delete=models.CASCADE, related_name="states")
    phase = models.CharField(max_length=32)
    position = models.PositiveSmallIntegerField()
    done = models.BooleanField(default=False)
    rows = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0.0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["load", "phase"], name="demo_load_phase_unique")]
        ordering = ["load", "position"]

    def __str__(self) -> str:
        return f"{self.phase}: {'done' if self.done else 'pending'}"
