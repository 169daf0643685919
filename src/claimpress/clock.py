"""The one place claimpress reads the clock, so tests and golden files can fix "now".

Set `CLAIMPRESS_NOW` to a date (`2026-02-01`) or a UTC time (`2026-02-01T09:30:00Z`) to
run any command as of that moment.
"""

from __future__ import annotations

import datetime as dt
import os

from .problems import SettingError

ENV = "CLAIMPRESS_NOW"


def now() -> dt.datetime:
    """The current time in UTC, or the time set by CLAIMPRESS_NOW."""
    fixed = os.environ.get(ENV, "").strip()
    if not fixed:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        moment = dt.datetime.fromisoformat(fixed.replace("Z", "+00:00"))
    except ValueError:
        raise SettingError(f"{ENV}={fixed!r} is not a date or time such as 2026-02-01") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def today() -> dt.date:
    """Today's date in UTC, or the date set by CLAIMPRESS_NOW."""
    return now().date()
