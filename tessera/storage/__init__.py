"""The implementations of core's storage ports (``tessera.core.ports``):

- ``memory``: ``MemoryStore``, in one process's memory (fast in-process tests);
- ``sql``: ``SQLStore`` over SQLAlchemy (SQLite by default, PostgreSQL), with ``schema``,
  ``migrate`` and the Alembic ``migrations``, and its change ``notices``;
- ``redis_store``: the short-lived artefacts and the revocation epoch on Redis, and
  ``CompositeStore`` in front of the SQL store; ``redis_limits``: the shared rate and failure
  limiters.
"""
