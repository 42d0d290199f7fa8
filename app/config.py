"""One settings object, read by the API, the CLI, the MCP server and the worker alike."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_CONFIG = SettingsConfigDict(env_prefix="CTXSEARCH_", env_file=".env", extra="ignore")


class Limits(BaseSettings):
    """Request bounds; each refusal names its setting. The request schemas read them once
    at import (so they appear in the OpenAPI document): set them in the environment."""

    model_config = _CONFIG

    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_batch_events: int = Field(default=1000, ge=1)
    max_content_chars: int = Field(default=100_000, ge=1)
    max_payload_bytes: int = Field(default=64 * 1024, ge=1)
    max_query_chars: int = Field(default=2000, ge=1)
    max_limit: int = Field(default=100, ge=1)


class Settings(Limits):
    model_config = _CONFIG

    # Storage. With no database_url an embedded PostgreSQL (pgserver) runs in data_dir.
    database_url: str | None = None
    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("ctxsearch")))
    # The embedded server is started again by a watchdog when its postmaster dies; when that
    # keeps failing for embedded_give_up_s, /healthz reports the process unable to recover.
    embedded_restart: bool = True
    embedded_give_up_s: float = Field(default=60.0, gt=0)
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_timeout_s: float = 5.0
    # Overload is shed, not queued: beyond these many searches (HTTP, MCP) or ingest batches
    # running at once in this process, a request gets 503 with Retry-After at once. 0: no bound.
    # Together they stay under pool_max_size, so an admitted request never waits for a connection.
    # Searches are CPU work (the query's embedding, both arms): two per core, at most 6.
    max_concurrent_searches: int = Field(default_factory=lambda: min(2 * (os.cpu_count() or 1), 6), ge=0, le=1000)
    max_concurrent_ingests: int = Field(default=3, ge=0, le=1000)

    # HTTP
    host: str = "127.0.0.1"
    port: int = 8080
    # API keys: {"<key>": ["project", ...]} or {"<key>": ["*"]} for every project. With
    # none set, `serve` binds only to loopback unless allow_unauthenticated is true.
    api_keys: dict[str, list[str]] = Field(default_factory=dict, repr=False)
    allow_unauthenticated: bool = False
    # Per-key token bucket (in process: each API instance limits on its own). 0 turns it off.
    rate_limit_per_s: float = Field(default=100.0, ge=0)
    rate_limit_burst: int = Field(default=200, ge=1)
    # Failed authentications per client address (token bucket): beyond, 429 before any key is checked.
    auth_failures_per_s: float = Field(default=1.0, ge=0)
    auth_failures_burst: int = Field(default=20, ge=1)
    # What one client may hold of the server (ctxsearch.http.server): a request's headers in
    # all, the time to send them, the longest pause inside a body, and open connections.
    max_header_bytes: int = Field(default=64 * 1024, ge=4096)
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)

    # Capture (importers and the hook): where to send (a server's URL and key; unset means
    # the local data dir, or the `serve` running on it), and projects never to capture.
    url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    # Globs of project ids, separated by commas or whitespace, e.g. "secret-*, client-acme".
    exclude_projects: str = ""

    # Condense
    key_events: int = Field(default=10, ge=1, le=100)
    summary_max_chars: int = 1500

    # An event is embedded with the end of the event before it in its session (0: alone).
    event_context_chars: int = Field(default=300, ge=0, le=2000)

    # Embed worker
    run_worker: bool = True  # serve runs a worker thread unless told not to
    embed_batch_size: int = Field(default=64, ge=1, le=1024)
    worker_poll_s: float = 0.5
    # A document the embedder fails on is retried after embed_retry_base_s, then twice as
    # long each time (at most an hour), and skipped after embed_max_attempts attempts: it
    # leaves the queue and no longer holds back the warm tier (ctxsearch_failed_documents).
    embed_max_attempts: int = Field(default=5, ge=1)
    embed_retry_base_s: float = Field(default=5.0, gt=0)
    # onnx-int8 embeds ~4x faster than torch fp32 on CPU with SciFact nDCG@10 within 0.01
    # (see README, Performance); torch stays available as the fp32 reference.
    embed_backend: Literal["torch", "onnx", "onnx-int8"] = "onnx-int8"
    embed_threads: int | None = None
    model_cache_dir: Path | None = None  # where ONNX exports are kept; default data_dir/models

    # Tiers: the warm materialized view is rebuilt once the hot tier holds this many
    # documents, or this long after the last rebuild when anything is hot.
    hot_max_docs: int = 20_000
    refresh_interval_s: float = 300.0
    vector_index: Literal["ivfflat", "hnsw"] = "ivfflat"
    ivfflat_min_rows: int = 5_000  # below this an exact scan is faster and exact
    # Lists scanned per ivfflat search (each project index has rows/1000 lists). At 1M
    # documents on the bench corpus, 8 kept filtered recall@10 at 0.975 (10: 0.985, 6: 0.964)
    # and took the vector arm from ~11 to ~8 ms.
    ivfflat_probes: int = Field(default=8, ge=1)
    hnsw_ef_search: int = Field(default=100, ge=1)
    # Projects with at least this many warm documents get an ANN index of their own
    # (filtered recall); smaller ones are scanned exactly. 0 turns it off.
    project_index_min_rows: int = Field(default=10_000, ge=0)

    # Search
    # How the arms combine by default. convex: w x cosine + (1 - w) x BM25 over the query's
    # idf sum, w = 0.55 for words, down to 0.45 for a query a quarter of whose tokens or more look
    # like code (identifiers, paths, exception names: ctxsearch.domain.query_shape). Chosen by
    # leave-one-unit-out cross-validation over SciFact folds, LoCoMo conversations and
    # agent-session projects (`ctxsearch tune`; README, Relevance): it beat RRF on all three
    # kinds of data and the best arm on SciFact and LoCoMo, and tied the text arm on the
    # agent sessions, where RRF lost to it.
    fusion: Literal["convex", "rrf", "weighted"] = "convex"
    convex_weight_vector: float = Field(default=0.55, ge=0, le=1)  # the text arm gets the rest
    convex_weight_vector_code: float = Field(default=0.45, ge=0, le=1)
    rrf_k: int = Field(default=60, ge=1)
    # RRF's weight of each arm (a request's `weights` overrides them). The text
    # arm leads: on dev data 1.5 left SciFact hybrid nDCG@10 unchanged (0.714) and lifted
    # LoCoMo turn recall@10 from 0.702 to 0.719, where MiniLM alone is weak (0.55).
    weight_vector: float = Field(default=1.0, ge=0, le=100)
    weight_text: float = Field(default=1.5, ge=0, le=100)
    # Hits below this confidence are left out unless a request sets its own. 0 keeps the ranking
    # whole: conversational memories (LoCoMo) are relevant at confidences where unrelated code
    # queries are not, so no single bar keeps both; the hook and agents pass their own.
    min_confidence: float = Field(default=0.0, ge=0, le=1)
    overfetch: int = Field(default=5, ge=1, le=50)  # each arm fetches limit * overfetch
    min_candidates: int = 50
    # Signs search cursors. Unset: the installation's own random secret, made by a migration
    # and kept in the database (sql/0004_cursor_secret.sql), so every API process of one
    # database shares it and a cursor from another installation is refused.
    cursor_secret: str | None = Field(default=None, min_length=16)
    # The text arm's Okapi BM25 (tuned on SciFact's train judgments). The scorer and the warm
    # tier's top lists (built with each rebuild) both use these three.
    bm25_k1: float = Field(default=1.2, gt=0, le=10)
    bm25_b: float = Field(default=0.75, ge=0, le=1)
    text_context_weight: float = Field(default=0.5, ge=0, le=1)  # a term of the previous event counts this much
    # Warm text candidates: per project lexeme, the warm tier keeps its `text_top_docs`
    # best documents (ctxsearch_build_text_top in sql/repeatable/R__tiers.sql); the best `text_pool` of the lists' union are scored
    # exactly. On the 1M bench corpus (every query term common) 2000/200 kept hybrid
    # recall@10 at 0.975 of exhaustive BM25 at ~10 ms for the text arm; lists are
    # complete below 2000 matches, so smaller projects are scored exhaustively.
    text_top_docs: int = Field(default=2000, ge=10)
    text_pool: int = Field(default=200, ge=10)
    # Sessions as answers (`group: "session"`, ctxsearch.domain.grouping.rank_sessions): the
    # best `session_pool` documents of the fused ranking (at least `session_pool_per_result`
    # per session asked for) are grouped by session. A session scores its best document's
    # score plus `session_evidence_weight` x the sum of its next `session_evidence_hits`
    # best. Cross-validated like the fusion (`ctxsearch tune`, its sessions_cv block): 0.3 x
    # the next two was chosen for 12 of 15 held-out units. Each session shows its best
    # `session_snippets` documents as evidence.
    session_pool: int = Field(default=200, ge=10, le=5000)
    session_pool_per_result: int = Field(default=10, ge=1, le=100)
    session_evidence_weight: float = Field(default=0.3, ge=0, le=10)
    session_evidence_hits: int = Field(default=2, ge=0, le=50)
    session_snippets: int = Field(default=3, ge=1, le=10)

    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    @field_validator("api_keys")
    @classmethod
    def _keys(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for key, projects in v.items():
            if not key.strip():
                raise ValueError("an API key must not be blank")
            if not projects or any(not p for p in projects):
                # Never echo the key itself.
                raise ValueError('each API key needs a non-empty list of projects (or ["*"])')
        return v

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def models_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"


@lru_cache
def get_settings() -> Settings:
    return Settings()
