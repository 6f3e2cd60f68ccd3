"""Weekly opening hours (siyu.core.hours): the text people write, the data the API sends, and when a store is open.

Also the migration that turned each store's single opens/closes pair into a weekly schedule (core 0003/0004).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from hypothesis import given
from hypothesis import strategies as st

from siyu.core.errors import Conflict, ValidationFailed
from siyu.core.hours import (
    DAY,
    WEEKDAYS,
    clean_hours,
    daily_hours,
    format_hours,
    is_open,
    parse_hours,
)

EVERY_DAY = {day: [["10:00", "22:00"]] for day in WEEKDAYS}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mon-fri 10:00-22:00; sat-sun 09:00-23:00", "mon-fri 10:00-22:00; sat-sun 09:00-23:00"),
        ("daily 10:00-22:00", "daily 10:00-22:00"),
        ("MON-SUN 10:00 - 22:00", "daily 10:00-22:00"),
        ("every day 24h", "daily 00:00-24:00"),
        ("sat,sun 9:30-21:00", "mon-fri closed; sat-sun 09:30-21:00"),
        ("fri-mon 18:00-02:00", "mon 18:00-02:00; tue-thu closed; fri-sun 18:00-02:00"),
        ("mon closed; tue-sun 10:00-14:00, 17:00-22:00", "mon closed; tue-sun 10:00-14:00, 17:00-22:00"),
        ("周一至周五 10:00-22:00；周六 10:00-24:00；周日 休息", "mon-fri 10:00-22:00; sat 10:00-24:00; sun closed"),
        ("星期一~星期日 08:00–20:00", "daily 08:00-20:00"),
        ("mon-fri 10:00-22:00\nsat 全天", "mon-fri 10:00-22:00; sat 00:00-24:00; sun closed"),
        ("daily 10:00-10:00", "daily 10:00-10:00"),  # 24 hours from 10:00 every day
    ],
)
def test_text_is_read_and_written_back_canonically(text: str, expected: str) -> None:
    hours = parse_hours(text)
    assert format_hours(hours) == expected
    assert parse_hours(expected) == hours
    assert set(hours) == set(WEEKDAYS)


def test_empty_text_and_empty_data_mean_not_set() -> None:
    assert parse_hours("") == parse_hours(" ; \n") == clean_hours(None) == clean_hours({}) == {}
    assert format_hours({}) == ""
    assert is_open({}, 0, 3 * 60)  # no hours: open (the brand has not said otherwise)


def test_midnight_is_kept_as_00_00_and_written_as_24_00() -> None:
    hours = parse_hours("daily 10:00-24:00")
    assert hours["mon"] == [["10:00", "00:00"]]
    assert parse_hours("daily 10:00-00:00") == hours
    assert format_hours(hours) == "daily 10:00-24:00"


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("10:00-22:00", ValidationFailed, "hours: '10:00-22:00': name the days first, e.g. mon-fri 10:00-22:00"),
        ("weekdays 10:00-22:00", ValidationFailed, "unknown day 'weekdays' (mon tue wed thu fri sat sun, or daily)"),
        ("mon 10:00-25:00", ValidationFailed, "hours: 'mon 10:00-25:00': '25:00' is not a time (00:00 to 24:00)"),
        ("mon 24:00-02:00", ValidationFailed, "'24:00' is not a time (00:00 to 23:59)"),
        ("mon 10-22", ValidationFailed, "'10' is not a time (00:00 to 23:59)"),
        ("mon 10:00", ValidationFailed, "hours: 'mon 10:00': '10:00' is not an interval like 10:00-22:00"),
        ("mon lunch", ValidationFailed, "hours: 'mon lunch': expected days then hours, e.g. mon-fri 10:00-22:00"),
        ("mon-fri 10:00-22:00; fri 11:00-12:00", ValidationFailed, "hours: fri is given twice"),
        ("mon 10:00-22:00, 21:00-23:00", Conflict, "hours: mon 10:00-22:00 overlaps mon 21:00-23:00"),
        ("fri 20:00-04:00; sat 03:00-09:00", Conflict, "hours: fri 20:00-04:00 overlaps sat 03:00-09:00"),
        ("sun 20:00-04:00; mon 03:00-09:00", Conflict, "hours: sun 20:00-04:00 overlaps mon 03:00-09:00"),
        ("daily closed", Conflict, "hours: every day is closed; mark the store temporarily closed instead"),
        ("mon 01:00-02:00, 03:00-04:00, 05:00-06:00, 07:00-08:00, 09:00-10:00", ValidationFailed, "at most 4"),
        ("x" * 501, ValidationFailed, "hours is longer than 500 characters"),
    ],
)
def test_bad_text_is_refused_naming_the_entry(text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as raised:
        parse_hours(text)
    assert message in raised.value.message  # type: ignore[attr-defined]
    assert raised.value.field == "hours"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("mon 10:00-22:00", "hours must map weekdays"),
        ({"monday": [["10:00", "22:00"]]}, "hours: unknown weekday 'monday'"),
        ({"mon": "10:00-22:00"}, "hours.mon must be a list of [opens, closes] pairs"),
        ({"mon": [["10:00"]]}, "hours.mon: each interval is a pair"),
        ({"mon": [[10, 22]]}, "hours.mon: each interval is a pair"),
    ],
)
def test_bad_data_is_refused(value: Any, message: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        clean_hours(value)
    assert raised.value.message.startswith(message)
    assert raised.value.field == "hours"


def test_data_leaves_out_closed_days_and_comes_back_complete() -> None:
    assert clean_hours({"sat": [("09:00", "23:00")]}) == {
        **{day: [] for day in WEEKDAYS[:5]},
        "sat": [["09:00", "23:00"]],
        "sun": [],
    }
    assert clean_hours(EVERY_DAY) == daily_hours("10:00", "22:00") == parse_hours("daily 10:00-22:00")
    assert daily_hours(dt.time(18), dt.time(2)) == parse_hours("daily 18:00-02:00")


def test_open_from_the_opening_minute_until_the_closing_minute() -> None:
    hours = parse_hours("mon-fri 10:00-22:00; sat 18:00-02:00")
    assert [is_open(hours, 0, m) for m in (599, 600, 1319, 1320)] == [False, True, True, False]
    assert is_open(hours, 5, 23 * 60)  # Saturday night
    assert is_open(hours, 6, 60)  # Sunday 01:00: Saturday's hours
    assert not is_open(hours, 6, 120)  # Sunday 02:00: closed
    assert not is_open(hours, 5, 60)  # Saturday 01:00: Friday closed at 22:00


def test_sunday_night_reaches_monday_morning() -> None:
    hours = parse_hours("sun 22:00-03:00")
    assert is_open(hours, 0, 2 * 60 + 59)
    assert not is_open(hours, 0, 3 * 60)
    assert is_open(hours, 6, 22 * 60)


# --- properties ---------------------------------------------------------------------------------------------

_minute = st.integers(0, DAY - 1)


@st.composite
def schedules(draw: st.DrawFn) -> dict[str, list[list[str]]]:
    """Random schedules that pass the checks: disjoint intervals of the week, at most one per day."""
    days = draw(st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True).map(sorted))
    out: dict[str, list[list[str]]] = {}
    for index, day in enumerate(days):
        gap = ((days[(index + 1) % len(days)] - day) % 7 or 7) * DAY  # minutes until the next day's opening
        start = draw(st.integers(0, DAY - 1))
        length = draw(st.integers(1, min(DAY, gap)))
        end = (start + length) % DAY
        out[WEEKDAYS[day]] = [[f"{start // 60:02d}:{start % 60:02d}", f"{end // 60:02d}:{end % 60:02d}"]]
    return out


@given(schedule=schedules())
def test_format_then_parse_gives_back_the_schedule(schedule: dict[str, list[list[str]]]) -> None:
    try:
        hours = clean_hours(schedule)
    except Conflict:
        return  # a generated interval reached past the next opening day's start: not a valid schedule
    assert parse_hours(format_hours(hours)) == hours


@given(
    opens=_minute,
    length=st.integers(1, DAY),
    day=st.integers(0, 6),
    at_day=st.integers(0, 6),
    at=_minute,
)
def test_one_interval_is_open_exactly_inside_it(opens: int, length: int, day: int, at_day: int, at: int) -> None:
    end = (opens + length) % DAY
    hours = clean_hours({WEEKDAYS[day]: [[f"{opens // 60:02d}:{opens % 60:02d}", f"{end // 60:02d}:{end % 60:02d}"]]})
    since = ((at_day - day) * DAY + at - opens) % (7 * DAY)  # minutes since the interval's opening
    assert is_open(hours, at_day, at) is (since < length)


# --- the migration of the old opens/closes pair -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_migration_copies_each_pair_to_every_weekday_and_back() -> None:
    executor = MigrationExecutor(connection)
    before, after = [("core", "0002_store_geo_index")], [("core", "0004_remove_store_opens_closes")]
    executor.migrate(before)
    try:
        apps = executor.loader.project_state(before).apps
        tenant = apps.get_model("core", "Tenant").objects.create(name="旧", slug="old-hours")
        region = apps.get_model("core", "Region").objects.create(tenant=tenant, name="R", code="R")
        Store = apps.get_model("core", "Store")
        pairs = {"DAY": (dt.time(10), dt.time(22)), "BAR": (dt.time(18), dt.time(2)), "ALL": (dt.time(8), dt.time(8))}
        for code, (opens, closes) in pairs.items():
            Store.objects.create(tenant=tenant, region=region, name=code, code=code, opens_at=opens, closes_at=closes)
        Store.objects.create(tenant=tenant, region=region, name="NONE", code="NONE")

        executor = MigrationExecutor(connection)
        executor.migrate(after)
        apps = executor.loader.project_state(after).apps
        hours = dict(apps.get_model("core", "Store").objects.values_list("code", "hours"))
        assert hours == {
            "DAY": daily_hours("10:00", "22:00"),
            "BAR": daily_hours("18:00", "02:00"),
            "ALL": daily_hours("08:00", "08:00"),
            "NONE": {},
        }
        # The same answers as the old pair: overnight past midnight, equal times round the clock.
        assert [is_open(hours["BAR"], 3, m) for m in (17 * 60 + 59, 18 * 60, 60, 120)] == [False, True, True, False]
        assert all(is_open(hours["ALL"], 4, m) for m in range(0, DAY, 13))

        # Back: a schedule one pair can say becomes that pair again; others become "not set".
        apps.get_model("core", "Store").objects.filter(code="DAY").update(hours=parse_hours("mon-fri 10:00-22:00"))
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        apps = executor.loader.project_state(before).apps
        old = apps.get_model("core", "Store").objects.values_list("code", "opens_at", "closes_at")
        rows = {code: (o, c) for code, o, c in old}
        assert rows == {"DAY": (None, None), "BAR": pairs["BAR"], "ALL": pairs["ALL"], "NONE": (None, None)}
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
