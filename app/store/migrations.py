"""Schema migrations: versioned files applied once, repeatable files re-applied when they change.

sql/ (package data of ctxsearch.sql) holds

- `NNNN_name.sql`, versioned: applied once each, in name order, and recorded in
  schema_migrations with the SHA-256 of their text. They are immutable once applied: a file
  whose text differs from what was applied is refused at start (MigrationError, naming it),
  and so is a recorded version whose file is missing (a database of another build).
- `repeatable/R__name.sql`: the functions that evolve, written to be re-run (CREATE OR
  REPLACE), applied after the versioned files, in name order, whenever their checksum
  differs from the recorded one. None of them rebuilds the warm tier: a change to what a
  generation holds raises ctxsearch_warm_version() and the worker rebuilds in the background
  (sql/0002_warm_version.sql).

Every file runs in its own transaction, all under one advisory lock, so that processes
starting together apply each file once.

Adopting the previous release's databases. They record the chain 0001_schema … 0023_text_top
(LEGACY_CHAIN) without checksums; that complete chain leaves exactly the schema
0001_baseline.sql creates (tests/integration/test_migrations.py compares pg_dump output), so
0001_baseline is recorded as applied without running it; the old rows stay where they are,
as history. A database with only part of that chain is refused rather than finished from
bundled copies of the old files: every start of the previous release applied its whole chain,
so only an older build leaves part of it, and finishing it would mean running 0020 and 0023,
which rebuild the warm tier inside the migration lock. Such a database is upgraded through
the previous release first.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

_VERSIONED_NAME = re.compile(r"^\d{4}_[\w-]+\.sql$")
_REPEATABLE_NAME = re.compile(r"^R__[\w-]+\.sql$")
_MIGRATION_LOCK = 7243090110

BASELINE = "0001_baseline"
# What the previous release's runner recorded; 0001_baseline stands for all of it.
LEGACY_CHAIN = frozenset(
    {
        "0001_schema",
        "0002_tiers",
        "0003_text",
        "0010_bm25",
        "0011_event_context",
        "0020_project_ann",
        "0021_events_session_index",
        "0022_event_key",
        "0023_text_top",
    }
)


class MigrationError(RuntimeError):
    """The database's migration history does not fit the files in sql/."""


class MissingExtension(RuntimeError):
    """The server has no pgvector."""


@dataclass(frozen=True)
class Migration:
    version: str  # the file's stem, as recorded in schema_migrations
    path: Path
    sql: str
    checksum: str
    repeatable: bool


def migrations_dir() -> Path:
    """The migration files, installed as package data (`sql/` in the repository)."""
    return Path(str(resources.files("ctxsearch.sql")))


def _load(path: Path, repeatable: bool) -> Migration:
    # CRLF read as LF: a checkout that converts line endings has not changed a migration.
    text = path.read_bytes().replace(b"\r\n", b"\n")
    return Migration(path.stem, path, text.decode(), hashlib.sha256(text).hexdigest(), repeatable)


def migration_files() -> list[Migration]:
    """The versioned files, in the order they apply."""
    return [_load(p, False) for p in sorted(migrations_dir().iterdir()) if _VERSIONED_NAME.match(p.name)]


def repeatable_files() -> list[Migration]:
    """The repeatable files, in the order they apply (after every versioned one)."""
    folder = migrations_dir() / "repeatable"
    if not folder.is_dir():
        return []
    return [_load(p, True) for p in sorted(folder.iterdir()) if _REPEATABLE_NAME.match(p.name)]


@dataclass
class _Plan:
    adopt: bool  # record the baseline for a database of the previous release
    versioned: list[Migration]
    repeatable: list[Migration]


def _plan(recorded: dict[str, str | None], versioned: list[Migration], repeatable: list[Migration]) -> _Plan:
    """What to apply to a database with these (version -> checksum) rows; MigrationError when
    its history does not fit the files."""
    files = {m.version: m for m in versioned}
    legacy = LEGACY_CHAIN & recorded.keys()
    adopt = bool(legacy) and BASELINE not in recorded
    if adopt and legacy != LEGACY_CHAIN:
        raise MigrationError(
            "this database was migrated by an older ctxsearch and lacks "
            f"{', '.join(sorted(LEGACY_CHAIN - legacy))} of its migrations; upgrade it through the "
            "previous release first (start it once: it applies them), then start this one"
        )
    for version, checksum in sorted(recorded.items()):
        if version.startswith("R__") or version in LEGACY_CHAIN:
            continue  # a repeatable left out of sql/ leaves its objects; legacy rows are history
        m = files.get(version)
        if m is None:
            raise MigrationError(
                f"the database records migration {version}, but there is no sql/{version}.sql: it was "
                "migrated by a newer or different build of ctxsearch; run that build against it"
            )
        if checksum is not None and checksum != m.checksum:
            raise MigrationError(
                f"sql/{m.path.name} was changed after it was applied to this database (applied sha256 "
                f"{checksum[:12]}…, file {m.checksum[:12]}…); applied migrations are immutable: restore the "
                "file and put the change in a new numbered file (or, for a function, in sql/repeatable/)"
            )
    pending = [m for m in versioned if m.version not in recorded and not (adopt and m.version == BASELINE)]
    changed = [m for m in repeatable if recorded.get(m.version) != m.checksum]
    return _Plan(adopt, pending, changed)


def _recorded(conn: psycopg.Connection) -> dict[str, str | None]:
    # Through to_jsonb: a table of the previous release has no checksum column yet.
    return dict(conn.execute("SELECT version, to_jsonb(m) ->> 'checksum' FROM schema_migrations m").fetchall())


def pending_migrations(*, conn: psycopg.Connection) -> list[str]:
    """Versioned files not yet applied and repeatable files changed since (or never) applied."""
    plan = _plan(_recorded(conn), migration_files(), repeatable_files())
    return ([BASELINE] if plan.adopt else []) + [m.version for m in plan.versioned + plan.repeatable]


def migrate(url: str) -> list[str]:
    """Apply what is pending; return the names applied (an adopted baseline says so)."""
    applied: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        _require_pgvector(conn)
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), checksum text)"
            )
            conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text")
            versioned = migration_files()
            recorded = _recorded(conn)
            plan = _plan(recorded, versioned, repeatable_files())
            if plan.adopt:
                baseline = next(m for m in versioned if m.version == BASELINE)
                conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)", (BASELINE, baseline.checksum)
                )
                log.info("adopted a database of the previous release: %s recorded without running it", BASELINE)
                applied.append(f"{BASELINE} (adopted: the previous release's schema)")
            # Versions recorded without a checksum (none but by hand): trust what is there now.
            for m in versioned:
                if m.version in recorded and recorded[m.version] is None:
                    conn.execute(
                        "UPDATE schema_migrations SET checksum = %s WHERE version = %s", (m.checksum, m.version)
                    )
            for m in plan.versioned + plan.repeatable:
                with conn.transaction():
                    conn.execute(m.sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)"
                        " ON CONFLICT (version) DO UPDATE SET checksum = excluded.checksum, applied_at = now()",
                        (m.version, m.checksum),
                    )
                log.info("applied %s migration %s", "repeatable" if m.repeatable else "versioned", m.version)
                applied.append(m.version)
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
