"""SQLAlchemy Core tables. Alembic migrations (``migrations/versions``) create exactly these;
a test checks that autogenerate finds nothing to add. Times are integer epoch seconds."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

organisations = Table(
    "organisations",
    metadata,
    Column("org_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(128), nullable=True),
    Column("redirect_uris", JSON, nullable=False),
    Column("scope", Text, nullable=False),
    Column("auth_methods", JSON, nullable=False),
    Column("grant_types", JSON, nullable=False),
    Column("require_par", Boolean, nullable=False),
    Column("jwks", JSON, nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("org_id", String(64), ForeignKey("organisations.org_id"), nullable=True, index=True),
    Column("previous_secret_hash", String(128), nullable=True),
    Column("previous_valid_until", BigInteger, nullable=True),
)

certificates = Table(
    "certificates",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("client_id", String(64), ForeignKey("clients.client_id"), nullable=False, index=True),
    Column("thumbprint", String(64), nullable=False, unique=True),
    Column("subject", Text, nullable=False),
    Column("not_before", BigInteger, nullable=False),
    Column("not_after", BigInteger, nullable=False),
    Column("pem", Text, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

server_keys = Table(
    "server_keys",
    metadata,
    Column("kid", String(128), primary_key=True),
    Column("use", String(8), nullable=False),
    Column("alg", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("sealed_private", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("retire_at", BigInteger, nullable=True),
)

merchants = Table(
    "merchants",
    metadata,
    Column("merchant_id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("vat", String(32), nullable=True, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

terminals = Table(
    "terminals",
    metadata,
    Column("tid", String(64), primary_key=True),
    Column("merchant_id", BigInteger, ForeignKey("merchants.merchant_id"), nullable=False),
    Column("pos", String(64), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
)

merchant_users = Table(
    "merchant_users",
    metadata,
    Column("username", String(320), primary_key=True),
    Column("merchant_id", BigInteger, ForeignKey("merchants.merchant_id"), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

merchant_grants = Table(
    "merchant_grants",
    metadata,
    Column("merchant_id", BigInteger, ForeignKey("merchants.merchant_id"), primary_key=True),
    Column("client_id", String(64), ForeignKey("clients.client_id"), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("data", JSON, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
    Column("consumed_at", BigInteger, nullable=True),
)

username_bindings = Table(
    "username_bindings",
    metadata,
    Column("username", String(320), primary_key=True),
    Column("tid", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
)

enrollments = Table(
    "enrollments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(64), ForeignKey("clients.client_id"), nullable=False, index=True),
    Column("merchant_id", BigInteger, nullable=False),
    Column("pos", String(64), nullable=False),
    Column("tids", JSON, nullable=False),
    Column("username", String(320), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("device_id", String(256), nullable=True),
)

security_events = Table(
    "security_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False, index=True),
    Column("client_id", String(64), nullable=True),
    Column("detail", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("merchant_id", BigInteger, ForeignKey("merchants.merchant_id"), primary_key=True),
    Column("key_id", Integer, primary_key=True, autoincrement=False),
    Column("key_hash", String(128), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("disabled_at", BigInteger, nullable=True),
    Column("last_used_at", BigInteger, nullable=True),
)

Index("ix_artifacts_client", artifacts.c.client_id)

# --- the portal (migration 0007) --------------------------------------------------------------

developers = Table(
    "developers",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("org_id", String(64), ForeignKey("organisations.org_id"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("password_hash", String(200), nullable=True),
    Column("totp_sealed", String(200), nullable=True),
    Column("totp_last_step", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
