"""`ctxsearch bench-capture` on the fixture transcripts: it imports through a server of its
own, drives the hook as Claude Code does, and every turn's event is stored."""

from __future__ import annotations

from pathlib import Path

from ctxsearch.bench.capture import bench_capture

PROJECTS = Path(__file__).resolve().parents[1] / "data" / "capture" / "claude-code" / "projects"


def test_bench_capture_measures_import_and_hook(monkeypatch):
    monkeypatch.setenv("CTXSEARCH_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")  # never used
    result = bench_capture(PROJECTS, copies=2, hook_runs=5, log=lambda m: None)
    assert result["import_events"] > 20 and result["import_events_per_s"] > 0
    assert result["hook_turn_events_stored"] == result["hook_turn_events_expected"] == 5
    assert 0 < result["hook_turn_p50_ms"] <= result["hook_turn_p95_ms"]
    assert 0 < result["hook_context_p50_ms"] <= result["hook_context_p95_ms"]
