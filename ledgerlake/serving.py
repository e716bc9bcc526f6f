"""The serving window: the most recent N calendar months, the current month included.

One definition shared by the stream, the backfill and the roll-off, so every job
agrees on which posting dates belong in ``serving.transactions_recent``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from ledgerlake.config import LakeConfig


def month_of(day: date) -> str:
    """The posting month of a date, as stored in ``posting_month`` (YYYY-MM)."""
    return f"{day.year:04d}-{day.month:02d}"


def add_months(month: str, delta: int) -> str:
    """A YYYY-MM month shifted by delta months."""
    year, mon = int(month[:4]), int(month[5:7])
    index = year * 12 + (mon - 1) + delta
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@dataclass(frozen=True)
class ServingWindow:
    """Posting months [first_month, last_month] of the serving tier, as of ``today``."""

    first_month: str
    last_month: str
    today: date

    @property
    def first_day(self) -> date:
        return date.fromisoformat(f"{self.first_month}-01")

    @property
    def last_day(self) -> date:
        following = date.fromisoformat(f"{add_months(self.last_month, 1)}-01")
        return following - timedelta(days=1)

    def contains(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day

    def contains_month(self, month: str) -> bool:
        return self.first_month <= month <= self.last_month

    def sql_condition(self, column: str = "posting_date") -> str:
        """SQL: the DATE column lies in the window (NULL is outside)."""
        return f"coalesce({column} BETWEEN DATE'{self.first_day}' AND DATE'{self.last_day}', FALSE)"

    def __iter__(self):  # noqa: ANN204 - lets callers write ``first, last = serving_window(config)``
        return iter((self.first_month, self.last_month))

    def __str__(self) -> str:
        return f"{self.first_month}..{self.last_month}"


def window_for(today: date, months: int) -> ServingWindow:
    """The window of ``months`` calendar months ending with the month of ``today``."""
    if months < 1:
        raise ValueError(f"the serving window needs at least 1 month, got {months}")
    last = month_of(today)
    return ServingWindow(add_months(last, -(months - 1)), last, today)


def serving_window(config: LakeConfig) -> ServingWindow:
    """The serving window as configured: --serving-months back from --today (or the system date)."""
    return window_for(config.current_date(), config.serving_months)
