"""The order in which ``make test``'s workers take the modules: the longest first.

``--dist loadscope`` hands each worker whole modules, in collection order, as it asks for
work. Collected in path order, a long module met late (the README walkthrough, the
configuration-error processes) runs alone at the end while the other workers sit idle. Sorted
longest first, the short modules fill the gaps at the end instead. The figures are CPU seconds
per module (``pytest -p tests.support.cpu_profile``, docs/testing.md); a module not listed keeps
its place after these. The order must be the same on every worker (xdist checks it): it is
this static list, not a measurement of the run.
"""

from __future__ import annotations

#: Modules by CPU seconds in one whole run, longest first (rounded; measured on main at 378168d,
#: after issue 12's start-up and in-process work).
LONGEST_FIRST: tuple[str, ...] = (
    "tests/docs/test_walkthroughs.py",  # 37
    "tests/e2e/test_races.py",  # 23
    "tests/ops/test_operations_doc.py",  # 23
    "tests/packaging/test_install.py",  # 22
    "tests/admin_api/test_live.py",  # 19
    "tests/e2e/test_nexi_par.py",  # 18
    "tests/security/test_assertions.py",  # 17
    "tests/ops/test_backup.py",  # 17
    "tests/storage/test_store.py",  # 15
    "tests/sandbox/test_cli.py",  # 14
    "tests/faults/test_crash.py",  # 13
    "tests/e2e/test_keys_cli.py",  # 12
    "tests/faults/test_flood.py",  # 12
    "tests/portal/test_browser.py",  # 11
    "tests/security/test_lockout.py",  # 11
    "tests/web/test_observability.py",  # 10
    "tests/security/test_credentials.py",  # 10
    "tests/deploy/test_cluster.py",  # 10
    "tests/e2e/test_nexi_reference_replay.py",  # 9
    "tests/bench/test_ab.py",  # 9
    "tests/e2e/test_demo_flows.py",  # 9
    "tests/e2e/test_refresh_races.py",  # 9
    "tests/docs/test_make_serve.py",  # 9
    "tests/security/test_mtls_certs.py",  # 9
    "tests/integrator/test_integrators_doc.py",  # 8
    "tests/sdk/test_live_provider_paths.py",  # 8
    "tests/faults/test_outages.py",  # 8
    "tests/security/test_strict_input.py",  # 7
    "tests/faults/test_rate_limits.py",  # 7
    "tests/security/test_secrets_scan.py",  # 7
    "tests/e2e/test_native_security.py",  # 6
    "tests/e2e/test_native.py",  # 6
    "tests/e2e/test_nexi_authorize.py",  # 6
    "tests/security/test_configuration_errors.py",  # 6
    "tests/sandbox/test_plugin.py",  # 6
    "tests/core/test_mobilepay_axept_tokens.py",  # 6
    "tests/security/test_worker_logs.py",  # 6
    "tests/security/test_par_codes.py",  # 5
)
_RANK = {path: i for i, path in enumerate(LONGEST_FIRST)}


def longest_first(items: list) -> None:
    """Sort ``items`` (in place, stable) so that the modules of ``LONGEST_FIRST`` come first, in
    its order; the tests of a module keep their own order."""
    items.sort(key=lambda item: _RANK.get(item.nodeid.split("::", 1)[0], len(_RANK)))
