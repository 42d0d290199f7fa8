"""The service object shared by the HTTP API, the CLI and the MCP server.

Routes, commands and tools are thin: they validate input with the schemas and call
these methods, which call the data-access functions with a pooled connection.
"""

from __future__ import annotations

import difflib
import logging
import threading
import time
from collections import Counter
from datetime import datetime
from functools import cached_property

import psycopg

from ctxsearch.auth import Principal
from ctxsearch.config import Settings
from ctxsearch.domain.condense import first_sentence
from ctxsearch.domain.confidence import confidence
from ctxsearch.domain.grouping import RankedSession, rank_sessions
from ctxsearch.domain.privacy import redact_events, redact_summary
from ctxsearch.embeddings import Embedder, get_embedder
from ctxsearch.schemas import (
    ArmRanks,
    ArmScores,
    Erased,
    EventFull,
    EventIn,
    EventList,
    IngestResponse,
    KeyEvent,
    ProjectList,
    ProjectStats,
    ProjectSummary,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SessionBrief,
    SessionHit,
    SessionList,
    SessionPublic,
    Timeline,
    TimelineEvent,
)
from ctxsearch.service.admission import Admission
from ctxsearch.service.healer import EmbeddedWatchdog
from ctxsearch.service.paging import (
    MAX_PAGED_RESULTS,
    MAX_PAGED_SESSIONS,
    InvalidCursor,
    PageState,
    TokenCounter,
    decode_cursor,
    decode_keyset,
    encode_cursor,
    encode_keyset,
    fit_budget,
    fit_sessions,
    remember,
)
from ctxsearch.service.worker import Worker
from ctxsearch.store.browse import get_events, list_projects, project_exists, sessions_page, timeline
from ctxsearch.store.db import Database, DatabaseUnavailable, connect_database
from ctxsearch.store.ingest import ingest_events
from ctxsearch.store.migrations import MigrationError, pending_migrations
from ctxsearch.store.projects import has_unembedded, last_document_id, project_stats
from ctxsearch.store.queue import queue_depth
from ctxsearch.store.search import SUMMARY_PREFIX, SearchParams, headlines, hit_id, timed_search, tuning
from ctxsearch.store.secrets import cursor_secret as stored_cursor_secret
from ctxsearch.store.sessions import read_session, session_overviews
from ctxsearch.store.summaries import set_agent_summary

log = logging.getLogger(__name__)


def closest_hint(wanted: str, known: list[str]) -> str:
    """'did you mean ...' for a name that is not among `known`: same name in another case first,
    then the most similar ones."""
    if not known:
        return "nothing is stored yet"
    close = [k for k in known if k.casefold() == wanted.casefold()]
    close += [k for k in difflib.get_close_matches(wanted, known, n=3, cutoff=0.5) if k not in close]
    if close:
        return "did you mean " + " or ".join(repr(k) for k in close[:3]) + "?"
    shown = ", ".join(repr(k) for k in known[:10])
    return f"stored projects: {shown}" + (f" and {len(known) - 10} more" if len(known) > 10 else "")


def _event_full(r: dict) -> EventFull:
    return EventFull(
        id=r["event_id"],
        project_id=r["project_id"],
        session_id=r["session_id"],
        timestamp=r["ts"],
        type=r["type"],
        tool=r["tool"],
        files=r["files"],
        tokens=r["tokens"],
        content=r["content"],
        payload=r["payload"],
        received_at=r["received_at"],
    )


# group=session: the arms reach at most this many documents deeper on later pages.
MAX_SESSION_DEPTH = 5000


class NotFound(LookupError):
    pass


