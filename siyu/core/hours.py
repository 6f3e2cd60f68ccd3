"""Opening hours of a store (营业时间): a weekly schedule, per weekday a list of opening intervals.

Stored on `Store.hours` as `{"mon": [["10:00", "22:00"]], ..., "sun": []}`: all seven days once a schedule is
set (`[]` is a closed day), `{}` while none is. Times are wall-clock HH:MM in the brand's time zone. An interval
whose closing time is not after its opening time runs past midnight into the next day: "18:00"-"02:00" is open
until 2 a.m. the next morning, "10:00"-"00:00" until midnight, "00:00"-"00:00" the whole day (24 hours). Each
interval belongs to the day it opens on; intervals never overlap, across midnight and across Sunday night too.

People write hours as text (the CSV import, the console's form): `mon-fri 10:00-22:00; sat-sun 09:00-23:00`,
`daily 18:00-02:00`, `周一至周五 10:00-22:00；周六 休息`. `parse_hours` reads that, `format_hours` writes it back
(in English day names), so a schedule read from a file and written out again is the same text.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from siyu.core.errors import Conflict, ValidationFailed

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.date.weekday()
DAY = 24 * 60
WEEK = 7 * DAY
MAX_INTERVALS_PER_DAY = 4  # split shifts (午休) need two; more is a typo, not a shop
MAX_TEXT = 500

WeeklyHours = dict[str, list[list[str]]]

_TIME = re.compile(r"^([01]?[0-9]|2[0-4]):([0-5][0-9])$")
_DAY_NAMES = {
    **{d: i for i, d in enumerate(WEEKDAYS)},
    **{d: i for i, d in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))},
    "tues": 1,
    "weds": 2,
    "thur": 3,
    "thurs": 3,
    **{f"周{c}": i for i, c in enumerate("一二三四五六日")},
    **{f"星期{c}": i for i, c in enumerate("一二三四五六日")},
    "周天": 6,
    "星期天": 6,
}
_DAILY = {"daily", "everyday", "每天", "每日", "天天"}
_CLOSED = {"closed", "off", "休息", "休", "不营业", "店休", "闭店"}
_ALL_DAY = {"24h", "24小时", "全天"}
# Full-width and typographic punctuation as Chinese keyboards and spreadsheets type it.
_PUNCTUATION = str.maketrans(
    {
        "：": ":",
        "；": ";",
        "，": ",",
        "、": ",",
        "－": "-",
        "—": "-",
        "–": "-",
        "～": "-",
        "~": "-",
        "至": "-",
        "到": "-",
    }
)


@dataclass(frozen=True)
class Interval:
    """One opening interval: the day it opens on (0 = Monday), minutes after that day's 00:00, and its length."""

    weekday: int
    start: int  # 0..1439
    length: int  # 1..1440; start + length > DAY runs past midnight

    @property
    def opens(self) -> str:
        return _hhmm(self.start)

    @property
    def closes(self) -> str:
        return _hhmm((self.start + self.length) % DAY)

    @property
    def until(self) -> str:
        """The closing time as people write it: "24:00" for the midnight after the opening day, else `closes`."""
        return _hhmm_close(self.start, self.length)

    @property
    def all_day(self) -> bool:
        return self.start == 0 and self.length == DAY

    @property
    def past_midnight(self) -> bool:
        """Closes on the next day, strictly after its midnight (an interval closing at 24:00 does not)."""
        return self.start + self.length > DAY

    def __str__(self) -> str:
        return f"{WEEKDAYS[self.weekday]} {self.opens}-{self.until}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _hhmm_close(start: int, length: int) -> str:
    """The closing time as people write it: midnight after a day's opening is 24:00, not 00:00."""
    end = start + length
    return "24:00" if end == DAY else _hhmm(end % DAY)


def _minutes(text: str, *, field: str, context: str, closing: bool) -> int:
    match = _TIME.match(text.strip())
    if match is None or (int(match[1]) == 24 and (match[2] != "00" or not closing)):
        allowed = "00:00 to 24:00" if closing else "00:00 to 23:59"
        raise ValidationFailed(f"{field}: {context}: {text.strip()[:10]!r} is not a time ({allowed})", field=field)
    return int(match[1]) * 60 + int(match[2])


def _interval(weekday: int, opens: str, closes: str, *, field: str, context: str) -> Interval:
    start = _minutes(opens, field=field, context=context, closing=False)
    end = _minutes(closes, field=field, context=context, closing=True) % DAY
    length = (end - start) % DAY or DAY  # not after the opening time: the next day; the same time: 24 hours
    return Interval(weekday, start, length)


