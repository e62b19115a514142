"""The working calendar reminders respect: working hours on working days, in one time zone, minus holidays."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HOURS_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def parse_work_hours(text: str) -> tuple[int, int]:
    """Parse "09:00-18:00" -> (540, 1080): minutes from midnight, end exclusive ("24:00" allowed)."""
    match = _HOURS_RE.match(text)
    if not match:
        raise ValueError(f"working hours must look like 09:00-18:00, got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60 or start >= end:
        raise ValueError(f"working hours must be a non-empty range within a day, got {text!r}")
    return start, end


def _day(name: str) -> int:
    for number, full in enumerate(FULL_DAY_NAMES, start=1):
        if len(name) >= 3 and full.startswith(name):
            return number
    raise ValueError(name)


def parse_work_days(text: str) -> frozenset[int]:
    """Parse "mon-fri" or "mon,wed,fri" (ranges and lists mix) -> ISO weekday numbers (Monday = 1)."""
    days: set[int] = set()
    try:
        for part in text.lower().replace(" ", "").split(","):
            first, dash, last = part.partition("-")
            a = _day(first)
            b = _day(last) if dash else a
            # A range may wrap around the week: sun-thu.
            days.update((a - 1 + i) % 7 + 1 for i in range((b - a) % 7 + 1))
    except ValueError:
        raise ValueError(f"working days must be like mon-fri or mon,wed,fri, got {text!r}") from None
    return frozenset(days)


def parse_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Moscow)") from None


@dataclass(frozen=True)
class WorkCalendar:
    start_minute: int
    end_minute: int
    days: frozenset[int]
    tz: ZoneInfo
    holidays: frozenset[date] = frozenset()

    @classmethod
    def parse(
        cls, hours: str, days: str, tz: str, holidays: list[date] | tuple[date, ...] = ()
    ) -> WorkCalendar:
        start, end = parse_work_hours(hours)
        return cls(start, end, parse_work_days(days), parse_timezone(tz), frozenset(holidays))

    def is_working(self, moment: datetime) -> bool:
        """Whether `moment` (aware) falls in working hours of a working day, in the calendar's zone."""
        local = moment.astimezone(self.tz)
        if local.isoweekday() not in self.days or local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return self.start_minute <= minute < self.end_minute

    def next_working(self, moment: datetime) -> datetime:
        """The first working moment at or after `moment` (for logs: when waiting reminders go out)."""
        local = moment.astimezone(self.tz)
        for offset in range(370):  # a year of holidays at most
            day = local.date() + timedelta(days=offset)
            if day.isoweekday() not in self.days or day in self.holidays:
                continue
            opens = datetime.combine(day, time(self.start_minute // 60, self.start_minute % 60), self.tz)
            closes = opens + timedelta(minutes=self.end_minute - self.start_minute)
            if local < closes:
                return max(local, opens)
        raise ValueError("the working calendar has no working time in the coming year")

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)
