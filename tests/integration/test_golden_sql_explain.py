"""Each golden search statement (tests/data/golden/, see tests/unit/test_golden_sql.py) is
planned by the real database: a golden file cannot drift into SQL that does not run."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from ctxsearch.store.search import HEADLINE_OPTIONS

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
FILES = sorted(GOLDEN.glob("*.sql"))

# A value for every named parameter the statements use, of the type the service sends.
VALUES = {
    "query": "connection refused",
    "qvec": np.full(384, 0.05, dtype=np.float32),
    "project_id": "golden",
    "session_id": "s1",
    "types": ["error"],
    "kinds": ["event"],
    "since": datetime(2026, 1, 1, tzinfo=UTC),
    "until": datetime(2026, 2, 1, tzinfo=UTC),
    "file_patterns": ["app/%"],
    "candidates": 50,
    "max_id": 100,
    "exclude_ids": [1, 2],
    "exclude_summaries": ["s1"],
    "exclude_sessions": ["s1"],
    "limit": 11,
    "offset": 0,
    "rrf_k": 60.0,
    "w_vector": 1.0,
    "w_text": 1.5,
    "headline": HEADLINE_OPTIONS,
    "k1": 1.2,
    "b": 0.75,
    "context_weight": 0.5,
    "text_pool": 200,
    "match_pool": 5000,
}


def test_there_are_golden_files():
    # Parametrized over an empty folder, the test below would pass without planning anything.
    assert len(FILES) >= 8, FILES


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_golden_statement_plans(service, path):
    text = path.read_text()
    names = set(re.findall(r"%\((\w+)\)[sb]", text))
    assert names <= set(VALUES), f"{path.name} uses parameters this test has no value for: {names - set(VALUES)}"
    with service.db.connection() as conn:
        plan = conn.execute("EXPLAIN " + text, {n: VALUES[n] for n in names}).fetchall()
    assert plan and any("Scan" in row[0] for row in plan), plan
