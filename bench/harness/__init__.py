"""The pieces of the benchmark harness, one job each:

- ``procs``: the processes started (own process group, always stopped), ports, logging;
- ``wrk``: the wrk driver, its SUMMARY parsing, and a measured run (warm-up, quiet wait,
  load, CPU accounting, DIRTY reruns);
- ``machine``: the machine and versions recorded with the results;
- ``servers``: tessera's live servers, the client-side nginx for mTLS, the peers;
- ``fixtures``: what the load scripts need in a tessera home (clients, merchant, keys);
- ``session``: ``Harness``, a run of the selected scenarios and its results file.
"""
