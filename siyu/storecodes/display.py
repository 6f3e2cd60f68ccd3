"""Opening hours as pages show them, in the reader's language: "周一至周五 10:00–22:00；周六 休息".

The landing page and the console both use these; the text people type (and the CSV holds) is
`siyu.core.hours.format_hours`, always with English day names, so a file reads the same in every language.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from siyu.core.hours import DayGroup, WeeklyHours, day_groups, day_intervals

DAY_NAMES = (
    gettext_lazy("Mon"),
    gettext_lazy("Tue"),
    gettext_lazy("Wed"),
    gettext_lazy("Thu"),
    gettext_lazy("Fri"),
    gettext_lazy("Sat"),
    gettext_lazy("Sun"),
)


def interval_label(opens: str, closes: str) -> str:
    """ "10:00–22:00", "18:00–02:00 (next day)", "Open 24 hours"; `closes` as written ("24:00" for midnight)."""
    if (opens, closes) == ("00:00", "24:00"):
        return _("Open 24 hours")
    if closes <= opens:
        return _("%(start)s–%(end)s (next day)") % {"start": opens, "end": closes}
    return f"{opens}–{closes}"


def _intervals(group: DayGroup) -> str:
    return ", ".join(interval_label(o, c) for o, c in group.intervals) or _("closed")


def _days(group: DayGroup) -> str:
    if (group.first, group.last) == (0, 6):
        return _("Daily")
    if group.first == group.last:
        return str(DAY_NAMES[group.first])
    return _("%(first)s–%(last)s") % {"first": DAY_NAMES[group.first], "last": DAY_NAMES[group.last]}


def week_summary(hours: WeeklyHours) -> str:
    """The whole week on one line, equal days merged; "" when no hours are set."""
    if not hours:
        return ""
    return _("; ").join(f"{_days(g)} {_intervals(g)}" for g in day_groups(hours))


@dataclass(frozen=True)
class DayRow:
    day: str
    hours: str
    today: bool


def week_rows(hours: WeeklyHours, *, today: int | None = None) -> list[DayRow]:
    """One row per weekday, Monday first (empty when no hours are set)."""
    if not hours:
        return []
    rows = []
    for weekday in range(7):
        spans = day_intervals(hours, weekday)
        text = ", ".join(interval_label(i.opens, i.until) for i in spans) or _("closed")
        rows.append(DayRow(str(DAY_NAMES[weekday]), text, weekday == today))
    return rows


def today_label(hours: WeeklyHours, weekday: int, *, temporarily_closed: bool = False) -> str:
    """What the landing card says about today: its intervals, "Closed today", or why there is nothing to say."""
    if temporarily_closed:
        return _("Temporarily closed")
    if not hours:
        return _("Hours not set")
    spans = day_intervals(hours, weekday)
    if not spans:
        return _("Closed today")
    return ", ".join(interval_label(i.opens, i.until) for i in spans)
