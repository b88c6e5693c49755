"""The SQL store (SQLAlchemy: SQLite by default, PostgreSQL by URL), one module per room:

- ``engine``: the engine factory, SQLite's pragmas, PostgreSQL's pooled-connection liveness;
- ``database``: the engine with its transactions and change notices, shared by the repositories;
- ``artifacts``: the single-use artefacts, on raw SQL text per dialect (the hot path);
- ``pg_async``: the async libpq mini-pool for the rotation awaited on the event loop;
- ``clients``, ``certificates``, ``keys``, ``merchants``, ``apikeys``, ``enrollments``,
  ``events``: one repository per aggregate;
- ``store``: ``SQLStore``, their composition.
"""

from tessera.storage.sql.artifacts import ANNOUNCED_KINDS, SQLArtifacts
from tessera.storage.sql.database import Database
from tessera.storage.sql.engine import make_engine
from tessera.storage.sql.pg_async import ASYNC_CONNECTIONS
from tessera.storage.sql.store import SQLStore

__all__ = ["ANNOUNCED_KINDS", "ASYNC_CONNECTIONS", "Database", "SQLArtifacts", "SQLStore", "make_engine"]
