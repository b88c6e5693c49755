"""The order in which ``make test``'s workers take the modules: the longest first.

``--dist loadscope`` hands each worker whole modules, in collection order, as it asks for
work. Collected in path order, a long module met late (the README walkthrough, the
configuration-error processes) runs alone at the end while the other workers sit idle. Sorted
longest first, the short modules fill the gaps at the end instead. The figures are the wall
seconds each module held its worker (``--durations=0``, summed per module): a module that waits
(a flood, a crash, a browser) holds its worker as long as one that computes, and what ends last
is what started last. A module not listed keeps its place after these. The order must be the
same on every worker (xdist checks it): it is this static list, not a measurement of the run.
"""

from __future__ import annotations

#: Modules by wall seconds on their worker in one whole run (setup + call + teardown of their tests,
#: `--durations=0`), longest first (rounded; measured on main at 7aa433a, `-n 4 --dist loadscope`).
LONGEST_FIRST: tuple[str, ...] = (
    "tests/ops/test_operations_doc.py",  # 84
    "tests/security/test_fuzz.py",  # 60: the schemathesis run (30 s alone), moved from the serial run
    "tests/docs/test_walkthroughs.py",  # 56
    "tests/faults/test_flood.py",  # 49
    "tests/security/test_assertions.py",  # 43
    "tests/e2e/test_nexi_par.py",  # 38
    "tests/e2e/test_races.py",  # 37
    "tests/packaging/test_install.py",  # 36
    "tests/admin_api/test_live.py",  # 35
    "tests/faults/test_crash.py",  # 33
    "tests/storage/test_store.py",  # 32
    "tests/sandbox/test_cli.py",  # 25
    "tests/portal/test_browser.py",  # 24
    "tests/web/test_observability.py",  # 21
    "tests/sdk/test_live_provider_paths.py",  # 21
    "tests/security/test_credentials.py",  # 19
    "tests/e2e/test_native_security.py",  # 18
    "tests/e2e/test_native.py",  # 17
    "tests/bench/test_ab.py",  # 17
    "tests/ops/test_backup.py",  # 17
    "tests/security/test_strict_input.py",  # 17
    "tests/security/test_par_codes.py",  # 16
    "tests/e2e/test_nexi_reference_replay.py",  # 16
    "tests/security/test_lockout.py",  # 16
    "tests/e2e/test_keys_cli.py",  # 15
    "tests/integrator/test_integrators_doc.py",  # 15
    "tests/e2e/test_demo_flows.py",  # 15
    "tests/faults/test_outages.py",  # 14
    "tests/deploy/test_cluster.py",  # 14
    "tests/security/test_mtls_certs.py",  # 14
    "tests/core/test_keys_rotation.py",  # 13
    "tests/bench/test_harness.py",  # 13
    "tests/security/test_secrets_scan.py",  # 13
    "tests/faults/test_rate_limits.py",  # 13
    "tests/e2e/test_nexi_authorize.py",  # 12
    "tests/security/test_configuration_errors.py",  # 11
    "tests/e2e/test_refresh_races.py",  # 11
    "tests/e2e/test_revocation_cache.py",  # 11
    "tests/sandbox/test_plugin.py",  # 11
    "tests/sdk/test_example_api.py",  # 10
    "tests/sdk/test_typing.py",  # 9
    "tests/sdk/test_b2binpay.py",  # 8
    "tests/e2e/test_axept.py",  # 8
    "tests/security/test_worker_logs.py",  # 8
    "tests/core/test_mobilepay_axept_tokens.py",  # 8
    "tests/ops/test_delivery.py",  # 8
    "tests/security/test_revocation_everywhere.py",  # 8
    "tests/e2e/test_nexi_token.py",  # 7
    "tests/sdk/test_nexi_wire.py",  # 7
    "tests/e2e/test_profile_seal.py",  # 7
    "tests/sdk/test_axept.py",  # 6
    "tests/admin_api/test_api.py",  # 6
    "tests/e2e/test_proxy_mode.py",  # 6
    "tests/e2e/test_browser_login.py",  # 6
    "tests/sdk/test_assertion.py",  # 5
    "tests/sdk/test_live_nexi.py",  # 5
    "tests/core/test_context_caches.py",  # 5
    "tests/sdk/test_sdk_doc.py",  # 5
    "tests/e2e/test_b2binpay_provider.py",  # 5
    "tests/integrator/test_helpers.py",  # 4
    "tests/jose/test_nested.py",  # 4
    "tests/e2e/test_mobilepay.py",  # 4
    "tests/sandbox/test_control.py",  # 4
    "tests/storage/test_redis_store.py",  # 4
)
_RANK = {path: i for i, path in enumerate(LONGEST_FIRST)}


def longest_first(items: list) -> None:
    """Sort ``items`` (in place, stable) so that the modules of ``LONGEST_FIRST`` come first, in
    its order; the tests of a module keep their own order."""
    items.sort(key=lambda item: _RANK.get(item.nodeid.split("::", 1)[0], len(_RANK)))
