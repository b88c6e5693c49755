"""``iso_z`` formats a second once and rounds microseconds as ``datetime.fromtimestamp`` does:
its answer is, for every timestamp, exactly ``to_datetime(ts).strftime(...)``."""

from __future__ import annotations

import random

from tessera.core import clock
from tessera.core.clock import iso_z, to_datetime


def _reference(ts: float, micros: bool) -> str:
    return to_datetime(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micros else "%Y-%m-%dT%H:%M:%SZ")


def _values() -> list[float]:
    r = random.Random(14)
    edges = [0, 1, 1.5, 0.9999995, 0.9999994999, 0.0000005, 1_765_000_000, 2**31, 4_102_444_800]
    edges += [1_765_000_000.9999996, 1_765_000_000.0000005, 1_765_000_000.0000015, 1_765_000_000.4999995]
    near = [base + k * 1e-7 for base in (1_765_000_000, 1_765_000_001.5, 86_399.0) for k in range(-40, 40)]
    floats = [r.uniform(0, 4e9) for _ in range(20_000)]
    micro_steps = [r.randint(0, 4 * 10**9) + r.randint(0, 10**6) / 1e6 for _ in range(20_000)]
    negatives = [-0.5, -1.0000005, -86_400.25, -r.uniform(0, 1e9)]
    return [float(v) for v in edges + near + floats + micro_steps + negatives]


def test_iso_z_is_strftime_of_the_datetime_for_every_timestamp():
    for ts in _values():
        for micros in (False, True):
            assert iso_z(ts, micros=micros) == _reference(ts, micros), (ts, micros)


def test_an_integer_timestamp_and_the_cache_bound():
    clock._second.cache_clear()
    for ts in range(1_765_000_000, 1_765_000_000 + 200):  # more seconds than the cache keeps
        assert iso_z(ts) == _reference(ts, False)
    assert 0 < clock._second.cache_info().currsize <= 64
    assert iso_z(1_800_000_000) == "2027-01-15T08:00:00Z"
