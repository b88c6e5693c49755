"""The benchmark harness (``bench/run.py``): ``harness/`` (processes, wrk, machine, servers,
fixtures) and ``scenarios/`` (one module per scenario group)."""
