"""One settings object, read by the API, the CLI, the MCP server and the worker alike."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CTXSEARCH_", env_file=".env", extra="ignore")

    # Storage. With no database_url an embedded PostgreSQL (pgserver) runs in data_dir.
    database_url: str | None = None
    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("ctxsearch")))
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_timeout_s: float = 5.0

    # HTTP
    host: str = "127.0.0.1"
    port: int = 8080

    # Condense
    key_events: int = Field(default=10, ge=1, le=100)
    summary_max_chars: int = 1500

    # Embed worker
    run_worker: bool = True  # serve runs a worker thread unless told not to
    embed_batch_size: int = Field(default=64, ge=1, le=1024)
    worker_poll_s: float = 0.5
    # onnx-int8 embeds ~3x faster than torch fp32 on CPU with SciFact nDCG@10 within 0.01
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
    ivfflat_probes: int = Field(default=10, ge=1)
    hnsw_ef_search: int = Field(default=100, ge=1)
    # Projects with at least this many warm documents get an ANN index of their own
    # (filtered recall); smaller ones are scanned exactly. 0 turns it off.
    project_index_min_rows: int = Field(default=10_000, ge=0)

    # Search
    rrf_k: int = Field(default=60, ge=1)
    overfetch: int = Field(default=5, ge=1, le=50)  # each arm fetches limit * overfetch
    min_candidates: int = 50
    text_config: str = "english"

    log_level: str = "INFO"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def models_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"


@lru_cache
def get_settings() -> Settings:
    return Settings()
