"""The warm tier: its state, when it is due for a rebuild, and the rebuild itself (sql/)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from ctxsearch.config import Settings


@dataclass
class TierState:
    generation: int
    watermark: int
    warm_rows: int
    hot_rows: int
    age_s: float


def tier_state(conn: psycopg.Connection) -> TierState:
    gen, wm, warm, age = conn.execute(
        "SELECT generation, watermark, warm_rows, extract(epoch FROM now() - refreshed_at) FROM tier_state"
    ).fetchone()
    hot = conn.execute("SELECT count(*) FROM documents WHERE id > %s", (wm,)).fetchone()[0]
    return TierState(gen, wm, warm, hot, float(age))


def rebuild_warm(*, conn: psycopg.Connection, settings: Settings) -> tuple[int, int, int, int | None]:
    """Rebuild the warm materialized view and its indexes, and swap it in."""
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute("SELECT set_config('ctxsearch.project_index_min_rows', %s, false),"
                 " set_config('ctxsearch.text_top_docs', %s, false)",
                 (str(settings.project_index_min_rows), str(settings.text_top_docs)))
    return conn.execute(
        "SELECT * FROM ctxsearch_rebuild_warm(%s, %s)", (settings.vector_index, settings.ivfflat_min_rows)
    ).fetchone()


def needs_rebuild(state: TierState, settings: Settings) -> bool:
    if state.hot_rows == 0:
        return False
    threshold = max(settings.hot_max_docs, int(state.warm_rows * 0.05))
    return state.hot_rows >= threshold or state.age_s >= settings.refresh_interval_s
