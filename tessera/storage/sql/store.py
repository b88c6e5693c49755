"""``SQLStore``: the ``Store`` over one SQL database, composed of one repository per aggregate.

Each repository is a room of its own (``clients``, ``certificates``, ``keys``, ``merchants``,
``apikeys``, ``enrollments``, ``events``, ``organisations``: SQLAlchemy Core; ``artifacts``: raw SQL on the hot
path), and each works on the shared ``Database`` (engine, transactions, change notices). The
store inherits their methods rather than forwarding to them: a token endpoint's call costs
no extra frame, and every method is declared where it is implemented.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from tessera.core.ports import ChangeNotices
from tessera.storage.sql.admin import AdminRepo
from tessera.storage.sql.apikeys import ApiKeyRepo
from tessera.storage.sql.artifacts import SQLArtifacts
from tessera.storage.sql.certificates import CertificateRepo
from tessera.storage.sql.clients import ClientRepo
from tessera.storage.sql.database import Database
from tessera.storage.sql.enrollments import EnrollmentRepo
from tessera.storage.sql.events import EventRepo
from tessera.storage.sql.keys import KeyRepo
from tessera.storage.sql.merchants import MerchantRepo
from tessera.storage.sql.organisations import OrganisationRepo
from tessera.storage.sql.peppers import PepperRepo
from tessera.storage.sql.portal import DeveloperRepo, MerchantPortalRepo


class SQLStore(
    ClientRepo,
    OrganisationRepo,
    CertificateRepo,
    KeyRepo,
    MerchantRepo,
    ApiKeyRepo,
    EnrollmentRepo,
    EventRepo,
    AdminRepo,
    DeveloperRepo,
    MerchantPortalRepo,
    PepperRepo,
    SQLArtifacts,
):
    """Store over SQLAlchemy Core: SQLite (WAL) by default, PostgreSQL by URL.

    Besides the ``Store`` roles it has the capabilities ``AsyncRotation`` (PostgreSQL),
    ``AnnouncesChanges`` (exact notices: SQLite's notice file, PostgreSQL LISTEN/NOTIFY),
    ``AnnouncedKinds``, ``SQLBacked`` and ``RehashesSecrets``."""

    def __init__(self, url_or_engine: str | Engine) -> None:
        SQLArtifacts.__init__(self, Database(url_or_engine))  # sets ``db``, which every repository uses

    @property
    def database(self) -> Database:
        return self.db

    @property
    def engine(self) -> Engine:
        return self.db.engine

    @property
    def is_sqlite(self) -> bool:
        return self.db.is_sqlite

    @property
    def revocation_notices(self) -> ChangeNotices | None:
        """Exact change notices: lets workers cache clients and certificates and still see a
        revocation on the next request."""
        return self.db.notices

    def ping(self) -> None:
        self.db.ping()

    def close(self) -> None:
        SQLArtifacts.close(self)
        self.db.close()
