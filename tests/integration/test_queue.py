"""The embed queue: a document that fails to embed is isolated, retried with back-off and
skipped, and neither stalls the queue nor pins the warm watermark."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ctxsearch.embeddings import Embedder
from ctxsearch.service.worker import Worker
from ctxsearch.store.erase import erase_project
from ctxsearch.store.queue import queue_depth
from ctxsearch.store.tiers import rebuild_warm, tier_state
from tests.conftest import event


class PoisonedEmbedder:
    """The real model, except that a batch holding the marker raises (or, with nan=True, comes
    back with NaN for that text), as a model or runtime failure would."""

    def __init__(self, inner: Embedder, marker: str, nan: bool = False):
        self.inner, self.marker, self.nan = inner, marker, nan
        self.batches: list[int] = []  # the size of each call

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        self.batches.append(len(texts))
        poisoned = [self.marker in t for t in texts]
        if any(poisoned) and not self.nan:
            raise RuntimeError("the model failed on this input")
        vectors = self.inner.embed(list(texts), batch_size=batch_size)
        for i, bad in enumerate(poisoned):
            if bad:
                vectors[i] = np.nan
        return vectors

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


@pytest.fixture
def paused_worker(service):
    """The service's worker stopped, so that the test's own worker (and embedder) does the work."""
    service.worker.stop()
    yield
    service.worker.start()


def failure(conn, project: str, doc_id: int) -> dict | None:
    row = conn.execute(
        "SELECT attempts, last_error, extract(epoch FROM next_attempt_at - now()), skipped_at"
        " FROM embed_failures WHERE project_id = %s AND id = %s",
        (project, doc_id),
    ).fetchone()
    return None if row is None else {"attempts": row[0], "error": row[1], "wait_s": float(row[2]), "skipped": row[3]}


def doc_id(conn, project: str, event_id: str) -> int:
    return conn.execute(
        "SELECT id FROM documents WHERE project_id = %s AND event_id = %s", (project, event_id)
    ).fetchone()[0]


def embedded(conn, project: str) -> dict[str, bool]:
    return dict(
        conn.execute(
            "SELECT coalesce(event_id, 'summary:' || session_id), embedding IS NOT NULL"
            " FROM documents WHERE project_id = %s",
            (project,),
        ).fetchall()
    )


def test_a_failing_document_is_isolated_retried_with_back_off_then_skipped(
    client, service, settings, project, paused_worker, wait_indexed
):
    marker = f"poison{uuid.uuid4().hex[:8]}"
    s = settings.model_copy(update={"embed_max_attempts": 3, "embed_retry_base_s": 30.0})
    embedder = PoisonedEmbedder(service.worker.embedder, marker)
    worker = Worker(service.db, embedder, s)
    # The poisoned event in a session of its own: the next event of a session carries the
    # previous one's text as context, and would be poisoned too.
    evs = [event(project, "good", n, "note", f"ordinary note {n} about the cache") for n in range(4)]
    evs.insert(2, event(project, "bad", 0, "note", f"{marker} cannot be embedded", id="bad"))
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    worker.drain(60)
    with service.db.connection() as conn:
        bad = doc_id(conn, project, "bad")
        state = embedded(conn, project)
        # The batch failed, its documents were tried one by one: all but the poisoned one have a vector.
        assert state.pop("bad") is False and all(state.values()), state
        assert max(embedder.batches) > 1 and embedder.batches.count(1) >= 2
        f = failure(conn, project, bad)
        assert f["attempts"] == 1 and f["skipped"] is None and "RuntimeError" in f["error"]
        assert 25 < f["wait_s"] <= 30
        # Pending while it backs off, and it holds the warm watermark below it.
        assert client.get(f"/v1/projects/{project}/stats").json()["pending"] == 1
        assert rebuild_warm(conn=conn, settings=s)[1] < bad

    # A later batch goes through while the poisoned one waits for its next attempt.
    more = [event(project, "later", n, "note", f"later note {n} on eviction") for n in range(3)]
    assert client.post("/v1/events", json={"events": more}).status_code == 202
    worker.drain(60)
    with service.db.connection() as conn:
        assert all(v for k, v in embedded(conn, project).items() if k != "bad")
        assert failure(conn, project, bad)["attempts"] == 1  # not tried again yet

        # Its back-off over (the clock moved on), it is tried again; each wait doubles.
        conn.execute("UPDATE embed_failures SET next_attempt_at = now() WHERE project_id = %s", (project,))
    worker = Worker(service.db, embedder, s.model_copy(update={"embed_retry_base_s": 0.3}))
    worker.run_once()
    with service.db.connection() as conn:
        f = failure(conn, project, bad)
    assert f["attempts"] == 2 and f["skipped"] is None and 0.45 < f["wait_s"] <= 0.6  # 0.3 s x 2
    worker.run_once()
    deadline = time.monotonic() + 30
    while True:
        with service.db.connection() as conn:
            f = failure(conn, project, bad)
        if f["skipped"] is not None:
            break
        assert f["attempts"] == 2 and time.monotonic() < deadline, f
        time.sleep(0.1)
        worker.run_once()
    assert f["attempts"] == 3  # the limit: skipped
    worker.run_once()
    with service.db.connection() as conn:
        assert failure(conn, project, bad)["attempts"] == 3  # never claimed again

        # Not pending, counted as failed, and no longer holding back the warm tier.
        assert wait_indexed(project, 5)["pending"] == 0
        assert queue_depth(conn=conn)["failed_documents"] >= 1
        gen, watermark, _, _ = rebuild_warm(conn=conn, settings=s)
        assert watermark > bad and tier_state(conn).watermark == watermark
        warm = {r[0] for r in conn.execute("SELECT id FROM warm_docs WHERE project_id = %s", (project,))}
        docs = {
            r[0]
            for r in conn.execute(
                "SELECT id FROM documents WHERE project_id = %s AND embedding IS NOT NULL AND id <= %s",
                (project, watermark),
            )
        }
        assert bad not in warm and warm == docs and len(docs) >= 7
    metrics = {
        s.name: s.value for fam in text_string_to_metric_families(client.get("/metrics").text) for s in fam.samples
    }
    assert metrics["ctxsearch_failed_documents"] >= 1
    with service.db.connection() as conn:
        erase_project(conn=conn, project_id=project)
        assert failure(conn, project, bad) is None


def test_a_nan_vector_fails_its_document_alone(client, service, settings, project, paused_worker):
    marker = f"nan{uuid.uuid4().hex[:8]}"
    s = settings.model_copy(update={"embed_max_attempts": 1})
    worker = Worker(service.db, PoisonedEmbedder(service.worker.embedder, marker, nan=True), s)
    evs = [event(project, "ok", n, "note", f"fine text {n}") for n in range(3)]
    evs.append(event(project, "nan", 0, "note", f"{marker} embeds to NaN", id="nan"))
    assert client.post("/v1/events", json={"events": evs}).status_code == 202
    worker.drain(60)
    with service.db.connection() as conn:
        state = embedded(conn, project)
        assert state.pop("nan") is False and all(state.values()), state
        f = failure(conn, project, doc_id(conn, project, "nan"))
        assert f["skipped"] is not None and "NaN" in f["error"]  # one attempt allowed: skipped at once
        erase_project(conn=conn, project_id=project)