def _check(intervals: list[Interval], *, field: str) -> WeeklyHours:
    """The canonical schedule of `intervals`, refusing overlaps, crowded days and a week with no opening."""
    by_day: dict[int, list[Interval]] = {d: [] for d in range(7)}
    for interval in intervals:
        by_day[interval.weekday].append(interval)
    for day, items in by_day.items():
        if len(items) > MAX_INTERVALS_PER_DAY:
            raise ValidationFailed(
                f"{field}: at most {MAX_INTERVALS_PER_DAY} opening intervals a day ({WEEKDAYS[day]} has {len(items)})",
                field=field,
            )
    if not intervals:
        raise Conflict(
            f"{field}: every day is closed; mark the store temporarily closed instead, or clear the hours",
            field=field,
        )
    # Minutes of the week; a Sunday interval past midnight wraps onto Monday morning.
    spans = sorted(((i.weekday * DAY + i.start, i) for i in intervals), key=lambda span: span[0])
    following_spans = [*spans[1:], (spans[0][0] + WEEK, spans[0][1])]
    for (start, interval), (next_start, following) in zip(spans, following_spans, strict=True):
        if len(spans) > 1 and start + interval.length > next_start:
            raise Conflict(f"{field}: {interval} overlaps {following}", field=field)
    return {
        WEEKDAYS[d]: [[i.opens, i.closes] for i in sorted(items, key=lambda i: i.start)] for d, items in by_day.items()
    }


def clean_hours(value: Any, *, field: str = "hours") -> WeeklyHours:
    """A schedule given as data (`{"mon": [["10:00", "22:00"]], ...}`, the API's and the column's shape).

    Days left out are closed; None or `{}` is "not set". Malformed data is ValidationFailed (422); a schedule
    that breaks a rule (overlapping intervals, every day closed) is Conflict (409). Returns the canonical form.
    """
    if value is None or value == {}:
        return {}
    if not isinstance(value, dict):
        raise ValidationFailed(f"{field} must map weekdays ({', '.join(WEEKDAYS)}) to opening intervals", field=field)
    intervals = []
    for day, items in value.items():
        if day not in WEEKDAYS:
            raise ValidationFailed(f"{field}: unknown weekday {str(day)[:12]!r} ({', '.join(WEEKDAYS)})", field=field)
        if not isinstance(items, list | tuple):
            raise ValidationFailed(f"{field}.{day} must be a list of [opens, closes] pairs", field=field)
        for item in items:
            if not (isinstance(item, list | tuple) and len(item) == 2 and all(isinstance(t, str) for t in item)):
                raise ValidationFailed(f'{field}.{day}: each interval is a pair like ["10:00", "22:00"]', field=field)
            index = WEEKDAYS.index(day)
            intervals.append(_interval(index, item[0], item[1], field=field, context=f"{day} {item[0]}-{item[1]}"))
    return _check(intervals, field=field)


def _days(text: str, *, field: str, entry: str) -> list[int]:
    text = re.sub(r"\s*-\s*", "-", text.replace("every day", "daily")).strip()
    if not text:
        raise ValidationFailed(f"{field}: {entry!r}: name the days first, e.g. mon-fri 10:00-22:00", field=field)
    days: list[int] = []
    for token in filter(None, re.split(r"[,\s]+", text)):
        if token in _DAILY:
            days.extend(range(7))
            continue
        first, _, last = token.partition("-")
        try:
            a = _DAY_NAMES[first]
            b = _DAY_NAMES[last] if last else a
        except KeyError:
            raise ValidationFailed(
                f"{field}: {entry!r}: unknown day {token[:12]!r} (mon tue wed thu fri sat sun, or daily)", field=field
            ) from None
        days.extend((a + k) % 7 for k in range((b - a) % 7 + 1))  # fri-mon wraps over the weekend
    return days


_ENTRY = re.compile(r"^(?P<days>.*?)\s*(?P<spec>\d.*|" + "|".join(sorted(_CLOSED | _ALL_DAY, key=len)[::-1]) + r")$")


def parse_hours(text: str, *, field: str = "hours") -> WeeklyHours:
    """A schedule written as text: `mon-fri 10:00-22:00; sat-sun 09:00-23:00`; "" is "not set".

    Entries are separated by `;` or new lines; each names days (mon..sun, ranges like mon-fri or fri-sun,
    lists like sat,sun, `daily`; or 周一..周日) then `closed`, `24h`, or intervals `10:00-14:00, 17:00-22:00`.
    Days no entry names are closed; a day named twice is an error. Errors quote the entry they are about.
    """
    if not isinstance(text, str):
        raise ValidationFailed(f"{field} must be text like mon-fri 10:00-22:00", field=field)
    if len(text) > MAX_TEXT:
        raise ValidationFailed(f"{field} is longer than {MAX_TEXT} characters", field=field)
    normalized = text.translate(_PUNCTUATION).lower()
    intervals: list[Interval] = []
    seen: set[int] = set()
    for raw in re.split(r"[;\n]", normalized):
        entry = " ".join(raw.split())
        if not entry:
            continue
        match = _ENTRY.match(entry)
        if match is None:
            raise ValidationFailed(
                f"{field}: {entry!r}: expected days then hours, e.g. mon-fri 10:00-22:00", field=field
            )
        days = _days(match["days"], field=field, entry=entry)
        twice = sorted({d for d in days if d in seen or days.count(d) > 1})
        if twice:
            raise ValidationFailed(f"{field}: {WEEKDAYS[twice[0]]} is given twice", field=field)
        seen.update(days)
        spec = match["spec"].replace(" ", "")
        if spec in _CLOSED:
            continue
        pairs = [("00:00", "24:00")] if spec in _ALL_DAY else []
        for part in [] if pairs else spec.split(","):
            opens, sep, closes = part.partition("-")
            if not sep or not opens or not closes:
                raise ValidationFailed(
                    f"{field}: {entry!r}: {part[:20]!r} is not an interval like 10:00-22:00", field=field
                )
            pairs.append((opens, closes))
        intervals.extend(_interval(d, o, c, field=field, context=repr(entry)) for d in days for o, c in pairs)
    if not seen:
        return {}
    return _check(intervals, field=field)