class Service:
    def __init__(self, settings: Settings, db: Database, embedder: Embedder, worker_embedder: Embedder | None = None):
        self.settings = settings
        self.db = db
        self.embedder = embedder
        self.worker = Worker(db, worker_embedder or embedder, settings)
        # Credentials redacted by this process, per kind (for /metrics).
        self.redactions: Counter[str] = Counter()
        self._redactions_lock = threading.Lock()
        self.admission = Admission(
            {"search": settings.max_concurrent_searches, "ingest": settings.max_concurrent_ingests}
        )
        self.watchdog = None
        if db.embedded_dir is not None and settings.embedded_restart:
            self.watchdog = EmbeddedWatchdog(db, db.embedded_dir, give_up_s=settings.embedded_give_up_s)
            self.watchdog.start()

    @classmethod
    def start(cls, settings: Settings, *, run_worker: bool | None = None, load_model: bool = True) -> Service:
        """Connect (and migrate), load the model and start the worker. `load_model=False` is for
        callers that only write (an import): they do not pay for loading the model."""
        db = connect_database(settings)
        run_worker = settings.run_worker if run_worker is None else run_worker
        embedder = (
            get_embedder(settings.embed_backend, settings.embed_threads, settings.models_dir)
            if load_model or run_worker
            else None
        )
        # The worker gets a model of its own: a query must never wait behind a document batch.
        worker_embedder = (
            Embedder(settings.embed_backend, settings.embed_threads, cache_dir=settings.models_dir)
            if run_worker
            else None
        )
        svc = cls(settings, db, embedder, worker_embedder)
        if run_worker:
            svc.worker.start()
        return svc

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()  # first: the last user's close stops the server on purpose
        self.worker.stop()
        self.db.close()

    # -- write path -------------------------------------------------------
    def _count_redactions(self, counts: Counter[str]) -> int:
        if counts:
            with self._redactions_lock:
                self.redactions.update(counts)
        return sum(counts.values())

    def ingest(self, events: list[EventIn]) -> IngestResponse:
        """Store a batch (redacted first; see ctxsearch.domain.privacy); idempotent per event id."""
        with self.admission.slot("ingest"):
            return self._ingest(events)

    def _ingest(self, events: list[EventIn]) -> IngestResponse:
        events, counts = redact_events(events)
        redacted = self._count_redactions(counts)
        # A deadlock victim's transaction stored nothing, and ingest is idempotent: try again.
        for attempt in range(3):
            try:
                with self.db.connection() as conn:
                    r = ingest_events(conn=conn, events=events, context_chars=self.settings.event_context_chars)
                self.db.wrote()
                break
            except psycopg.errors.DeadlockDetected:
                if attempt == 2:
                    raise DatabaseUnavailable(
                        "database busy: the batch lost a lock conflict three times; retry it"
                    ) from None
                log.warning("ingest: deadlock, retrying the batch")
        return IngestResponse(accepted=r.accepted, duplicates=r.duplicates, redactions=redacted)

    def put_summary(self, project_id: str, session_id: str, summary: str) -> None:
        summary, counts = redact_summary(summary)
        self._count_redactions(counts)
        with self.db.connection() as conn:
            set_agent_summary(conn=conn, project_id=project_id, session_id=session_id, summary=summary)

    # -- read path --------------------------------------------------------
    def search(self, req: SearchRequest, *, offset: int = 0) -> SearchResponse:
        """One page of results; `req.cursor` continues a list, `req.max_tokens` bounds the page.

        Raises InvalidCursor for a cursor that is not this query's, Overloaded when as many
        searches run as max_concurrent_searches allows.
        """
        with self.admission.slot("search"):
            return self._search(req, offset)

    def _search(self, req: SearchRequest, offset: int) -> SearchResponse:
        s = self.settings
        state = decode_cursor(req.cursor, req, self.cursor_secret) if req.cursor else PageState(group=req.group)
        if req.group == "session":
            return self._search_sessions(req, state)
        params = self._params(
            req,
            state,
            limit=req.limit + 1,
            offset=offset,
            candidates=max(req.limit * s.overfetch, s.min_candidates),
        )
        with self.db.connection() as conn:
            rows, took = timed_search(conn=conn, params=params, embedder=self.embedder)
        more = len(rows) > req.limit
        rows = rows[: req.limit]
        hits = [self._hit(r, req.mode, req.explain) for r in rows]
        cut = self._confident(req, hits)
        if cut < len(hits):
            rows, hits, more = rows[:cut], hits[:cut], False
        truncated = False
        if req.max_tokens is not None and hits:
            kept, truncated = fit_budget(hits, req.max_tokens, self.token_counter)
            more = more or len(kept) < len(hits)
            hits = kept
        next_cursor = None
        if rows:
            state.snapshot_id = rows[0]["snapshot_id"]
        if more and len(state.seen_ids) + len(hits) < MAX_PAGED_RESULTS:
            state = remember(state, [(r["doc_id"], h) for r, h in zip(rows, hits, strict=False)])
            next_cursor = encode_cursor(state, req, self.cursor_secret)
        return SearchResponse(
            results=hits,
            mode=req.mode,
            fusion=params.fusion,
            took_ms=round(took, 3),
            truncated=truncated,
            next_cursor=next_cursor,
        )

    def _confident(self, req: SearchRequest, ranked: list[SearchHit] | list[SessionHit]) -> int:
        """How many of the ranked answers come before the first below the request's
        min_confidence: the list ends there (answers are in score order, and confidence
        follows the score closely), with no page after it and no gaps in it."""
        floor = self.settings.min_confidence if req.min_confidence is None else req.min_confidence
        return next((i for i, h in enumerate(ranked) if h.confidence < floor), len(ranked))

    def _search_sessions(self, req: SearchRequest, state: PageState) -> SearchResponse:
        """group=session: the fused ranking's best documents grouped into sessions
        (rank_sessions), each session with its best hits as evidence."""
        s = self.settings
        t0 = time.perf_counter()
        # A pool that does not depend on the page size below session_pool: a page of 3
        # sessions is the first 3 of a page of 10.
        pool = max(s.session_pool, (req.limit + 1) * s.session_pool_per_result)
        # Later pages leave the returned sessions out of the same fused ranking; the arms reach
        # as much deeper as those sessions took up.
        depth = min(state.seen_rows, MAX_SESSION_DEPTH)
        params = self._params(req, state, limit=pool, candidates=pool + depth, snippets=False)
        with self.db.connection() as conn:
            rows, _ = timed_search(conn=conn, params=params, embedder=self.embedder)
            ranked = rank_sessions(
                [(r["session_id"], float(r["score"])) for r in rows],
                evidence_weight=s.session_evidence_weight,
                evidence_hits=s.session_evidence_hits,
            )
            page = ranked[: req.limit]
            evidence = [i for r in page for i in r.rows[: s.session_snippets]]
            snippets = headlines(
                conn=conn, project_id=req.project_id, query=req.query, doc_ids=[rows[i]["doc_id"] for i in evidence]
            )
            overviews = session_overviews(
                conn=conn, project_id=req.project_id, session_ids=[r.session_id for r in page]
            )
        sessions = [
            self._session_hit(r, rows, snippets, overviews.get(r.session_id), req.mode, req.explain) for r in page
        ]
        # A full pool may have left sessions out: the next page ranks what is left.
        more = len(ranked) > req.limit or len(rows) >= pool
        cut = self._confident(req, sessions)
        if cut < len(sessions):
            sessions, more = sessions[:cut], False
        truncated = False
        if req.max_tokens is not None and sessions:
            kept, truncated = fit_sessions(sessions, req.max_tokens, self.token_counter)
            more = more or len(kept) < len(sessions)
            sessions = kept
        if rows:
            state.snapshot_id = rows[0]["snapshot_id"]
        next_cursor = None
        seen = [*state.seen_sessions, *(h.session_id for h in sessions)]
        if more and sessions and len(seen) < MAX_PAGED_SESSIONS:
            returned = {h.session_id for h in sessions}
            used = state.seen_rows + sum(1 for r in rows if r["session_id"] in returned)
            state = PageState(snapshot_id=state.snapshot_id, group="session", seen_sessions=seen, seen_rows=used)
            next_cursor = encode_cursor(state, req, self.cursor_secret)
        took = (time.perf_counter() - t0) * 1000
        return SearchResponse(
            results=[],
            sessions=sessions,
            mode=req.mode,
            fusion=params.fusion,
            took_ms=round(took, 3),
            truncated=truncated,
            next_cursor=next_cursor,
        )

    def _session_hit(
        self,
        ranked: RankedSession,
        rows: list[dict],
        snippets: dict[int, str],
        overview: dict | None,
        mode: str,
        explain: bool,
    ) -> SessionHit:
        hits = [
            self._hit({**rows[i], "snippet": snippets.get(rows[i]["doc_id"], "")}, mode, explain)
            for i in ranked.rows[: self.settings.session_snippets]
        ]
        best = hits[0]
        summary = (overview or {}).get("summary")
        return SessionHit(
            session_id=ranked.session_id,
            project_id=best.project_id,
            score=ranked.score,
            confidence=best.confidence,
            title=first_sentence(summary, 160) if summary else best.title,
            started_at=(overview or {}).get("started_at"),
            ended_at=(overview or {}).get("ended_at"),
            timestamp=best.timestamp,
            matched=ranked.matched,
            hits=hits,
        )

    def _params(self, req: SearchRequest, state: PageState, **page) -> SearchParams:
        """The request's query and filters as SearchParams, with the server's ranking settings."""
        s = self.settings
        weights = req.weights
        fusion = tuning(s, req.fusion, req.query)
        if req.rrf_k:
            fusion["rrf_k"] = req.rrf_k
        if weights:
            fusion.update(weight_vector=weights.vector, weight_text=weights.text)
        return SearchParams(
            query=req.query,
            project_id=req.project_id,
            session_id=req.session_id,
            types=[t.value for t in req.types] if req.types else None,
            files=req.files,
            since=req.since,
            until=req.until,
            kinds=req.kinds,
            mode=req.mode,
            max_id=state.snapshot_id,
            exclude_ids=state.seen_ids,
            exclude_summaries=state.seen_summaries,
            exclude_sessions=state.seen_sessions,
            **page,
            **fusion,
        )

    @staticmethod
    def _hit(r: dict, mode: str, explain: bool) -> SearchHit:
        return SearchHit(
            id=hit_id(r),
            kind=r["kind"],
            project_id=r["project_id"],
            session_id=r["session_id"],
            timestamp=r["ts"],
            type=r["type"],
            title=r["title"],
            snippet=r["snippet"],
            files=list(r["files"]),
            score=float(r["score"]),
            confidence=confidence(mode, r["vector_score"], r["text_norm"]),
            ranks=ArmRanks(vector=r["vector_rank"], text=r["text_rank"]),
            scores=ArmScores(
                vector=r["vector_score"],
                text=r["text_score"],
                text_norm=r["text_norm"],
                vector_part=r["vector_part"],
                text_part=r["text_part"],
            )
            if explain
            else None,
        )

    @cached_property
    def cursor_secret(self) -> str:
        """What signs search cursors: the setting, else this installation's own secret."""
        if self.settings.cursor_secret:
            return self.settings.cursor_secret
        with self.db.connection() as conn:
            return stored_cursor_secret(conn=conn)

    @cached_property
    def token_counter(self) -> TokenCounter:
        return TokenCounter(getattr(getattr(self.embedder, "model", None), "tokenizer", None))

    def session(self, project_id: str, session_id: str) -> SessionPublic:
        """The session as it is now; a read never writes (changes since the last condense are
        computed in memory)."""
        with self.db.connection() as conn:
            row = read_session(
                conn=conn,
                project_id=project_id,
                session_id=session_id,
                n_key_events=self.settings.key_events,
                summary_max_chars=self.settings.summary_max_chars,
            )
        if row is None:
            raise NotFound(f"no session {session_id!r} in project {project_id!r}")
        source = "agent" if row["agent_summary"] else ("extracted" if row["summary"] else "none")
        return SessionPublic(
            project_id=row["project_id"],
            session_id=row["session_id"],
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            event_count=row["event_count"],
            summary=row["agent_summary"] or row["summary"],
            summary_source=source,
            metrics=row["metrics"] or {},
            key_events=[KeyEvent(**k) for k in row["key_events"] or []],
            condensed_at=row["condensed_at"],
        )

    def forget_session(self, project_id: str, session_id: str) -> Erased:
        """Erase a session everywhere it is stored; NotFound when the project has no such session."""
        from ctxsearch.store.erase import erase_session

        with self.db.connection() as conn:
            counts = erase_session(conn=conn, project_id=project_id, session_id=session_id)
        if not counts.get("sessions") and not counts.get("events"):
            raise NotFound(f"no session {session_id!r} in project {project_id!r}")
        return Erased(
            project_id=project_id,
            session_id=session_id,
            sessions=counts.get("sessions", 0),
            events=counts.get("events", 0),
            documents=counts.get("documents", 0),
        )

    def forget_project(self, project_id: str) -> Erased:
        """Erase a project everywhere it is stored; NotFound when nothing is stored for it."""
        from ctxsearch.store.erase import erase_project

        with self.db.connection() as conn:
            counts = erase_project(conn=conn, project_id=project_id)
        if not any(counts.get(k) for k in ("sessions", "events", "documents")):
            raise NotFound(f"nothing is stored for project {project_id!r}")
        return Erased(
            project_id=project_id,
            sessions=counts.get("sessions", 0),
            events=counts.get("events", 0),
            documents=counts.get("documents", 0),
        )

    def sessions(
        self, project_id: str, limit: int = 20, exclude: str | None = None, cursor: str | None = None
    ) -> SessionList:
        """A page of the project's sessions, most recent first (`exclude`: leave one out, e.g. the
        current one); `next_cursor` continues after it."""
        after = None
        if cursor is not None:
            ended, session_id = decode_keyset(cursor, self.cursor_secret, 2)
            try:
                if not isinstance(session_id, str) or not (ended is None or isinstance(ended, str)):
                    raise ValueError
                after = (datetime.fromisoformat(ended) if ended else None, session_id)
            except ValueError:
                raise InvalidCursor("cursor: not a cursor of this listing") from None
        with self.db.connection() as conn:
            rows = sessions_page(conn=conn, project_id=project_id, limit=limit + 1, after=after, exclude=exclude)
        more, rows = len(rows) > limit, rows[:limit]
        items = [
            SessionBrief(**r, title=first_sentence(r["summary"], 160) if r["summary"] else r["session_id"])
            for r in rows
        ]
        last = rows[-1] if more else None
        return SessionList(
            sessions=items,
            next_cursor=encode_keyset(
                [last["ended_at"].isoformat() if last["ended_at"] else None, last["session_id"]], self.cursor_secret
            )
            if last
            else None,
        )

    def projects(self, principal: Principal | None = None) -> ProjectList:
        """The projects the principal may read (every one without keys), most recently active first."""
        only = principal.projects if principal is not None else None
        with self.db.connection() as conn:
            rows = list_projects(conn=conn, only=only)
        return ProjectList(projects=[ProjectSummary(**r) for r in rows])

    def require_project(self, project_id: str, principal: Principal | None = None) -> None:
        """NotFound naming the closest stored projects the principal may read, unless project_id
        has something stored: for callers who would otherwise hear only an empty answer."""
        with self.db.connection() as conn:
            if project_exists(conn=conn, project_id=project_id):
                return
        known = [p.project_id for p in self.projects(principal).projects]
        raise NotFound(f"no project {project_id!r} is stored; {closest_hint(project_id, known)}")

    def events(self, project_id: str, event_ids: list[str]) -> EventList:
        """Events in full, in the order asked; `missing` lists ids the project has no event for.
        A session summary's id (summary:<session>) reads as its session's summary."""
        summaries = [i.removeprefix(SUMMARY_PREFIX) for i in event_ids if i.startswith(SUMMARY_PREFIX)]
        with self.db.connection() as conn:
            rows = get_events(conn=conn, project_id=project_id, event_ids=event_ids)
            overviews = session_overviews(conn=conn, project_id=project_id, session_ids=summaries)
        found = {r["event_id"]: _event_full(r) for r in rows}
        for session_id, o in overviews.items():
            if o["summary"]:
                found[SUMMARY_PREFIX + session_id] = EventFull(
                    id=SUMMARY_PREFIX + session_id,
                    project_id=project_id,
                    session_id=session_id,
                    timestamp=o["ended_at"],
                    type="summary",
                    tool=None,
                    files=[],
                    tokens=None,
                    content=o["summary"],
                    payload=None,
                    received_at=o["ended_at"],
                )
        wanted = list(dict.fromkeys(event_ids))
        return EventList(events=[found[i] for i in wanted if i in found], missing=[i for i in wanted if i not in found])

    def event(self, project_id: str, event_id: str) -> EventFull:
        got = self.events(project_id, [event_id]).events
        if not got:
            raise NotFound(f"no event {event_id!r} in project {project_id!r}")
        return got[0]

    def timeline(
        self,
        project_id: str,
        session_id: str,
        around: str | None = None,
        before: int = 5,
        after: int = 5,
        max_chars: int | None = 1000,
    ) -> Timeline:
        """Consecutive events of a session around one (or from its start), each cut at max_chars."""
        with self.db.connection() as conn:
            got = timeline(
                conn=conn, project_id=project_id, session_id=session_id, around=around, before=before, after=after
            )
        if got is None:
            if around is None:
                raise NotFound(f"no session {session_id!r} in project {project_id!r}")
            raise NotFound(f"around: no event {around!r} in session {session_id!r} of project {project_id!r}")
        rows, total, first = got
        events = []
        for i, r in enumerate(rows):
            text = r["content"]
            cut = max_chars is not None and len(text) > max_chars
            events.append(
                TimelineEvent(
                    id=r["event_id"],
                    position=first + i,
                    timestamp=r["ts"],
                    type=r["type"],
                    tool=r["tool"],
                    files=r["files"],
                    content=text[:max_chars] if cut else text,
                    content_chars=len(text),
                    truncated=cut,
                )
            )
        return Timeline(
            project_id=project_id,
            session_id=session_id,
            around=around,
            total=total,
            events=events,
            more_before=first > 0,
            more_after=first + len(rows) < total,
        )

    def stats(self, project_id: str) -> ProjectStats:
        with self.db.connection() as conn:
            events, sessions, documents, pending = project_stats(conn=conn, project_id=project_id)
        return ProjectStats(
            project_id=project_id, events=events, sessions=sessions, documents=documents, pending=pending
        )

    def wait_embedded(self, project_id: str, timeout_s: float) -> bool:
        """Wait until every document of the project stored so far has its vector; False on timeout."""
        with self.db.connection() as conn:
            upto = last_document_id(conn=conn, project_id=project_id)
        if upto is None:
            return True
        deadline = time.monotonic() + timeout_s
        while True:
            with self.db.connection() as conn:
                pending = has_unembedded(conn=conn, project_id=project_id, upto=upto)
            if not pending:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def unrecoverable(self) -> str | None:
        """Why this process cannot recover by itself, if it cannot (for /healthz): its embedded
        database will not start again, or a worker thread it runs has died."""
        if self.watchdog is not None and (why := self.watchdog.unrecoverable()):
            return why
        return self.worker.died()

    def ready(self) -> bool:
        return self.readiness() is None

    def readiness(self) -> str | None:
        """None when the database answers and every migration is applied, else why not."""
        try:
            # Short: a probe should hear "not ready" before its own timeout.
            with self.db.connection(timeout=min(2.0, self.settings.pool_timeout_s)) as conn:
                missing = pending_migrations(conn=conn)
        except (DatabaseUnavailable, MigrationError) as exc:
            return str(exc)
        if missing:
            return f"migrations not applied: {', '.join(missing)}"
        return self.db.writes_failing()

    def queue_state(self) -> dict[str, float] | None:
        """Embed-queue depth and freshness lag across all projects; None when the database is down."""
        try:
            with self.db.connection(timeout=min(2.0, self.settings.pool_timeout_s)) as conn:
                return queue_depth(conn=conn)
        except DatabaseUnavailable:
            return None
