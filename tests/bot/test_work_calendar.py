"""The working calendar of reminders: days, hours, holidays and the time zone."""

from datetime import UTC, date, datetime

import pytest

from bot.work_calendar import WorkCalendar, parse_work_days, parse_work_hours

pytestmark = pytest.mark.unit

MOSCOW = WorkCalendar.parse("09:00-18:00", "mon-fri", "Europe/Moscow", [date(2026, 12, 31)])


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "working"),
    [
        (utc(2026, 11, 27, 6, 0), True),  # Friday 09:00 in Moscow (UTC+3): opening minute
        (utc(2026, 11, 27, 5, 59), False),  # 08:59 Moscow: before hours
        (utc(2026, 11, 27, 14, 59), True),  # 17:59 Moscow
        (utc(2026, 11, 27, 15, 0), False),  # 18:00 Moscow: after hours (end is exclusive)
        (utc(2026, 11, 28, 10, 0), False),  # Saturday
        (utc(2026, 11, 29, 10, 0), False),  # Sunday
        (utc(2026, 12, 31, 10, 0), False),  # Thursday, but a holiday
        (utc(2026, 12, 30, 21, 30), False),  # Wednesday 21:30 UTC is already the holiday in Moscow
        (utc(2026, 12, 30, 14, 30), True),  # Wednesday 17:30 Moscow
    ],
)
def test_working_time_in_moscow(moment, working):
    assert MOSCOW.is_working(moment) is working


def test_the_time_zone_decides():
    london = WorkCalendar.parse("09:00-18:00", "mon-fri", "Europe/London")
    moment = utc(2026, 11, 27, 7, 0)  # 10:00 in Moscow, 07:00 in London
    assert MOSCOW.is_working(moment) is True
    assert london.is_working(moment) is False
    evening = utc(2026, 11, 27, 16, 0)  # 19:00 in Moscow, 16:00 in London
    assert MOSCOW.is_working(evening) is False
    assert london.is_working(evening) is True


def test_next_working_period_skips_the_weekend_and_holidays():
    friday_evening = utc(2026, 11, 27, 16, 0)
    assert MOSCOW.next_working(friday_evening) == utc(2026, 11, 30, 6, 0)  # Monday 09:00 Moscow
    assert MOSCOW.next_working(utc(2026, 12, 30, 16, 0)) == utc(2027, 1, 1, 6, 0)  # past the 31st
    inside = utc(2026, 11, 27, 8, 0)
    assert MOSCOW.next_working(inside) == inside


def test_round_the_clock_and_wrapping_weeks():
    always = WorkCalendar.parse("00:00-24:00", "mon-sun", "UTC")
    assert always.is_working(utc(2026, 11, 29, 23, 59))
    assert parse_work_days("sun-thu") == {7, 1, 2, 3, 4}
    assert parse_work_days("mon, wed,fri-sat") == {1, 3, 5, 6}
    assert parse_work_hours("8:30-17:15") == (510, 1035)


@pytest.mark.parametrize("bad", ["9-18", "18:00-09:00", "09:00-09:00", "25:00-26:00", "09:60-10:00", ""])
def test_bad_working_hours_are_refused(bad):
    with pytest.raises(ValueError, match="working hours"):
        parse_work_hours(bad)


@pytest.mark.parametrize("bad", ["", "monday-", "mo-fr", "weekdays", "mon-xyz"])
def test_bad_working_days_are_refused(bad):
    with pytest.raises(ValueError, match="working days"):
        parse_work_days(bad)
