"""Secrets of this installation, kept in its database (sql/0004_cursor_secret.sql)."""

from __future__ import annotations

import psycopg


def cursor_secret(*, conn: psycopg.Connection) -> str:
    """The random secret that signs this installation's search cursors."""
    row = conn.execute("SELECT value FROM service_secrets WHERE name = 'cursor'").fetchone()
    if row is None:  # removed by hand: make a new one (cursors out there stop working)
        row = conn.execute(
            "INSERT INTO service_secrets (name, value)"
            " VALUES ('cursor', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''))"
            " ON CONFLICT (name) DO UPDATE SET value = service_secrets.value RETURNING value"
        ).fetchone()
    return row[0]
