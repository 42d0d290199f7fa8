"""Schema migrations: the files in sql/, applied once each and recorded in schema_migrations."""

from __future__ import annotations

import logging
import re
from importlib import resources
from pathlib import Path

import psycopg

from ctxsearch.store.db import MissingExtension

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[\w-]+\.sql$")
_MIGRATION_LOCK = 7243090110


def migrations_dir() -> Path:
    """The migration files, installed as package data (`sql/` in the repository)."""
    return Path(str(resources.files("ctxsearch.sql")))


def migration_files() -> list[Path]:
    return sorted(p for p in migrations_dir().iterdir() if _MIGRATION_NAME.match(p.name))


def pending_migrations(*, conn: psycopg.Connection) -> list[str]:
    """Migrations in sql/ not yet recorded as applied in this database."""
    done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    return [p.stem for p in migration_files() if p.stem not in done]


def migrate(url: str) -> list[str]:
    """Apply the numbered migrations not yet recorded in schema_migrations; return their names."""
    files = migration_files()
    applied: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        _require_pgvector(conn)
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for path in files:
                version = path.stem
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text())
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                log.info("applied migration %s", version)
                applied.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied


def _require_pgvector(conn: psycopg.Connection) -> None:
    row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    if row is None:
        raise MissingExtension(
            "the PostgreSQL server has no pgvector extension; install pgvector (0.6 or newer) "
            "or unset CTXSEARCH_DATABASE_URL to use the embedded server"
        )


