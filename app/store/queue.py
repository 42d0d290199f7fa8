"""The embed queue: pending documents claimed with SKIP LOCKED, failures retried with back-off
and then skipped, and the depth of the work left."""

from __future__ import annotations

import logging

import numpy as np
import psycopg

from ctxsearch.domain.documents import embed_text
from ctxsearch.embeddings import Embedder

log = logging.getLogger(__name__)

# The longest pause between two attempts at one document.
MAX_RETRY_S = 3600.0
_ERROR_CHARS = 500

# A document waits while it is backing off after a failure, and for good once skipped.
_CLAIM = """
SELECT d.project_id, d.id, d.kind, d.title, d.body, d.content_hash, d.context FROM documents d
WHERE d.embedding IS NULL
  AND NOT EXISTS (SELECT 1 FROM embed_failures f WHERE f.project_id = d.project_id AND f.id = d.id
                  AND (f.skipped_at IS NOT NULL OR f.next_attempt_at > now()))
ORDER BY d.id LIMIT %s FOR UPDATE OF d SKIP LOCKED
"""

# One statement for the batch instead of one round trip per document.
_STORE = """
UPDATE documents d SET embedding = u.embedding
FROM unnest(%s::text[], %s::bigint[], %b::vector[]) AS u(project_id, id, embedding)
WHERE d.project_id = u.project_id AND d.id = u.id
"""

_CLEARED = """
DELETE FROM embed_failures f USING unnest(%s::text[], %s::bigint[]) AS u(project_id, id)
WHERE f.project_id = u.project_id AND f.id = u.id
"""

# attempts counts this failure; the next attempt waits base * 2^(attempts - 1), capped.
_FAILED = """
INSERT INTO embed_failures AS f (project_id, id, attempts, last_error, next_attempt_at, skipped_at)
SELECT u.project_id, u.id, 1, u.error, now() + make_interval(secs => %(base)s),
       CASE WHEN %(max)s <= 1 THEN now() END
FROM unnest(%(projects)s::text[], %(ids)s::bigint[], %(errors)s::text[]) AS u(project_id, id, error)
ON CONFLICT (project_id, id) DO UPDATE SET
    attempts = f.attempts + 1,
    last_error = excluded.last_error,
    next_attempt_at = now() + make_interval(secs => least(%(base)s * power(2, f.attempts), %(cap)s)),
    skipped_at = CASE WHEN f.attempts + 1 >= %(max)s THEN now() END
"""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]


def _embed_isolated(
    embedder: Embedder, todo: dict[bytes, str], batch_size: int
) -> tuple[dict[bytes, np.ndarray], dict[bytes, str]]:
    """Vectors by content hash, and errors for the texts that could not be embedded: when the
    batch fails, its texts are tried one by one, so one bad text fails alone."""

    def checked(h: bytes, v: np.ndarray, vectors: dict, failed: dict) -> None:
        # pgvector refuses NaN and infinity: the batch's UPDATE would fail for all of them.
        if np.all(np.isfinite(v)):
            vectors[h] = v
        else:
            failed[h] = "ValueError: the embedding holds NaN or infinite values"

    vectors: dict[bytes, np.ndarray] = {}
    failed: dict[bytes, str] = {}
    try:
        for h, v in zip(todo, embedder.embed(list(todo.values()), batch_size=batch_size), strict=True):
            checked(h, v, vectors, failed)
        return vectors, failed
    except Exception as exc:
        if len(todo) == 1:
            return {}, {h: _describe(exc) for h in todo}
        log.warning("embed: a batch of %d failed (%s); embedding its documents one by one", len(todo), _describe(exc))
    for h, text in todo.items():
        try:
            checked(h, embedder.embed([text], batch_size=1)[0], vectors, failed)
        except Exception as exc:
            failed[h] = _describe(exc)
    return vectors, failed


