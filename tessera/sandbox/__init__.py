"""The integrator's sandbox (``tessera sandbox``): the provider profiles at the providers' own
paths, fixed credentials from a fixtures file, a throw-away home and a movable clock.

- ``tessera.sandbox.fixtures``: the fixtures file (TOML), parsed and checked;
- ``tessera.sandbox.setup``: the fixtures loaded through the admin layer;
- ``tessera.sandbox.clock``: the movable clock;
- ``tessera.sandbox.control``: the ``/_sandbox`` routes (clock, certificates, tokens);
- ``tessera.sandbox.tokens``: tokens issued directly;
- ``tessera.sandbox.server``: the home, the app and uvicorn.

The pytest plugin (``tessera.testing``) starts ``tessera sandbox`` in a subprocess."""
