"""tessera.core.clock: the system clock, UTC datetimes and the ISO-8601 ``Z`` form."""

from __future__ import annotations

import time
from datetime import UTC

from tessera.core.clock import iso_z, system_clock, to_datetime


def test_system_clock_is_the_wall_clock():
    before = time.time()
    assert before <= system_clock() <= time.time()


def test_utc_datetimes_and_iso_z():
    assert to_datetime(0).tzinfo is UTC and to_datetime(1_800_000_000).year == 2027
    assert iso_z(1_800_000_000.123456) == "2027-01-15T08:00:00Z"
    assert iso_z(1_800_000_000.123456, micros=True) == "2027-01-15T08:00:00.123456Z"
