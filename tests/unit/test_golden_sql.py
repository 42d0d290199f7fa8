"""The search statement per variant, rendered from build_search_sql's fragments and compared
with the reviewed copies in tests/data/golden/. A change to the SQL shows up as a diff of
those files; after a deliberate change, rewrite them with

    CTXSEARCH_UPDATE_GOLDEN=1 pytest tests/unit/test_golden_sql.py

and review the diff. tests/integration/test_golden_sql_explain.py plans each file against
the real schema, so a golden file cannot drift into SQL that does not run."""

from __future__ import annotations

import difflib
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ctxsearch.store.search import SearchParams, build_search_sql

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
UPDATE = os.environ.get("CTXSEARCH_UPDATE_GOLDEN") == "1"
WIDTH = 120

_BASE = {"query": "connection refused", "project_id": "p"}
_FILTERS = {
    "session_id": "s1",
    "types": ["error"],
    "kinds": ["event"],
    "files": ["app/"],
    "since": datetime(2026, 1, 1, tzinfo=UTC),
    "until": datetime(2026, 2, 1, tzinfo=UTC),
}
# A later page: the first page's snapshot, what it returned, and the exact text path.
_CURSOR = {"max_id": 100, "exclude_ids": [1, 2], "exclude_summaries": ["s1"], "text_exact": True}

VARIANTS: dict[str, SearchParams] = {
    **{
        f"{mode}-{fusion}": SearchParams(**_BASE, mode=mode, fusion=fusion)
        for mode in ("text", "vector", "hybrid")
        for fusion in ("convex", "rrf", "weighted")
    },
    "hybrid-convex-filtered": SearchParams(**_BASE, **_FILTERS),
    "hybrid-convex-cursor-text-exact": SearchParams(**_BASE, **_CURSOR),
    # group=session, a later page: sessions already returned are left out after fusion, and
    # the rows come without headlines (only the sessions' evidence gets them, afterwards).
    "hybrid-convex-sessions-cursor": SearchParams(**_BASE, max_id=100, exclude_sessions=["s1"], snippets=False),
}


def _and_depths(line: str) -> list[tuple[int, int]]:
    """(position, parenthesis depth) of each ` AND ` outside string literals."""
    out, depth, quoted = [], 0, False
    for i, ch in enumerate(line):
        if ch == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif line.startswith(" AND ", i):
            out.append((i, depth))
    return out


def _wrap(line: str) -> list[str]:
    # A long conjunction (the filters) gets a line per condition, at its outermost level.
    ands = _and_depths(line)
    if len(line) <= WIDTH or not ands:
        return [line]
    outer = min(d for _, d in ands)
    cuts = [i for i, d in ands if d == outer]
    indent = " " * (len(line) - len(line.lstrip()) + 4)
    pieces = [line[a:b] for a, b in zip([0, *cuts], [*cuts, len(line)], strict=True)]
    return [pieces[0], *(indent + p.lstrip() for p in pieces[1:])]


def render(params: SearchParams) -> str:
    """The statement as text, named parameters left as placeholders (`%(project_id)s`)."""
    text = build_search_sql(params).as_string(None)  # SQL, Identifier, Literal: no connection needed
    text = text.replace("WITH ", "WITH\n", 1)
    lines = [wrapped for line in text.splitlines() for wrapped in _wrap(line.rstrip())]
    return "\n".join(line for n, line in enumerate(lines) if line or (n and lines[n - 1])) + "\n"


def _describe(params: SearchParams) -> str:
    fields = {k: v for k, v in vars(params).items() if v != getattr(SearchParams(**_BASE), k) or k == "mode"}
    return ", ".join(f"{k}={v.isoformat() if isinstance(v, datetime) else v!r}" for k, v in fields.items())


def golden_text(name: str) -> str:
    header = (
        f"-- {name}: build_search_sql({_describe(VARIANTS[name])})\n"
        f"-- Rendered by tests/unit/test_golden_sql.py; rewrite with CTXSEARCH_UPDATE_GOLDEN=1.\n"
    )
    return header + render(VARIANTS[name])


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_search_sql_matches_its_golden_file(name):
    path = GOLDEN / f"{name}.sql"
    got = golden_text(name)
    if UPDATE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
        return
    assert path.exists(), f"{path} is missing: create it with CTXSEARCH_UPDATE_GOLDEN=1 and review it"
    want = path.read_text()
    if got != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), str(path), "rendered"))
        pytest.fail(
            f"the {name} search SQL differs from {path}.\nIf the change is intended, rewrite the golden "
            f"files with CTXSEARCH_UPDATE_GOLDEN=1 and review the diff:\n{diff}",
            pytrace=False,
        )


def test_every_golden_file_is_a_variant():
    # A variant renamed or dropped must not leave a stale file for the EXPLAIN test to plan.
    files = {p.stem for p in GOLDEN.glob("*.sql")}
    assert files == set(VARIANTS), f"stale or missing golden files: {files ^ set(VARIANTS)}"


def test_variants_cover_each_path():
    # The variants differ where build_search_sql branches: one file per branch at least.
    texts = {name: render(p) for name, p in VARIANTS.items()}
    assert len(set(texts.values())) == len(texts)
    plain, filtered = texts["hybrid-convex"], texts["hybrid-convex-filtered"]
    paged = texts["hybrid-convex-cursor-text-exact"]
    fallback = "(SELECT count(*) FROM twarm) <"  # filters: the warm matches when the lists fall short
    assert fallback in filtered and fallback not in plain and "%(file_patterns)s" in filtered
    assert "tlist" in plain and "tlist" not in paged  # text_exact reads the matches, not the top lists
    for placeholder in ("%(exclude_ids)s", "%(exclude_summaries)s", "o.id <= %(max_id)s"):
        assert placeholder in paged and placeholder not in plain
    sessions = texts["hybrid-convex-sessions-cursor"]
    assert "s.session_id = ANY(%(exclude_sessions)s)" in sessions and fallback not in sessions  # after fusion
    assert "ts_headline" in plain and "ts_headline" not in sessions
    assert "%(exclude_sessions)s" not in plain
    assert "vmax" in texts["vector-weighted"] and "vmax" not in texts["vector-rrf"]
    assert "%(qvec)b" not in texts["text-rrf"] and "ts_rank" not in texts["vector-rrf"]
    # Convex fusion mixes scores, RRF ranks; a text-only candidate's cosine is read in hybrid only.
    assert "s.text_norm" in texts["hybrid-convex"] and "%(rrf_k)s" not in texts["hybrid-convex"]
    assert "%(rrf_k)s" in texts["hybrid-rrf"] and "e.embedding <=>" in texts["hybrid-rrf"]
    assert "e.embedding <=>" not in texts["vector-convex"] and "tidf" not in texts["vector-convex"]