def _store(conn: psycopg.Connection, rows: list[tuple], vectors: dict[bytes, np.ndarray]) -> dict[int, str]:
    """Write the vectors; returns {row index: error} for rows the database refused (each row
    then goes in on its own, under a savepoint, so the others are kept)."""

    def params(part: list[tuple]) -> tuple:
        return [r[0] for r in part], [r[1] for r in part], [vectors[bytes(r[5])] for r in part]

    try:
        with conn.transaction():
            conn.execute(_STORE, params(rows))
        return {}
    except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
        log.warning("embed: storing a batch of %d vectors failed (%s); one by one", len(rows), _describe(exc))
    refused: dict[int, str] = {}
    for i, r in enumerate(rows):
        try:
            with conn.transaction():
                conn.execute(_STORE, params([r]))
        except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
            refused[i] = _describe(exc)
    return refused


def embed_pending(
    *,
    conn: psycopg.Connection,
    embedder: Embedder,
    batch_size: int = 64,
    max_attempts: int = 5,
    retry_base_s: float = 5.0,
) -> int:
    """Embed one batch of pending documents; returns how many it handled (embedded or failed).

    A document that fails is retried after retry_base_s, then twice as long each time, and
    skipped once it has failed max_attempts times (embed_failures.skipped_at).
    """
    with conn.transaction():
        rows = conn.execute(_CLAIM, (batch_size,)).fetchall()
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
        failed: dict[bytes, str] = {}
        if todo:
            new, failed = _embed_isolated(embedder, todo, batch_size)
            vectors.update(new)
        done = [r for r in rows if bytes(r[5]) in vectors]
        errors = {i: failed[bytes(r[5])] for i, r in enumerate(rows) if bytes(r[5]) in failed}
        refused = _store(conn, done, vectors) if done else {}
        stored = [r for i, r in enumerate(done) if i not in refused]
        bad = [(rows[i], e) for i, e in errors.items()] + [(done[i], e) for i, e in refused.items()]
        if stored:
            conn.execute(_CLEARED, ([r[0] for r in stored], [r[1] for r in stored]))
        if bad:
            conn.execute(
                _FAILED,
                {
                    "projects": [r[0] for r, _ in bad],
                    "ids": [r[1] for r, _ in bad],
                    "errors": [e for _, e in bad],
                    "base": float(retry_base_s),
                    "cap": MAX_RETRY_S,
                    "max": max_attempts,
                },
            )
            for r, e in bad:
                log.warning("embed: document %s of project %s failed: %s", r[1], r[0], e)
    return len(rows)


def retry_failed(*, conn: psycopg.Connection, project_id: str | None = None) -> int:
    """Put skipped and backing-off documents back in the queue (after fixing what failed them);
    returns how many."""
    return conn.execute(
        "DELETE FROM embed_failures WHERE %(p)s::text IS NULL OR project_id = %(p)s", {"p": project_id}
    ).rowcount


# A document counts as pending unless its embedding failed for good (skipped).
NOT_SKIPPED = """NOT EXISTS (SELECT 1 FROM embed_failures f
    WHERE f.project_id = d.project_id AND f.id = d.id AND f.skipped_at IS NOT NULL)"""


def queue_depth(*, conn: psycopg.Connection) -> dict[str, float]:
    """The work not yet done across all projects: pending documents (skipped ones apart, counted
    as failed), dirty sessions, and how long the oldest of them has waited (events by arrival,
    sessions by last change)."""
    pending, failed, dirty, lag = conn.execute(
        "SELECT (SELECT count(*) FROM documents d WHERE d.embedding IS NULL AND " + NOT_SKIPPED + "),"
        " (SELECT count(*) FROM embed_failures f JOIN documents d USING (project_id, id)"
        "   WHERE f.skipped_at IS NOT NULL AND d.embedding IS NULL),"
        " (SELECT count(*) FROM sessions WHERE dirty),"
        " coalesce(extract(epoch FROM now() - least("
        "   (SELECT min(e.received_at) FROM documents d JOIN events e"
        "      ON e.project_id = d.project_id AND e.event_id = d.event_id"
        "    WHERE d.embedding IS NULL AND d.kind = 'event' AND " + NOT_SKIPPED + "),"
        "   (SELECT min(updated_at) FROM sessions WHERE dirty))), 0)"
    ).fetchone()
    return {
        "pending_documents": pending,
        "failed_documents": failed,
        "dirty_sessions": dirty,
        "freshness_lag_seconds": max(0.0, float(lag)),
    }
