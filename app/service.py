"""The service object shared by the HTTP API, the CLI and the MCP server.

Routes, commands and tools are thin: they validate input with the schemas and call
these methods, which call the data-access functions with a pooled connection.
"""

from __future__ import annotations

import logging
from datetime import datetime

from app.condense import condense_session, get_session
from app.config import Settings
from app.db import Database, connect_database
from app.ingest import ingest_events
from app.schemas import (
    ArmRanks, ArmScores, EventIn, IngestResponse, KeyEvent, ProjectStats, SearchHit, SearchRequest,
    SearchResponse, SessionPublic,
)
from app.search import SearchParams, hit_id, timed_search
from app.summaries import set_agent_summary
from app.worker import Worker
from embeddings import Embedder, get_embedder

log = logging.getLogger(__name__)


class NotFound(LookupError):
    pass


class Service:
    def __init__(self, settings: Settings, db: Database, embedder: Embedder):
        self.settings = settings
        self.db = db
        self.embedder = embedder
        self.worker = Worker(db, embedder, settings)

    @classmethod
    def start(cls, settings: Settings, *, run_worker: bool | None = None) -> "Service":
        db = connect_database(settings)
        embedder = get_embedder(settings.embed_backend, settings.embed_threads, settings.models_dir)
        svc = cls(settings, db, embedder)
        if settings.run_worker if run_worker is None else run_worker:
            svc.worker.start()
        return svc

    def close(self) -> None:
        self.worker.stop()
        self.db.close()

    # -- write path -------------------------------------------------------
    def ingest(self, events: list[EventIn]) -> IngestResponse:
        with self.db.connection() as conn:
            r = ingest_events(conn=conn, events=events)
        return IngestResponse(accepted=r.accepted, duplicates=r.duplicates)

    def put_summary(self, project_id: str, session_id: str, summary: str) -> None:
        with self.db.connection() as conn:
            set_agent_summary(conn=conn, project_id=project_id, session_id=session_id, summary=summary)

    # -- read path --------------------------------------------------------
    def search(self, req: SearchRequest, *, offset: int = 0) -> SearchResponse:
        s = self.settings
        weights = req.weights
        params = SearchParams(
            query=req.query, project_id=req.project_id, session_id=req.session_id,
            types=[t.value for t in req.types] if req.types else None, files=req.files,
            since=req.since, until=req.until, kinds=req.kinds, limit=req.limit, offset=offset,
            mode=req.mode, fusion=req.fusion, rrf_k=req.rrf_k or s.rrf_k,
            weight_vector=weights.vector if weights else 1.0, weight_text=weights.text if weights else 1.0,
            candidates=max(req.limit * s.overfetch, s.min_candidates),
        )
        with self.db.connection() as conn:
            rows, took = timed_search(conn=conn, params=params, embedder=self.embedder)
        hits = [
            SearchHit(
                id=hit_id(r), kind=r["kind"], project_id=r["project_id"], session_id=r["session_id"],
                timestamp=r["ts"], type=r["type"], title=r["title"], snippet=r["snippet"], files=list(r["files"]),
                score=float(r["score"]), ranks=ArmRanks(vector=r["vector_rank"], text=r["text_rank"]),
                scores=ArmScores(vector=r["vector_score"], text=r["text_score"]) if req.explain else None,
            )
            for r in rows
        ]
        return SearchResponse(results=hits, mode=req.mode, took_ms=round(took, 3))

    def session(self, project_id: str, session_id: str) -> SessionPublic:
        with self.db.connection() as conn:
            row = get_session(conn=conn, project_id=project_id, session_id=session_id)
            if row is None:
                raise NotFound(f"no session {session_id!r} in project {project_id!r}")
            if row["condensed_at"] is None or self._is_dirty(conn, project_id, session_id):
                with conn.transaction():
                    condense_session(conn=conn, project_id=project_id, session_id=session_id,
                                     n_key_events=self.settings.key_events,
                                     summary_max_chars=self.settings.summary_max_chars)
                row = get_session(conn=conn, project_id=project_id, session_id=session_id)
        source = "agent" if row["agent_summary"] else ("extracted" if row["summary"] else "none")
        return SessionPublic(
            project_id=row["project_id"], session_id=row["session_id"], started_at=row["started_at"],
            ended_at=row["ended_at"], event_count=row["event_count"],
            summary=row["agent_summary"] or row["summary"], summary_source=source, metrics=row["metrics"],
            key_events=[KeyEvent(**k) for k in row["key_events"]], condensed_at=row["condensed_at"],
        )

    @staticmethod
    def _is_dirty(conn, project_id: str, session_id: str) -> bool:
        r = conn.execute("SELECT dirty FROM sessions WHERE project_id = %s AND session_id = %s",
                         (project_id, session_id)).fetchone()
        return bool(r and r[0])

    def stats(self, project_id: str) -> ProjectStats:
        with self.db.connection() as conn:
            events, sessions, documents, pending = conn.execute(
                "SELECT (SELECT count(*) FROM events WHERE project_id = %(p)s),"
                " (SELECT count(*) FROM sessions WHERE project_id = %(p)s),"
                " (SELECT count(*) FROM documents WHERE project_id = %(p)s),"
                # a changed session owes a (re)written summary document
                " (SELECT count(*) FROM documents WHERE project_id = %(p)s AND embedding IS NULL)"
                " + (SELECT count(*) FROM sessions WHERE project_id = %(p)s AND dirty)",
                {"p": project_id},
            ).fetchone()
        return ProjectStats(project_id=project_id, events=events, sessions=sessions, documents=documents,
                            pending=pending)

    def ready(self) -> bool:
        return self.db.ping()


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
