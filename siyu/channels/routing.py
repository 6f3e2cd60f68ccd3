"""Which guide a live code's next scan reaches (the guide strategies), and when that may change by itself.

WeCom decides which member of a contact way a scan reaches, so siyu implements a strategy by listing exactly
one member on the way — the guide the strategy picks next — and updating the way (update_contact_way) when the
pick changes: after each add, when a guide reaches their daily cap, when a schedule window opens or closes, at
midnight (caps start again). Scans between an add and the update reach the previous pick, so a burst can pass a
cap by the few adds that arrive during one update (documented in docs/design.md).

- round robin: eligible guides in their order, one after the other (the code counts its adds);
- least loaded: the eligible guide with the fewest adds through this code today, then the fewest active
  customers overall, then the order;
- schedule: guides whose windows (weekday + hours, brand time zone) contain now, in rotation; a guide without
  windows is always on duty;
- daily cap (any strategy): a guide with that many adds through this code today is skipped;
- fallback: none eligible → the code's fallback guide, else the brand IP account (官方IP); with neither the way
  keeps its current member (WeCom refuses an empty member list).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Count
from django.utils import timezone

from siyu.channels.models import LiveCode, LiveCodeGuide
from siyu.core.models import Guide
from siyu.customers.models import FollowRelation

WEEKDAYS = range(7)  # Monday = 0, as Python's weekday()


@dataclass(frozen=True)
class Window:
    days: tuple[int, ...]
    start: dt.time
    end: dt.time  # exclusive; "24:00" is stored as time.max

    def contains(self, at: dt.datetime) -> bool:
        """On one of the days, between start and end; an end at or before the start runs past midnight (the
        hours after midnight count on the day they fall on, if it is one of the days)."""
        if at.weekday() not in self.days:
            return False
        if self.start < self.end:
            return self.start <= at.time() < self.end
        return at.time() >= self.start or at.time() < self.end


def parse_time(value: str) -> dt.time:
    """ "HH:MM" (00:00..24:00); raises ValueError otherwise."""
    if value == "24:00":
        return dt.time.max
    hours, _, minutes = value.partition(":")
    if len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError(value)
    return dt.time(int(hours), int(minutes))


def windows_of(schedule: Sequence[dict[str, Any]]) -> list[Window]:
    return [Window(tuple(w["days"]), parse_time(w["start"]), parse_time(w["end"])) for w in schedule]


def local_now(now: dt.datetime | None = None) -> dt.datetime:
    return timezone.localtime(now or timezone.now())


def day_start(at: dt.datetime) -> dt.datetime:
    local = timezone.localtime(at)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Pick:
    """The strategy's answer: the guide to list on the way, and why (for the console and the audit)."""

    guide: Guide | None
    reason: str  # "strategy", "fallback", "brand_ip", "none"
    eligible: tuple[int, ...]  # guide ids eligible now


def adds_today(code: LiveCode, now: dt.datetime) -> dict[int, int]:
    """Adds through the code today (brand time zone) per guide: follow relations with the code's state."""
    rows = (
        FollowRelation.objects.filter(tenant_id=code.tenant_id, state=code.state, added_at__gte=day_start(now))
        .values("guide_id")
        .annotate(n=Count("id"))
    )
    return {r["guide_id"]: r["n"] for r in rows}


def _active_followers(tenant_id: int, guide_ids: Sequence[int]) -> dict[int, int]:
    rows = (
        FollowRelation.objects.filter(
            tenant_id=tenant_id, guide_id__in=list(guide_ids), status=FollowRelation.Status.ACTIVE
        )
        .values("guide_id")
        .annotate(n=Count("id"))
    )
    return {r["guide_id"]: r["n"] for r in rows}


def brand_ip(tenant_id: int) -> Guide | None:
    return (
        Guide.objects.filter(tenant_id=tenant_id, kind=Guide.Kind.BRAND_IP, status=Guide.Status.ACTIVE)
        .order_by("id")
        .first()
    )


def eligible_guides(code: LiveCode, members: Sequence[LiveCodeGuide], now: dt.datetime) -> list[LiveCodeGuide]:
    """The code's guides that may take the next add: active in WeCom, under their cap, on duty (schedule)."""
    local = local_now(now)
    counts = adds_today(code, now) if any(m.daily_cap is not None for m in members) else {}
    eligible = []
    for member in members:
        if member.guide.status != Guide.Status.ACTIVE:
            continue
        if member.daily_cap is not None and counts.get(member.guide_id, 0) >= member.daily_cap:
            continue
        scheduled = code.strategy == LiveCode.Strategy.SCHEDULE and member.schedule
        if scheduled and not any(w.contains(local) for w in windows_of(member.schedule)):
            continue
        eligible.append(member)
    return eligible


def pick(code: LiveCode, now: dt.datetime | None = None) -> Pick:
    """The guide the code's next scan should reach (see the module docstring)."""
    now = now or timezone.now()
    members = list(LiveCodeGuide.objects.filter(live_code=code).select_related("guide").order_by("position", "id"))
    eligible = eligible_guides(code, members, now)
    ids = tuple(m.guide_id for m in eligible)
    if code.status == LiveCode.Status.ACTIVE and eligible:
        if code.strategy == LiveCode.Strategy.LEAST_LOADED:
            today = adds_today(code, now)
            followers = _active_followers(code.tenant_id, ids)
            chosen = min(
                eligible, key=lambda m: (today.get(m.guide_id, 0), followers.get(m.guide_id, 0), m.position, m.id)
            )
        else:
            chosen = eligible[code.rotation % len(eligible)]
        return Pick(chosen.guide, "strategy", ids)
    # Paused (the printed QR still works: its adds go to the fallback) or nobody eligible.
    if code.fallback_guide_id and code.fallback_guide and code.fallback_guide.status == Guide.Status.ACTIVE:
        return Pick(code.fallback_guide, "fallback", ids)
    ip = brand_ip(code.tenant_id)
    if ip is not None:
        return Pick(ip, "brand_ip", ids)
    return Pick(None, "none", ids)


def next_change(code: LiveCode, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the pick may change without an add: the next schedule boundary, or midnight for capped codes."""
    if code.status == LiveCode.Status.DELETED:
        return None
    local = local_now(now)
    members = list(LiveCodeGuide.objects.filter(live_code=code))
    candidates: list[dt.datetime] = []
    if any(m.daily_cap is not None for m in members):
        candidates.append(day_start(local) + dt.timedelta(days=1))
    if code.strategy == LiveCode.Strategy.SCHEDULE:
        for member in members:
            for window in windows_of(member.schedule):
                for offset in range(8):
                    day = (local + dt.timedelta(days=offset)).date()
                    if day.weekday() not in window.days:
                        continue
                    for boundary in (window.start, window.end):
                        if boundary == dt.time.max:
                            at = timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min))
                        else:
                            at = timezone.make_aware(dt.datetime.combine(day, boundary))
                        if at > local:
                            candidates.append(at)
    return min(candidates) if candidates else None