def clean_hours_input(value: Any, *, field: str = "hours") -> WeeklyHours:
    """Text (`parse_hours`) or data (`clean_hours`), whichever the caller has; None and "" are "not set"."""
    return parse_hours(value, field=field) if isinstance(value, str) else clean_hours(value, field=field)


def intervals_of(hours: WeeklyHours) -> list[Interval]:
    """The schedule's intervals, Monday first (a stored schedule is canonical: no checks again)."""
    out = []
    for weekday, day in enumerate(WEEKDAYS):
        for opens, closes in hours.get(day, ()):
            start = int(opens[:2]) * 60 + int(opens[3:])
            end = int(closes[:2]) * 60 + int(closes[3:])
            out.append(Interval(weekday, start, (end - start) % DAY or DAY))
    return out


def day_intervals(hours: WeeklyHours, weekday: int) -> list[Interval]:
    return [i for i in intervals_of(hours) if i.weekday == weekday]


def week_spans(hours: WeeklyHours) -> tuple[tuple[int, int], ...]:
    """The schedule as (start, end) minutes of the week from Monday 00:00; a Sunday interval past midnight ends
    after WEEK. For callers testing one schedule many times (`spans_open`)."""
    return tuple((i.weekday * DAY + i.start, i.weekday * DAY + i.start + i.length) for i in intervals_of(hours))


def spans_open(spans: tuple[tuple[int, int], ...], weekday: int, minute: int) -> bool:
    now = weekday * DAY + minute
    # The Sunday-night interval reaches into next week's Monday: compare a week later too.
    return any(start <= now < end or start <= now + WEEK < end for start, end in spans)


def is_open(hours: WeeklyHours, weekday: int, minute: int) -> bool:
    """Whether the schedule is open at `minute` (0..1439) of `weekday` (0 = Monday), both wall-clock.

    No schedule counts as open: the brand has not said otherwise, and a guide's WeCom code works at any hour.
    Open from the opening minute, closed from the closing minute; yesterday's interval past midnight counts.
    """
    return not hours or spans_open(week_spans(hours), weekday, minute)


@dataclass(frozen=True)
class DayGroup:
    """Consecutive weekdays with the same intervals, for writing a schedule compactly."""

    first: int
    last: int
    intervals: tuple[tuple[str, str], ...]  # (opens, closes as written: "24:00" for midnight)


def day_groups(hours: WeeklyHours) -> list[DayGroup]:
    """Monday to Sunday, runs of days with equal hours merged (closed days form runs too)."""
    groups: list[DayGroup] = []
    for weekday in range(7):
        spans = tuple((i.opens, i.until) for i in day_intervals(hours, weekday))
        if groups and groups[-1].intervals == spans and groups[-1].last == weekday - 1:
            groups[-1] = DayGroup(groups[-1].first, weekday, spans)
        else:
            groups.append(DayGroup(weekday, weekday, spans))
    return groups


def format_hours(hours: WeeklyHours) -> str:
    """The schedule as `parse_hours` reads it ("" when not set): `mon-fri 10:00-22:00; sat-sun closed`."""
    if not hours:
        return ""
    parts = []
    for group in day_groups(hours):
        days = WEEKDAYS[group.first] if group.first == group.last else f"{WEEKDAYS[group.first]}-{WEEKDAYS[group.last]}"
        if (group.first, group.last) == (0, 6):
            days = "daily"
        spec = ", ".join(f"{o}-{c}" for o, c in group.intervals) or "closed"
        parts.append(f"{days} {spec}")
    return "; ".join(parts)


def daily_hours(opens: str | dt.time, closes: str | dt.time) -> WeeklyHours:
    """The same interval every day (what a single opens/closes pair meant before per-weekday hours)."""
    pair = [t if isinstance(t, str) else t.strftime("%H:%M") for t in (opens, closes)]
    return clean_hours({day: [list(pair)] for day in WEEKDAYS})
