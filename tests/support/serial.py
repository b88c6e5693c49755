"""The tests that ``make test`` and ``make test-fast`` run alone, after the parallel run.

They measure time or CPU (constant-time comparisons, rate windows, a CPU attribution, hot paths):
the suite's own workers would skew what they measure. The schemathesis run is not among them: its
time bound (``BUDGET`` in tests/security/test_fuzz.py) only stops a runaway, so it runs on a
worker, among the first modules handed out (it had been a third of this serial part's time).
``tests/conftest.py`` marks them ``serial``; ``python -m tests.support.serial`` prints the files
that hold them, so that the second run collects only those files.
"""

from __future__ import annotations

SERIAL = (
    "tests/jose/test_nested.py::test_kidless_failures_do_not_tell_which_key_was_right",
    "tests/jose/test_nested.py::test_bad_padding_and_bad_tag_take_similar_time",
    "tests/storage/test_notices.py::test_sqlite_changed_is_cheap",
    "tests/security/test_credentials.py::test_row_31_compared_in_constant_time",
    "tests/security/test_assertions.py::test_row_09_failures_look_the_same_and_take_about_the_same_time",
    "tests/web/test_routing.py::test_a_route_middleware_limit_is_rendered_alike_on_both_paths",
    "tests/core/test_ratelimit.py::test_redis_rate_refills_on_redis_time",
    "tests/core/test_ratelimit.py::test_rate_hot_path_costs_a_few_microseconds",
    "tests/web/test_observability.py::test_readyz_ready",
    "tests/faults/test_rate_limits.py::test_limits_are_shared_through_redis_and_fall_back_to_each_process_without_it",
    "tests/faults/test_rate_limits.py::test_per_address_limit",
    "tests/bench/test_harness.py::test_procacct_attributes_a_childs_cpu_to_its_group",
)


def files() -> list[str]:
    return sorted({nodeid.split("::", 1)[0] for nodeid in SERIAL})


if __name__ == "__main__":
    print(" ".join(files()))
