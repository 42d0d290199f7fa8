"""The embed queue: pending documents claimed with SKIP LOCKED, and the depth of the work left."""

from __future__ import annotations

import psycopg

from ctxsearch.domain.documents import embed_text
from ctxsearch.embeddings import Embedder


def embed_pending(*, conn: psycopg.Connection, embedder: Embedder, batch_size: int = 64) -> int:
    """Embed one batch of pending documents; returns how many got a vector."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT project_id, id, kind, title, body, content_hash, context FROM documents"
            " WHERE embedding IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            (batch_size,),
        ).fetchall()
        if not rows:
            return 0
        hashes = list({bytes(r[5]) for r in rows})
        vectors = {
            bytes(h): v
            for h, v in conn.execute(
                "SELECT DISTINCT ON (content_hash) content_hash, embedding FROM documents"
                " WHERE content_hash = ANY(%s) AND embedding IS NOT NULL",
                (hashes,),
            )
        }
        todo: dict[bytes, str] = {}
        for r in rows:
            h = bytes(r[5])
            if h not in vectors and h not in todo:
                todo[h] = embed_text(r[3], r[4], r[2], r[6])
        if todo:
            for h, v in zip(todo, embedder.embed(list(todo.values()), batch_size=batch_size)):
                vectors[h] = v
        # One statement for the batch instead of one round trip per document.
        conn.execute(
            "UPDATE documents d SET embedding = u.embedding"
            " FROM unnest(%s::text[], %s::bigint[], %b::vector[]) AS u(project_id, id, embedding)"
            " WHERE d.project_id = u.project_id AND d.id = u.id",
            ([r[0] for r in rows], [r[1] for r in rows], [vectors[bytes(r[5])] for r in rows]),
        )
    return len(rows)


def queue_depth(*, conn: psycopg.Connection) -> dict[str, float]:
    """The work not yet done across all projects: pending documents, dirty sessions, and
    how long the oldest of them has waited (events by arrival, sessions by last change)."""
    pending, dirty, lag = conn.execute(
        "SELECT (SELECT count(*) FROM documents WHERE embedding IS NULL),"
        " (SELECT count(*) FROM sessions WHERE dirty),"
        " coalesce(extract(epoch FROM now() - least("
        "   (SELECT min(e.received_at) FROM documents d JOIN events e"
        "      ON e.project_id = d.project_id AND e.event_id = d.event_id"
        "    WHERE d.embedding IS NULL AND d.kind = 'event'),"
        "   (SELECT min(updated_at) FROM sessions WHERE dirty))), 0)"
    ).fetchone()
    return {"pending_documents": pending, "dirty_sessions": dirty, "freshness_lag_seconds": max(0.0, float(lag))}
